/**
 * Seed 003's X-Target-Host, made safe: off by default, allowlisted, every SSRF trick refused with
 * 400 and nothing sent upstream, DNS answers checked and pinned at connect time, and the header
 * never forwarded.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { rootCertificates } from 'node:tls'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, startMock, tempDir, twoTargets } from '../helper.js'
import { allowList, checkTargetHost, isPublicAddress, parseTargetHost, pinnedLookup, type Resolver } from '../../src/routing/target-host.js'
import { dialUpstream, PinnedProxyAgent } from '../../src/realtime/upstream.js'
import { createDispatcher } from '../../src/routing/outbound.js'
import { startForwardProxy } from './support.js'
import { selfSigned } from '../tls.js'
import type { LookupFunction } from 'node:net'

test('off by default: the header is ignored and never forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': '169.254.169.254' } })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.headers['x-target-host'], undefined)
})

test('on: an allowlisted host (default list: the targets\' hosts) selects that target; the header is not forwarded', async (t) => {
  const a = await startMock(t)
  const b = await startMock(t)
  const gw = await startGateway(t, { yaml: twoTargets(a.url, b.url), env: { GATEWAY_TARGET_HEADER: 'true' } })
  for (const value of [`127.0.0.1:${b.port}`, `https://127.0.0.1:${b.port}`, `127.0.0.1:${b.port}`.toUpperCase()]) {
    const res = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': value } })
    assert.equal(res.statusCode, 200, value)
    await res.body.dump()
    const seen = b.requests.at(-1)!
    assert.equal(seen.headers['x-which'], 'b')
    assert.equal(seen.headers['x-target-host'], undefined)
  }
  assert.equal(a.count(), 0)
  const plain = await request(`${gw.url}/v1/models`)
  await plain.body.dump()
  assert.equal(a.count(), 1, 'without the header, normal routing')
})

test('every SSRF trick is refused with 400 and nothing reaches any upstream', async (t) => {
  const a = await startMock(t)
  const b = await startMock(t)
  // even with "*" (any public host) on the allowlist
  const gw = await startGateway(t, {
    yaml: twoTargets(a.url, b.url, `routing:\n  targetHeader:\n    enabled: true\n    allowHosts: ["*", "127.0.0.1:${b.port}"]\n`)
  })
  const p = a.port
  const tricks = [
    '127.0.0.1', `127.0.0.1:${p}`, '127.1', `127.1:${p}`, '127.000.000.001', '2130706433', '0x7f000001', '0x7f.0.0.1', '0177.0.0.1', '017700000001',
    '0.0.0.0', '0', `0.0.0.0:${p}`, '[::1]', `[::1]:${p}`, '::1', '[::]', '[0:0:0:0:0:0:0:1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', `[::ffff:127.0.0.1]:${p}`,
    '169.254.169.254', 'metadata.google.internal', 'metadata', '100.100.100.200', '[fd00:ec2::254]', '[fe80::1]', '10.0.0.1', '172.16.0.1', '192.168.1.1',
    'localhost', 'LOCALHOST', `localhost:${p}`, 'foo.localhost', 'printer.local', 'vm', 'runsc',
    'user@api.openai.com', 'api.openai.com@127.0.0.1', `user:pass@127.0.0.1:${p}`,
    'api.openai.com:443', 'api.openai.com:8080', 'api.openai.com/v1/models?', `https://localhost:${p}/injected?`, 'api.openai.com?x=1', 'api.openai.com#frag',
    'api.openai.com%2f..', 'api.openai.com%0d%0aX-Evil:%201', 'api.openai.com\\@127.0.0.1', 'http://api.openai.com', 'api.openai.com.', '.openai.com', 'a..b.com', '-a.example.com',
    'x'.repeat(300) + '.com', ''
  ]
  for (const value of tricks) {
    const res = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': value } })
    const body = await res.body.json() as { error: { code: string, message: string } }
    assert.equal(res.statusCode, 400, `X-Target-Host: ${value} must be refused`)
    assert.equal(body.error.code, 'target_host_not_allowed')
    assert.equal(body.error.message, 'X-Target-Host names a host that is not allowed', 'one message: no oracle')
  }
  assert.equal(a.count() + b.count(), 0)

  // repeated header → refused too
  const twice = await request(`${gw.url}/v1/models`, { headers: ['x-target-host', `127.0.0.1:${b.port}`, 'x-target-host', `127.0.0.1:${b.port}`] })
  assert.equal(twice.statusCode, 400)
  await twice.body.dump()

  // the exact allowlist entry still works
  const ok = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': `127.0.0.1:${b.port}` } })
  assert.equal(ok.statusCode, 200)
  await ok.body.dump()
  assert.equal(b.count(), 1)
})

test('CR/LF in the header value never reaches routing: refused at the HTTP parser', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_TARGET_HEADER: 'true', GATEWAY_TARGET_HEADER_ALLOW: '*' } })
  const { port } = new URL(gw.url)
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write('GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Target-Host: api.openai.com\rX-Evil: 1\r\nConnection: close\r\n\r\n')
    })
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString() })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
  assert.match(reply, /^HTTP\/1\.1 400/)
  assert.equal(mock.count(), 0)
  assert.equal(parseTargetHost('api.openai.com\r\nX-Evil: 1'), null)
  assert.equal(parseTargetHost('api.openai.com\n'), null)
})

test('isPublicAddress: private, loopback, link-local, metadata, mapped and embedded forms are not public', () => {
  const notPublic = [
    '127.0.0.1', '127.255.255.254', '0.0.0.0', '10.1.2.3', '100.64.0.1', '100.100.100.200', '169.254.169.254', '172.16.0.1', '172.31.255.255',
    '192.168.0.1', '192.0.2.1', '198.18.0.1', '224.0.0.1', '255.255.255.255', '::', '::1', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd00:ec2::254',
    'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::127.0.0.1', '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::', '2001:db8::1', 'not-an-ip', '', '1.2.3', '::ffff:1.2.3.4.5'
  ]
  for (const ip of notPublic) assert.equal(isPublicAddress(ip), false, ip)
  for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::']) {
    assert.equal(isPublicAddress(ip), true, ip)
  }
})

function fakeResolver (table: Record<string, string[]>): Resolver {
  return async (host) => {
    const found = table[host]
    if (found === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' })
    return found.map(address => ({ address, family: address.includes(':') ? 6 : 4 }))
  }
}

test('DNS names on a wildcard allowlist are accepted only when every address they resolve to is public', async () => {
  const resolve = fakeResolver({
    'api.good.example': ['8.8.8.8', '2606:4700:4700::1111'],
    'rebind.good.example': ['8.8.8.8', '127.0.0.1'],
    'meta.good.example': ['169.254.169.254'],
    'mapped.good.example': ['::ffff:10.0.0.1'],
    'api.other.example': ['8.8.4.4']
  })
  const allow = allowList(['*.good.example', 'fixed.internal:8443'])
  assert.deepEqual(await checkTargetHost('api.good.example', allow, resolve), { kind: 'checked', hostname: 'api.good.example' })
  assert.deepEqual(await checkTargetHost('https://API.good.example', allow, resolve), { kind: 'checked', hostname: 'api.good.example' })
  for (const refused of ['rebind.good.example', 'meta.good.example', 'mapped.good.example', 'missing.good.example', 'api.other.example', 'good.example', 'api.good.example:443']) {
    assert.equal(await checkTargetHost(refused, allow, resolve), null, refused)
  }
  // an exact entry is trusted as configured, without DNS
  assert.deepEqual(await checkTargetHost('fixed.internal:8443', allow, resolve), { kind: 'exact', authority: 'fixed.internal:8443' })
  assert.equal(await checkTargetHost('fixed.internal', allow, resolve), null)
})

test('the connection is pinned: a name that resolves to a private address at connect time is never dialled', async (t) => {
  const mock = await startMock(t)
  // passed the check earlier, now rebinds to loopback, where the mock listens
  const lookup = pinnedLookup(fakeResolver({ 'rebind.good.example': ['127.0.0.1'] }))
  const dispatcher = createDispatcher({ caFile: '', connectTimeoutMs: 2000, connections: 1, proxyUrl: null, lookup })
  t.after(() => dispatcher.close())
  await assert.rejects(dispatcher.request({ origin: `http://rebind.good.example:${mock.port}`, path: '/v1/models', method: 'GET' }), /non-public/)
  assert.equal(mock.count(), 0)

  const got = await new Promise<unknown>((resolve) => {
    pinnedLookup(fakeResolver({ 'ok.example': ['8.8.8.8', '::ffff:1.1.1.1'] }))('ok.example', { all: true }, (err, all) => resolve(err ?? all))
  })
  assert.deepEqual(got, [{ address: '8.8.8.8', family: 4 }, { address: '::ffff:1.1.1.1', family: 6 }])
})

/** A lookup that answers loopback for every name (the pinned one refuses it), in both forms. */
const toLoopback: LookupFunction = (_host, options, callback) => {
  if (options.all === true) (callback as unknown as (err: null, all: Array<{ address: string, family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }])
  else callback(null, '127.0.0.1', 4)
}

test('through an outbound proxy a checked host is tunnelled to its checked address, never its name; TLS still checks the name', async (t) => {
  const tls = selfSigned('api.pinned.test')
  const mock = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const proxy = await startForwardProxy(t)
  const tunnel = createDispatcher({ caFile: tls.certFile, connectTimeoutMs: 2000, connections: 1, proxyUrl: proxy.url, lookup: toLoopback, pinnedHost: 'api.pinned.test' })
  t.after(() => tunnel.destroy())
  // bounded: a tunnel to the name would leave the proxy resolving a name that does not exist
  const res = await tunnel.request({ origin: `https://api.pinned.test:${mock.port}`, path: '/v1/models', method: 'GET', signal: AbortSignal.timeout(5000) })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.deepEqual(proxy.seen, [`CONNECT 127.0.0.1:${mock.port}`], 'the proxy is given the address, not the name')
  assert.equal(mock.requests.at(-1)?.headers.host, `api.pinned.test:${mock.port}`)

  // with the pinned lookup, a name that rebinds inside is refused before any CONNECT
  const pinned = createDispatcher({ caFile: tls.certFile, connectTimeoutMs: 2000, connections: 1, proxyUrl: proxy.url, lookup: pinnedLookup(fakeResolver({ 'rebind.good.example': ['10.0.0.7'] })), pinnedHost: 'rebind.good.example' })
  t.after(() => pinned.destroy())
  await assert.rejects(pinned.request({ origin: 'https://rebind.good.example', path: '/v1/models', method: 'GET' }), /non-public/)
  assert.equal(proxy.seen.length, 1)
  assert.equal(mock.count(), 1)
})

test('the realtime dial is pinned too: a checked host that rebinds to loopback is never dialled', async (t) => {
  const mock = await startMock(t)
  const lookup = pinnedLookup(fakeResolver({ 'rebind.good.example': ['127.0.0.1'] }))
  const socket = dialUpstream({ url: `ws://rebind.good.example:${mock.port}/v1/realtime?model=gpt-4o-realtime-preview`, protocols: ['realtime'], headers: {}, maxPayload: 1024 * 1024, lookup })
  const failure = await new Promise<Error>((resolve) => {
    socket.once('error', resolve)
    socket.once('open', () => resolve(new Error('dialled')))
  })
  assert.match(failure.message, /non-public/)
  assert.equal(mock.count(), 0)
})

test('the realtime dial through a proxy is pinned the same way: CONNECT to the checked address, TLS by name', async (t) => {
  const tls = selfSigned('rt.pinned.test')
  const mock = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const proxy = await startForwardProxy(t)
  const outcome = async (socket: ReturnType<typeof dialUpstream>): Promise<string> => await new Promise((resolve) => {
    socket.once('open', () => { socket.close(); resolve('open') })
    socket.once('error', (err) => resolve(err.message))
  })
  const dial = (host: string, agent: PinnedProxyAgent): ReturnType<typeof dialUpstream> => dialUpstream({
    url: `wss://${host}:${mock.port}/v1/realtime?model=gpt-4o-realtime-preview`,
    protocols: ['realtime'],
    headers: {},
    maxPayload: 1024 * 1024,
    ca: [...rootCertificates, tls.cert],
    agent
  })
  assert.equal(await outcome(dial('rt.pinned.test', new PinnedProxyAgent(proxy.url, toLoopback))), 'open')
  assert.deepEqual(proxy.seen, [`CONNECT 127.0.0.1:${mock.port}`], 'the proxy is given the address, not the name')

  const refused = await outcome(dial('rebind.good.example', new PinnedProxyAgent(proxy.url, pinnedLookup(fakeResolver({ 'rebind.good.example': ['10.0.0.7'] })))))
  assert.match(refused, /non-public/)
  assert.equal(proxy.seen.length, 1)
})

test('an allowlisted host that is no configured target gets the client\'s own credentials, never a configured key', async (t) => {
  const dir = tempDir('gw-tls-')
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const other = await startMock(t, { tls: { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') } })
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_UPSTREAM_KEY: 'sk-configured-upstream-key',
      GATEWAY_UPSTREAM_CA_FILE: certFile,
      GATEWAY_TARGET_HEADER: 'true',
      GATEWAY_TARGET_HEADER_ALLOW: `127.0.0.1:${other.port}`
    }
  })
  const res = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': `127.0.0.1:${other.port}`, authorization: 'Bearer sk-client-own-key-1' } })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(other.requests.at(-1)!.headers.authorization, 'Bearer sk-client-own-key-1')
  assert.equal(mock.count(), 0)
  assert.match(gw.logText(), /"upstream":"x-target-host"/)
  // the configured targets' hosts are no longer allowed once an explicit list is given
  const notListed = await request(`${gw.url}/v1/models`, { headers: { 'x-target-host': `127.0.0.1:${mock.port}` } })
  assert.equal(notListed.statusCode, 400)
  await notListed.body.dump()
})
