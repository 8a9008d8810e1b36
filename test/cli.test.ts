/**
 * The real command, as a child process: bad config exits 2 with one line; SIGTERM lets an
 * in-flight stream finish and exits 0; --help/--version/--check-config.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startMock } from './helper.js'
import { tempDir } from './tmp.js'

// absolute paths, so the command can run in an empty working directory (no stray .env or gateway.yaml)
const TSX = import.meta.resolve('tsx')
const CLI = ['--import', TSX, fileURLToPath(new URL('../src/cli.ts', import.meta.url))]

function runCli (args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...CLI, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', cwd: tempDir(), timeout: 30_000 })
}

test('bad configuration: exit code 2 and one line naming key, value and expected form', () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { LOG_LEVEL: 'loud' }, /log\.level \(env LOG_LEVEL\) = "loud": expected one of debug \| info \| warn \| error \| silent/],
    [['-p', 'abc'], {}, /server\.port \(flag -p\) = "abc": expected a whole number/],
    [[], { TARGET_HOST: 'http://bad host' }, /upstream\.url \(env TARGET_HOST\) = "http:\/\/bad host": expected a URL/],
    [['--config', 'does-not-exist.yaml'], {}, /does-not-exist\.yaml" does not exist/]
  ]
  for (const [args, env, expected] of cases) {
    const r = runCli(args, env)
    assert.equal(r.status, 2, `exit code for ${JSON.stringify([args, env])}: ${r.stderr}`)
    const lines = r.stderr.trim().split('\n')
    assert.equal(lines.length, 1, `one line: ${r.stderr}`)
    assert.match(lines[0], expected)
    assert.ok(!r.stderr.includes('    at '), 'no stack trace')
  }
})

test('--help lists options with env names; --version; --check-config masks secrets', () => {
  const help = runCli(['--help'])
  assert.equal(help.status, 0)
  assert.match(help.stdout, /PROXY_PORT/)
  assert.match(help.stdout, /TARGET_HOST/)
  const version = runCli(['--version'])
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/)
  const check = runCli(['--check-config'], { AUTH_BEARER: 'sk-very-secret-value' })
  assert.equal(check.status, 0)
  assert.ok(!check.stdout.includes('sk-very-secret-value'))
  assert.equal(JSON.parse(check.stdout).upstream.key, '[REDACTED]')
})

async function startCli (env: Record<string, string>): Promise<{ child: ChildProcess, url: string }> {
  const child = spawn(process.execPath, [...CLI], {
    env: { PATH: process.env.PATH, GATEWAY_PORT: '0', ...env }, cwd: tempDir(), stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string, url?: string }
    if (entry.msg === 'gateway listening' && entry.url !== undefined) return { child, url: entry.url }
  }
  throw new Error('gateway did not start')
}

test('SIGTERM: an in-flight stream finishes, then the process exits 0', async (t) => {
  const mock = await startMock(t)
  const { child, url } = await startCli({ GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_SHUTDOWN_GRACE_MS: '20000' })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-chunks': '10', 'x-mock-hold': 'shutdown-1' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true })
  })
  const chunks: string[] = []
  let released = false
  const exited = once(child, 'exit')
  for await (const chunk of res.body) {
    chunks.push(chunk.toString())
    if (!released) {
      child.kill('SIGTERM')
      // give the signal a moment to land before the rest of the stream is let go
      await new Promise(resolve => setTimeout(resolve, 200))
      mock.release('shutdown-1')
      released = true
    }
  }
  assert.ok(chunks.join('').includes('data: [DONE]'), 'the stream completed')
  const [code] = await exited
  assert.equal(code, 0)
})
