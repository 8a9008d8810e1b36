/**
 * What the gateway keeps on disk, through `inject` and the modules' own functions: the rotating
 * log files (usage, access, warn/error lines, no keys), a log directory that cannot be written,
 * the blacklist file (corrupt files moved aside, seed 002's format, hand edits validated entry by
 * entry), atomic writes, and the boot's path checks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMock, tempDir } from '../helper.js'
import { injectGateway } from './gateway.js'
import { loadConfig } from '../../config/load.js'
import { ConfigError } from '../../config/errors.js'
import { preflight } from '../../config/preflight.js'
import { removeStaleTemps, writeFileAtomic } from '../../src/atomic-write.js'

const CLIENT_KEY = 'sk-client-files-SECRET-1234'
const UPSTREAM_KEY = 'sk-upstream-files-SECRET-5678'

function linesOf (dir: string, prefix: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = []
  for (const f of readdirSync(dir).filter(n => n.startsWith(`${prefix}.`))) {
    const text = readFileSync(join(dir, f), 'utf8')
    assert.ok(!text.includes(CLIENT_KEY) && !text.includes(UPSTREAM_KEY), `no key in ${f}`)
    for (const line of text.split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
  }
  return lines
}

test('log files under BASE_PATH/logs: usage records, access lines and warn/error lines, one JSON object per line, no keys', async (t) => {
  const base = tempDir()
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, BASE_PATH: base } })
  const headers = { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', 'x-mock-chunks': '2' }
  const chat = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers, payload: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `my key ${CLIENT_KEY}` }] } })
  await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { ...headers, 'x-mock-fault': 'reset-before-headers' }, payload: { model: 'gpt-4o-mini', messages: [] } })
  await gw.app.close() // flushes and closes the files
  const dir = join(base, 'logs')
  assert.ok(readdirSync(dir).some(n => /^usage\.\d{4}-\d{2}-\d{2}\.\d+\.jsonl$/.test(n)), 'usage files are named by date')
  const usage = linesOf(dir, 'usage')
  assert.equal(usage.length, 2)
  assert.equal(usage.find(r => r.requestId === chat.headers['x-request-id'])?.totalTokens, 12)
  assert.equal(usage.find(r => r.status === 502)?.errorClass, 'upstream_reset')
  const access = linesOf(dir, 'access')
  assert.equal(access.length, 2)
  assert.ok(access.every(l => l.msg === 'request completed'))
  const errors = linesOf(dir, 'error')
  assert.ok(errors.length >= 1 && errors.every(l => (l.level as number) >= 40), 'warn and error lines only')
  assert.ok(errors.some(l => l.msg === 'upstream request failed'))
})

test('a log directory that cannot be written: one warn line, requests served', async (t) => {
  const base = tempDir()
  writeFileSync(join(base, 'logs'), 'a file where the directory would go')
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, BASE_PATH: base } })
  const warns = gw.logs().filter(l => l.level === 40 && /log director/.test(String(l.msg)))
  assert.equal(warns.length, 1)
  assert.match(String(warns[0].msg), /^log directory .+ cannot be written \((ENOTDIR|EEXIST)\): logging to stdout only$/)
  assert.equal((await gw.app.inject({ url: '/v1/models' })).statusCode, 200)
})

test('a corrupt blacklist file is reported in one line and moved aside; the gateway still starts', async (t) => {
  const mock = await startMock(t)
  for (const content of ['{"entries": [', '[1,2,3]', '']) {
    const dir = tempDir()
    writeFileSync(join(dir, 'black.json'), content)
    const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_DATA_DIR: dir } })
    assert.equal((await gw.app.inject({ url: '/v1/models' })).statusCode, 200)
    assert.equal(gw.logs().filter(l => /blacklist file is corrupt/.test(String(l.msg))).length, 1, JSON.stringify(content))
    const aside = readdirSync(dir).filter(n => n.startsWith('black.json.corrupt-'))
    assert.equal(aside.length, 1)
    assert.equal(readFileSync(join(dir, aside[0]), 'utf8'), content, 'the evidence is kept')
    assert.ok(!existsSync(join(dir, 'black.json')))
  }
})

test("the blacklist file: seed 002's format is read; hand edits are validated entry by entry, expired ones dropped", async (t) => {
  const mock = await startMock(t)
  const seedDir = tempDir()
  writeFileSync(join(seedDir, 'black.json'), JSON.stringify({
    blacks: ['198.51.100.9'],
    ip_error_counter: { '198.51.100.9': { count: 4, firstError: 1700000000000, lastError: 1700000001000, errorType: 'missing_authorization' } }
  }))
  const seed = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_DATA_DIR: seedDir } })
  assert.equal((await seed.app.inject({ url: '/v1/models', remoteAddress: '198.51.100.9' })).statusCode, 403)
  assert.equal((await seed.app.inject({ url: '/v1/models', remoteAddress: '198.51.100.10' })).statusCode, 200)

  const dir = tempDir()
  writeFileSync(join(dir, 'black.json'), JSON.stringify({
    version: 1,
    entries: [
      { ip: '203.0.113.1' },
      { ip: 'not-an-ip', reason: 'typo' },
      { ip: '203.0.113.2', addedAt: 'yesterday' },
      { ip: '203.0.113.3', addedAt: '2024-01-01T00:00:00Z', expiresAt: '2000-01-01T00:00:00Z' },
      { ip: '::ffff:203.0.113.4', reason: 'by hand', expiresAt: Date.now() + 3_600_000 },
      { ip: '203.0.113.5', expiresAt: true },
      'just a string'
    ]
  }))
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_DATA_DIR: dir } })
  const warn = gw.logs().filter(l => l.msg === 'blacklist file: invalid entries ignored')
  assert.equal(warn.length, 1)
  assert.equal(warn[0].ignored, 4)
  assert.match((warn[0].problems as string[]).join(' | '), /"not-an-ip" is not an IP address.*"yesterday" of 203\.0\.113\.2 is not a date/)
  for (const [ip, status] of [['203.0.113.1', 403], ['203.0.113.4', 403], ['203.0.113.3', 200], ['203.0.113.5', 200]] as const) {
    assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: ip })).statusCode, status, ip)
  }
})

test('atomic writes: the content is replaced whole, no temporary file is left; stale temporary files are removed', async () => {
  const dir = tempDir()
  const path = join(dir, 'state.json')
  await writeFileAtomic(path, 'first')
  await writeFileAtomic(path, Buffer.from('second'))
  assert.equal(readFileSync(path, 'utf8'), 'second')
  assert.deepEqual(readdirSync(dir), ['state.json'])
  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'x.json'), 'x'))
  assert.deepEqual(readdirSync(dir), ['state.json'], 'a failed write leaves nothing behind')
  // at boot: a temporary file of this pid is from an earlier life, one of a dead process too;
  // one of a process still running (PID 1 always is) is left alone
  const own = `.state.json.${process.pid}.ab12.tmp`
  const dead = '.state.json.4194999.cd34.tmp' // above Linux's largest pid: no such process
  const alive = '.state.json.1.ef56.tmp'
  for (const name of [own, dead, alive, '.state.json.x.tmp']) writeFileSync(join(dir, name), 'left by a crash')
  assert.deepEqual(removeStaleTemps(path).sort(), [dead, own].sort())
  assert.deepEqual(readdirSync(dir).sort(), ['.state.json.1.ef56.tmp', '.state.json.x.tmp', 'state.json'])
  assert.deepEqual(removeStaleTemps(join(dir, 'no-such-dir', 'f')), [], 'never throws')
})

test('boot path checks: an unreadable CA file, a file that is no PEM, a data path under a file; a directory yet to be made passes', () => {
  const packageJson = fileURLToPath(new URL('../../package.json', import.meta.url))
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--upstream-ca-file', '/nonexistent/ca.pem'], {}, /^upstream\.caFile \(flag --upstream-ca-file\) = "\/nonexistent\/ca\.pem": cannot be read \(ENOENT; expected a readable PEM file\)$/],
    [[], { GATEWAY_UPSTREAM_CA_FILE: packageJson }, /^upstream\.caFile \(env GATEWAY_UPSTREAM_CA_FILE\) = ".*": expected a PEM file with at least one certificate$/],
    [[], { BASE_PATH: `${packageJson}/data` }, /^storage\.basePath \(env BASE_PATH\) = ".*": .*package\.json is not a directory \(expected a writable directory\)$/],
    [[], { GATEWAY_DATA_DIR: `${packageJson}/data` }, /^blacklist\.dir \(env GATEWAY_DATA_DIR\) = ".*": .*not a directory/]
  ]
  for (const [argv, env, expected] of cases) {
    assert.throws(() => {
      const { config, origins } = loadConfig({ argv, env, cwd: tempDir() })
      preflight(config, origins)
    }, (err: Error) => err instanceof ConfigError && expected.test(err.message) && !err.message.includes('\n'), JSON.stringify([argv, env]))
  }
  const dataDir = join(tempDir(), 'not-yet', 'created')
  const { config, origins } = loadConfig({ env: { GATEWAY_DATA_DIR: dataDir }, cwd: tempDir() })
  preflight(config, origins)
  assert.equal(existsSync(dataDir), false, 'a directory that can be created passes, and is not created by the check')
  const existing = tempDir()
  mkdirSync(join(existing, 'logs'))
  const ok = loadConfig({ env: { BASE_PATH: existing }, cwd: tempDir() })
  preflight(ok.config, ok.origins)
})
