/**
 * The benchmark harness starts its processes, runs a scenario of each kind (mock as its own
 * process; mock inside the harness) in quick mode, and prints its markdown table. No numbers are
 * asserted: speed belongs in `npm run bench`, not in the test suite.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'

test('npm run bench -- --quick prints a results table', async () => {
  // --mode src: through tsx, so the test does not need a tsc build first
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--only', '3,9', '--mode', 'src', '--max-minutes', '2'], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const [code] = await once(child, 'exit') as [number | null]
  assert.equal(code, 0, `the harness failed:\n${stderr}`)
  assert.match(stdout, /^\| scenario \| measure \| direct \| pipe \| gateway \| gateway\/pipe \| target \| result \|$/m)
  assert.match(stdout, /^\| 3\. \/v1\/models \| requests\/s \|/m)
  assert.match(stdout, /^\| 9\. abandoned streams/m)
  assert.match(stdout, /^Targets: \d+ passed, \d+ failed\.$/m)
  assert.match(stdout, /access log at info: \*\*on\*\*/)
})
