/**
 * The automatic blacklist without Redis: exact threshold, what counts as an error, the file
 * (atomic, reloaded, seed 002's format, corrupt files, hand edits), expiry, the admin API and the
 * memory bounds.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import pino from 'pino'
import { startGateway, startMock, tempDir, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { ErrorCounter } from '../../src/abuse/error-counter.js'
import { Blacklist, newEntry } from '../../src/abuse/blacklist.js'
import { BlacklistService } from '../../src/abuse/blacklist-service.js'
import { BlacklistFileWriter } from '../../src/abuse/blacklist-file.js'
import { writeFileAtomic } from '../../src/atomic-write.js'
import { RedisHealth } from '../../src/redis/health.js'

const TOKEN = 'admin-token-for-tests-1'
const silent = pino({ level: 'silent' })

async function call (url: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, body: any }> {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text) }
}

function blacklistEnv (mockUrl: string, dir: string, extra: Record<string, string> = {}): Record<string, string> {
  // seed 002's names; loopback is exempt by default, so these tests opt out of the exemption
  return { GATEWAY_UPSTREAM_URL: mockUrl, IP_ERROR_THRESHOLD: '3', ERROR_WINDOW: '600000', GATEWAY_DATA_DIR: dir, GATEWAY_BLACKLIST_IGNORE: 'none', ...extra }
}

async function blacklisted (gw: GatewayHandle, ip = '127.0.0.1'): Promise<void> {
  await until(`${ip} is blacklisted`, () => gw.app.blacklist.has(ip))
}

test('the threshold-th error blacklists the address, not one before; it is recorded under the real peer, not a spoofed header', async (t) => {
  const mock = await startMock(t)
  const dir = tempDir()
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, dir) })
  assert.equal((await call(`${gw.url}/nope-1`, { headers: { 'x-forwarded-for': '6.6.6.1' } })).status, 404)
  assert.equal((await call(`${gw.url}/nope-2`, { headers: { 'x-forwarded-for': '6.6.6.2' } })).status, 404)
  assert.equal((await call(`${gw.url}/v1/models`)).status, 200, 'two errors: still served')
  assert.equal(gw.app.blacklist.size, 0)
  assert.equal((await call(`${gw.url}/nope-3`, { headers: { 'x-forwarded-for': '6.6.6.3' } })).status, 404)
  await blacklisted(gw)
  assert.deepEqual(gw.app.blacklist.list().map(e => e.ip), ['127.0.0.1'], 'the socket peer, never the spoofed header')

  const refused = await call(`${gw.url}/v1/models`)
  assert.equal(refused.status, 403)
  assert.deepEqual(refused.body, { error: { message: 'Your address has been blocked after repeated invalid requests', type: 'request_forbidden', code: 'ip_blacklisted' } })
  const line = gw.logs.map(l => JSON.parse(l)).find(l => l.msg === 'address blacklisted')
  assert.equal(line?.clientIp, '127.0.0.1')
  assert.equal(line?.level, 40)

  // persisted: atomic write, JSON with when and why, nothing temporary left behind
  const file = join(dir, 'black.json')
  await until('black.json is written', () => existsSync(file))
  await gw.app.close()
  const saved = JSON.parse(readFileSync(file, 'utf8'))
  assert.equal(saved.version, 1)
  assert.equal(saved.entries.length, 1)
  assert.equal(saved.entries[0].ip, '127.0.0.1')
  assert.match(saved.entries[0].reason, /^3 errors within 600000 ms; last: 404/)
  assert.ok(Math.abs(Date.parse(saved.entries[0].addedAt) - Date.now()) < 60_000)
  assert.equal(saved.entries[0].expiresAt, null, 'no expiry by default (as seed 002)')
  assert.deepEqual(readdirSync(dir), ['black.json'])
  assert.equal(statSync(file).mode & 0o777, 0o600)

  // loaded at boot
  const again = await startGateway(t, { env: blacklistEnv(mock.url, dir) })
  assert.equal((await call(`${again.url}/v1/models`)).status, 403)
})

test('HEAD / and GET / (Claude Code probes / on every start) answer 200 and never count; unknown paths still do', async (t) => {
  const mock = await startMock(t)
  // client keys required, as a real deployment: the probe needs none
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, tempDir(), { GATEWAY_CLIENT_KEYS: 'ck-probe-client-1' }) })
  for (let i = 0; i < 20; i++) {
    const head = await request(`${gw.url}/`, { method: 'HEAD' })
    assert.equal(head.statusCode, 200, `HEAD / #${i + 1}`)
    assert.match(String(head.headers['content-type']), /^application\/json/)
    await head.body.dump()
  }
  const root = await call(`${gw.url}/`)
  assert.equal(root.status, 200)
  assert.deepEqual(root.body, { service: 'llm-gateway', status: 'ok' }, 'names the gateway, no version or build details')
  const served = await call(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer ck-probe-client-1' } })
  assert.equal(served.status, 200, '21 probes later the address is still served')
  assert.equal(gw.app.blacklist.size, 0)
  assert.equal(mock.count('/'), 1, 'only the models request reached the upstream')

  const client = { authorization: 'Bearer ck-probe-client-1' }
  for (const path of ['/nope-1', '/nope-2', '/nope-3']) assert.equal((await call(`${gw.url}${path}`, { headers: client })).status, 404)
  await blacklisted(gw)
  assert.equal((await call(`${gw.url}/v1/models`, { headers: client })).status, 403, 'unknown paths still count')
})

test('upstream failures passed through do not count; the gateway\'s own 400 and 401 do', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, tempDir(), { GATEWAY_ADMIN_TOKEN: TOKEN }) })
  const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  for (const status of ['401', '404', '400', '401', '403', '429', '500']) {
    const res = await call(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-status': status }, body: chat })
    assert.equal(res.status, Number(status), 'the upstream status is passed through')
  }
  assert.equal((await call(`${gw.url}/v1/no-such-endpoint`)).status, 404, "the upstream's 404 for an unknown /v1 path")
  assert.equal((await call(`${gw.url}/v1/models`)).status, 200, 'eight upstream errors: not blacklisted')
  assert.equal(gw.app.blacklist.size, 0)

  const bad = await call(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' })
  assert.equal(bad.status, 400)
  assert.equal((await call(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).status, 400)
  assert.equal((await call(`${gw.url}/admin/blacklist`, { headers: { authorization: 'Bearer wrong-token' } })).status, 401)
  await blacklisted(gw)
  assert.match(gw.app.blacklist.get('127.0.0.1')!.reason, /last: 401 invalid_admin_token/)
})

test('a corrupt file is reported in one line, moved aside, and the gateway still starts', async (t) => {
  const mock = await startMock(t)
  for (const content of ['{"entries": [', '[1,2,3]', '']) {
    const dir = tempDir()
    writeFileSync(join(dir, 'black.json'), content)
    const gw = await startGateway(t, { env: blacklistEnv(mock.url, dir) })
    assert.equal((await call(`${gw.url}/v1/models`)).status, 200)
    const warnings = gw.logs.map(l => JSON.parse(l)).filter(l => /blacklist file is corrupt/.test(l.msg))
    assert.equal(warnings.length, 1, JSON.stringify(content))
    const aside = readdirSync(dir).filter(n => n.startsWith('black.json.corrupt-'))
    assert.equal(aside.length, 1)
    assert.equal(readFileSync(join(dir, aside[0]), 'utf8'), content, 'the evidence is kept')
    assert.ok(!existsSync(join(dir, 'black.json')))
  }
})

test("seed 002's black.json is read; hand edits are validated entry by entry", async (t) => {
  const mock = await startMock(t)
  const seedDir = tempDir()
  writeFileSync(join(seedDir, 'black.json'), JSON.stringify({
    blacks: ['127.0.0.1'],
    ip_error_counter: { '127.0.0.1': { count: 4, firstError: 1700000000000, lastError: 1700000001000, errorType: 'missing_authorization' } }
  }))
  const seed = await startGateway(t, { env: blacklistEnv(mock.url, seedDir) })
  assert.equal((await call(`${seed.url}/v1/models`)).status, 403)
  const imported = seed.app.blacklist.get('127.0.0.1')!
  assert.equal(imported.addedAt, new Date(1700000001000).toISOString())
  assert.match(imported.reason, /seed 002.*missing_authorization/)
  assert.equal((await call(`${seed.url}/healthz`)).status, 403, 'probes are refused too by default')
  const probes = await startGateway(t, { env: blacklistEnv(mock.url, seedDir, { GATEWAY_IP_FILTER_EXEMPT_HEALTH: 'true' }) })
  assert.equal((await call(`${probes.url}/healthz`)).status, 200, 'unless exempted')
  assert.equal((await call(`${probes.url}/v1/models`)).status, 403)

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
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, dir) })
  assert.deepEqual(gw.app.blacklist.list().map(e => [e.ip, e.reason]), [['203.0.113.1', 'added by hand'], ['203.0.113.4', 'by hand']])
  const warn = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'blacklist file: invalid entries ignored')
  assert.equal(warn.length, 1)
  assert.equal(warn[0].ignored, 4)
  assert.match(warn[0].problems.join(' | '), /"not-an-ip" is not an IP address.*"yesterday" of 203\.0\.113\.2 is not a date/)
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '203.0.113.4' })).statusCode, 403)
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '203.0.113.3' })).statusCode, 200, 'expired entry')
})

test('entries expire after BLACKLIST_TTL', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, tempDir(), { BLACKLIST_TTL: '300' }) })
  for (let i = 0; i < 3; i++) await call(`${gw.url}/nope`)
  await blacklisted(gw)
  const entry = gw.app.blacklist.get('127.0.0.1')!
  assert.ok(entry.expiresAt !== null)
  assert.ok(Date.parse(entry.expiresAt) - Date.parse(entry.addedAt) === 300)
  await until('the entry expired', async () => (await call(`${gw.url}/v1/models`)).status === 200)
})

test('admin API: off (404) without a token, 401 with a wrong one; add, list, refuse, remove', async (t) => {
  const mock = await startMock(t)
  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  for (const method of ['GET', 'POST', 'DELETE']) {
    const path = method === 'DELETE' ? '/admin/blacklist/1.2.3.4' : '/admin/blacklist'
    assert.equal((await call(`${off.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } })).status, 404, method)
  }

  const dir = tempDir()
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: TOKEN, GATEWAY_DATA_DIR: dir } })
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  const wrong = await call(`${gw.url}/admin/blacklist`, { headers: { authorization: 'Bearer nope' } })
  assert.equal(wrong.status, 401)
  assert.equal(wrong.body.error.code, 'invalid_admin_token')
  assert.equal((await call(`${gw.url}/admin/blacklist`)).status, 401)

  const added = await call(`${gw.url}/admin/blacklist`, { method: 'POST', headers: auth, body: JSON.stringify({ ip: '[2001:DB8::1]', reason: 'scraping' }) })
  assert.equal(added.status, 201)
  assert.equal(added.body.ip, '2001:db8::1')
  assert.equal(added.body.reason, 'scraping')
  assert.equal(added.body.expiresAt, null)
  const timed = await call(`${gw.url}/admin/blacklist`, { method: 'POST', headers: auth, body: JSON.stringify({ ip: '::ffff:198.51.100.7', ttl: 3_600_000 }) })
  assert.equal(timed.body.ip, '198.51.100.7')
  assert.equal(Date.parse(timed.body.expiresAt) - Date.parse(timed.body.addedAt), 3_600_000)

  const listed = await call(`${gw.url}/admin/blacklist`, { headers: auth })
  assert.deepEqual(listed.body.entries.map((e: { ip: string }) => e.ip), ['2001:db8::1', '198.51.100.7'])
  assert.equal(listed.body.count, 2)
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '2001:db8::1' })).statusCode, 403)
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '::ffff:198.51.100.7' })).statusCode, 403)
  await until('the file holds both entries', () => existsSync(join(dir, 'black.json')) && JSON.parse(readFileSync(join(dir, 'black.json'), 'utf8')).entries.length === 2)

  for (const body of [{ ip: '2001:db8::zz' }, { ip: '10.0.0.0/8' }, { ip: '1.2.3.4', extra: 1 }, { ip: '1.2.3.4', ttl: -5 }, {}]) {
    const res = await call(`${gw.url}/admin/blacklist`, { method: 'POST', headers: auth, body: JSON.stringify(body) })
    assert.equal(res.status, 400, JSON.stringify(body))
    assert.equal(typeof res.body.error.message, 'string')
  }

  const removed = await call(`${gw.url}/admin/blacklist/${encodeURIComponent('2001:db8:0::1')}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  assert.deepEqual(removed, { status: 200, body: { removed: '2001:db8::1' } })
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '2001:db8::1' })).statusCode, 200)
  const missing = await call(`${gw.url}/admin/blacklist/2001:db8::1`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  assert.equal(missing.status, 404)
  assert.equal(missing.body.error.message, '2001:db8::1 is not on the blacklist')
  await until('the file follows the removal', () => JSON.parse(readFileSync(join(dir, 'black.json'), 'utf8')).entries.length === 1)
})

test('error counters are bounded: 100,000 distinct addresses never hold more than maxTracked', async () => {
  const counter = new ErrorCounter({ windowMs: 86_400_000, maxTracked: 1000, redis: null, health: new RedisHealth(silent), prefix: 'x:' })
  for (let i = 0; i < 100_000; i++) {
    await counter.record(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
    assert.ok(counter.tracked <= 1000)
  }
  assert.equal(counter.tracked, 1000)
  // a recent address keeps its count; the window runs from its first error
  assert.equal(await counter.record('10.1.134.159'), 2)
})

test('automatic entries are bounded too (maxEntries); admin additions are not', async () => {
  const service = new BlacklistService(new Blacklist(), 2, silent)
  assert.equal(await service.addAutomatic(newEntry('192.0.2.1', 'x', null)), true)
  assert.equal(await service.addAutomatic(newEntry('192.0.2.2', 'x', null)), true)
  assert.equal(await service.addAutomatic(newEntry('192.0.2.3', 'x', null)), false)
  assert.equal(service.stats.dropped, 1)
  await service.add(newEntry('192.0.2.4', 'admin', null))
  assert.equal(service.size, 3)
})

test('atomic write: content replaced whole, no temporary file left, failures leave nothing', async () => {
  const dir = tempDir()
  const file = join(dir, 'state.json')
  await writeFileAtomic(file, 'one')
  await writeFileAtomic(file, 'two')
  assert.equal(readFileSync(file, 'utf8'), 'two')
  assert.deepEqual(readdirSync(dir), ['state.json'])
  await assert.rejects(writeFileAtomic(join(dir, 'missing-dir', 'x.json'), 'x'))
  assert.deepEqual(readdirSync(dir), ['state.json'])
})

test('dates past what a Date can hold: a file entry is skipped with one warn line (the boot goes on), the admin API answers 400', async (t) => {
  const mock = await startMock(t)
  const dir = tempDir()
  writeFileSync(join(dir, 'black.json'), JSON.stringify({
    version: 1,
    entries: [
      { ip: '198.51.100.7', addedAt: 1e16 },
      { ip: '198.51.100.8', expiresAt: 9e15 },
      { ip: '198.51.100.9', addedAt: -1 },
      { ip: '198.51.100.10', addedAt: '+275760-09-13T00:00:00.001Z' },
      { ip: '198.51.100.11', addedAt: 8.64e15, reason: 'the latest date there is' }
    ]
  }))
  const gw = await startGateway(t, { env: blacklistEnv(mock.url, dir, { GATEWAY_ADMIN_TOKEN: TOKEN }) })
  assert.deepEqual(gw.app.blacklist.list().map(e => [e.ip, e.addedAt]), [['198.51.100.11', '+275760-09-13T00:00:00.000Z']])
  const warn = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'blacklist file: invalid entries ignored')
  assert.equal(warn.length, 1)
  assert.equal(warn[0].ignored, 4)
  assert.match(warn[0].problems.join(' | '), /addedAt 10000000000000000 of 198\.51\.100\.7 is not a date in range/)

  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  for (const ttl of [9e15, 8.64e15]) {
    const res = await call(`${gw.url}/admin/blacklist`, { method: 'POST', headers: auth, body: JSON.stringify({ ip: '203.0.113.9', ttl }) })
    assert.equal(res.status, 400, `ttl ${ttl}`)
    assert.equal(res.body.error.code, 'invalid_blacklist_entry')
    assert.match(res.body.error.message, /^Invalid blacklist entry: expiresAt \d+ of 203\.0\.113\.9 is not a date in range$/)
  }
  assert.equal(gw.app.blacklist.has('203.0.113.9'), false, 'nothing was added')
  const long = await call(`${gw.url}/admin/blacklist`, { method: 'POST', headers: auth, body: JSON.stringify({ ip: '203.0.113.9', ttl: 1e15 }) })
  assert.equal(long.status, 201, 'a lifetime of 30,000 years is still a date')
  assert.equal((await call(`${gw.url}/v1/models`)).status, 200, 'still serving')
  await gw.app.close()
  const again = await startGateway(t, { env: blacklistEnv(mock.url, dir) })
  assert.deepEqual(again.app.blacklist.list().map(e => e.ip), ['198.51.100.11', '203.0.113.9'], 'what was saved loads back')
})

test('the file is not rewritten once per change: automatic additions arriving over time share one save; an admin change is on disk when acknowledged', async () => {
  const dir = tempDir()
  const file = join(dir, 'black.json')
  const list = new Blacklist()
  let saves = 0
  // each save serialises one snapshot of the whole list: counting snapshots counts rewrites
  const writer = new BlacklistFileWriter(file, silent, () => { saves++; return list.list() }, 60_000)
  const service = new BlacklistService(list, 1000, silent)
  service.attach(writer, null)
  // a flood: one more address every few milliseconds, each after the previous save could end
  for (let i = 0; i < 25; i++) {
    assert.equal(await service.addAutomatic(newEntry(`192.0.2.${i}`, 'flood', null)), true)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  assert.equal(saves, 0, 'nothing rewritten per addition')
  assert.equal(service.size, 25, 'every addition applies at once')

  // an admin change is written at once, with everything gathered so far
  await service.add(newEntry('198.51.100.1', 'admin', null))
  assert.equal(saves, 1)
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).entries.length, 26)

  // what is gathered after it is written by flush (as on close)
  await service.addAutomatic(newEntry('192.0.2.200', 'flood', null))
  await writer.flush()
  assert.equal(saves, 2)
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).entries.length, 27)
  await writer.flush()
  assert.equal(saves, 2, 'nothing left to write')
})
