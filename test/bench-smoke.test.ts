/**
 * The benchmark harness starts its processes, runs a scenario of each kind (mock as its own
 * process; mock inside the harness) in quick mode, and prints its markdown table. No numbers are
 * asserted: speed belongs in `npm run bench`, not in the test suite. The peers (`--peers`, Go
 * binaries never kept in the repository) are checked here only for how they are chosen and refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { choosePeers } from '../bench/peers.js'

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

/** Runs a harness entry point with no BENCH_PEER_* in its environment; resolves to its exit code and stderr. */
async function runWithoutPeers (args: string[]): Promise<{ code: number | null, stderr: string }> {
  const env = { ...process.env }
  delete env.BENCH_PEER_AIGC_PROXY
  delete env.BENCH_PEER_JB_PROXY_LLM
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stderr }
}

test('--peers without a peer binary stops at once with an error that names the variables', async () => {
  for (const args of [['bench/run.ts', '--peers', '--only', '1', '--mode', 'src'], ['bench/ablate.ts', '--peers', '--skip-build']]) {
    const { code, stderr } = await runWithoutPeers(args)
    assert.equal(code, 1, `${args[0]} should fail:\n${stderr}`)
    assert.match(stderr, /--peers: no peer binary given; set BENCH_PEER_AIGC_PROXY and\/or BENCH_PEER_JB_PROXY_LLM/)
  }
})

test('choosePeers takes the peers whose binary is given, notes the others, and refuses a path that is not executable', () => {
  const { chosen, notes } = choosePeers({ BENCH_PEER_JB_PROXY_LLM: process.execPath })
  assert.deepEqual(chosen.map((c) => [c.spec.name, c.binary]), [['jb-proxy-llm', process.execPath]])
  assert.deepEqual(notes, ['aigc-proxy skipped: BENCH_PEER_AIGC_PROXY is not set'])
  assert.throws(() => choosePeers({ BENCH_PEER_AIGC_PROXY: '/nonexistent/aigc-proxy' }), /BENCH_PEER_AIGC_PROXY=\/nonexistent\/aigc-proxy is not an executable file/)
})
