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
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request, type Dispatcher } from 'undici'
import type { GatewayConfig } from '../config/schema.js'
import { ConfigError, loadConfig } from '../config/load.js'
import { preflight } from '../config/preflight.js'
import { SECRETS_YAML, assertHelpListsEveryOption, startMock } from './helper.js'
import { tempDir } from './tmp.js'

// absolute paths, so the command can run in an empty working directory (no stray .env or gateway.yaml)
const TSX = import.meta.resolve('tsx')
const CLI = ['--import', TSX, fileURLToPath(new URL('../src/cli.ts', import.meta.url))]
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

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

test('--help lists every option with its env names, flags and default; -h and seed 000\'s bare `help` ask for it too', () => {
  const help = runCli(['--help'])
  assert.equal(help.status, 0)
  assert.equal(help.stderr, '')
  assertHelpListsEveryOption(help.stdout)
  for (const action of ['--check-config', '--version', '--config FILE']) assert.ok(help.stdout.includes(action), action)
  for (const argv of [['-h'], ['help'], ['--help']]) assert.equal(loadConfig({ argv, env: {}, cwd: tempDir() }).actions.help, true, argv[0])
})

test('--version prints the package version', () => {
  const version = runCli(['--version'])
  assert.equal(version.status, 0)
  assert.equal(version.stdout, `${pkg.version}\n`)
})

test('--check-config prints the effective config as JSON with every secret masked, and exits 0', () => {
  const dir = tempDir()
  const { secrets } = SECRETS_YAML
  writeFileSync(join(dir, 'gw.yaml'), SECRETS_YAML.yaml)
  const check = runCli(['--check-config', '--config', join(dir, 'gw.yaml'), '-p', '9001'], SECRETS_YAML.env)
  assert.equal(check.status, 0, check.stderr)
  for (const secret of secrets) assert.ok(!check.stdout.includes(secret), `${secret} is masked`)
  const effective = JSON.parse(check.stdout) as GatewayConfig
  assert.equal(effective.server.port, 9001, 'flags apply')
  assert.equal(effective.configFile, join(dir, 'gw.yaml'))
  assert.equal(effective.targets.claude.provider, 'anthropic', 'the normalised values are shown')
  assert.deepEqual(effective.targets.claude.keys.map(k => typeof k === 'string' ? k : k.name), ['key-1', 'backup'], 'key names stay readable')
  assert.equal(effective.auth.keys[0].name, 'web')
  assert.deepEqual(effective.auth.keys[0].allowedModels, ['gpt-4o-mini'])
  assert.equal(effective.auth.keys[0].key, '[REDACTED]')
  assert.equal(effective.redis.url, '[REDACTED]')
})

test('--check-config: a bad value, or a path the gateway cannot use, is one line naming it', () => {
  const packageJson = fileURLToPath(new URL('../package.json', import.meta.url))
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { GATEWAY_RATE_LIMIT_REQUESTS: 'lots' }, /^rateLimit\.max \(env GATEWAY_RATE_LIMIT_REQUESTS\) = "lots": expected a whole number$/],
    [['--upstream-ca-file', '/nonexistent/ca.pem'], {}, /^upstream\.caFile \(flag --upstream-ca-file\) = "\/nonexistent\/ca\.pem": cannot be read \(ENOENT; expected a readable PEM file\)$/],
    [[], { GATEWAY_UPSTREAM_CA_FILE: packageJson }, /^upstream\.caFile \(env GATEWAY_UPSTREAM_CA_FILE\) = ".*": expected a PEM file with at least one certificate$/],
    [[], { BASE_PATH: `${packageJson}/data` }, /^storage\.basePath \(env BASE_PATH\) = ".*": .*package\.json is not a directory \(expected a writable directory\)$/]
  ]
  for (const [argv, env, expected] of cases) {
    assert.throws(() => {
      const { config, origins } = loadConfig({ argv, env, cwd: tempDir() })
      preflight(config, origins)
    }, (err: Error) => err instanceof ConfigError && expected.test(err.message) && !err.message.includes('\n'), `${JSON.stringify([argv, env])}`)
  }
  const dataDir = join(tempDir(), 'not-yet', 'created')
  const { config, origins } = loadConfig({ env: { GATEWAY_DATA_DIR: dataDir }, cwd: tempDir() })
  preflight(config, origins)
  assert.equal(existsSync(dataDir), false, 'a directory that can be created passes, and is not created by the check')

  const r = runCli(['--check-config'], { BASE_PATH: `${packageJson}/data` })
  assert.equal(r.status, 2, r.stderr)
  assert.equal(r.stdout, '', 'no config is printed')
  assert.match(r.stderr, /^llm-gateway: invalid configuration: storage\.basePath \(env BASE_PATH\)[^\n]*\n$/)
})

test('the same path checks stop a normal start with exit 2', () => {
  const r = runCli([], { GATEWAY_PORT: '0', BASE_PATH: `${fileURLToPath(new URL('../package.json', import.meta.url))}/data` })
  assert.equal(r.status, 2)
  assert.match(r.stderr, /^llm-gateway: invalid configuration: storage\.basePath/)
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

test('stdout lines in both write modes (sync, the default, and async): access lines within the flush interval, the rest at exit', async (t) => {
  const mock = await startMock(t)
  for (const mode of ['sync', 'async']) {
    const child = spawn(process.execPath, [...CLI], {
      env: { PATH: process.env.PATH, GATEWAY_PORT: '0', GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_LOG_STDOUT_WRITES: mode },
      cwd: tempDir(),
      stdio: ['ignore', 'pipe', 'pipe']
    })
    t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
    let text = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    const lines = (): Array<{ msg?: string, url?: string, status?: number }> => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg?: string })
    const until = async (what: () => boolean, tries = 200): Promise<void> => {
      for (let i = 0; i < tries && !what(); i++) await new Promise(resolve => setTimeout(resolve, 25))
    }
    // a cold start compiles the sources through tsx: on a loaded machine that takes seconds
    await until(() => lines().some((l) => l.msg === 'gateway listening'), 1200)
    const listening = lines().find((l) => l.msg === 'gateway listening')
    if (listening?.url === undefined) throw new Error(`${mode}: the gateway did not start`)
    const url: string = listening.url
    for (let i = 0; i < 3; i++) {
      const res: Dispatcher.ResponseData = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }) })
      assert.equal(res.statusCode, 200)
      await res.body.text()
    }
    // a quiet gateway writes what it holds within the periodic flush (200 ms)
    await until(() => lines().filter((l) => l.msg === 'request completed').length === 3)
    assert.equal(lines().filter((l) => l.msg === 'request completed' && l.status === 200).length, 3, `${mode}: three access lines`)
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0)
    // written while the process stops, so only the flush at exit puts it out
    assert.ok(lines().some((l) => l.msg === 'shutting down: waiting for in-flight requests'), `${mode}: the shutdown line too`)
  }
})
