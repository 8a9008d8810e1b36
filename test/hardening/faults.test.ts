/**
 * Faults, each against a real server that misbehaves: the mock's `x-mock-fault` kinds, a closed
 * port, a name that does not resolve, WebSockets cut without a close frame, a data directory that
 * cannot be written or is full, and the real command killed with SIGKILL while it writes its
 * blacklist. Every case ends with a clear status or stream end for the client, the upstream
 * connection released (the mock's `requests[].closed`), one log line that classifies it, and a
 * gateway that still answers.
 *
 * Also covered elsewhere, not repeated here: client aborts before and after the upstream answered
 * and the bare status of several faults (test/proxy/upstream-failures.test.ts), Redis stopping and
 * coming back (test/abuse/redis-shared.test.ts), a stalled realtime handshake and upstream close
 * codes (test/realtime/relay.test.ts), a corrupt black.json at boot (test/abuse/blacklist.test.ts).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startGateway, startMock, tempDir, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { Probe, wsUrl } from '../realtime/ws-helpers.js'
import { GARBAGE_BODY, INVALID_SSE_BODY } from '../../mock/faults.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { INTERNALS, seededRandom, stillServing, upstreamReleased } from './support.js'

const UPSTREAM_KEY = 'sk-upstream-faults-000001'
const ADMIN_TOKEN = 'adm-faults-token-000001'

/** Short timeouts so hangs end quickly; the limits are what is tested, not their length. */
const TIMEOUTS = { GATEWAY_FIRST_BYTE_TIMEOUT_MS: '400', GATEWAY_IDLE_TIMEOUT_MS: '400' }

type Outcome =
  | { kind: 'error', status: number, code: string }
  | { kind: 'passed', body: string }
  | { kind: 'stream-error-event', code: string }
  | { kind: 'truncated' }

interface FaultCase { name: string, fault: string, stream: boolean, outcome: Outcome, errorClass?: string }

const CASES: FaultCase[] = [
  { name: 'resets before headers', fault: 'reset-before-headers', stream: false, outcome: { kind: 'error', status: 502, code: 'upstream_unreachable' }, errorClass: 'upstream_reset' },
  { name: 'resets before the headers of a stream', fault: 'reset-before-headers', stream: true, outcome: { kind: 'error', status: 502, code: 'upstream_unreachable' }, errorClass: 'upstream_reset' },
  { name: 'hangs before headers', fault: 'hang-before-headers', stream: false, outcome: { kind: 'error', status: 504, code: 'upstream_timeout' }, errorClass: 'upstream_first_byte_timeout' },
  { name: 'resets mid-body (JSON answer cut in half)', fault: 'reset-mid-stream', stream: false, outcome: { kind: 'truncated' }, errorClass: 'upstream_reset' },
  { name: 'hangs mid-body (JSON answer)', fault: 'hang-mid-stream', stream: false, outcome: { kind: 'truncated' }, errorClass: 'upstream_idle_timeout' },
  { name: 'resets mid-stream', fault: 'reset-mid-stream', stream: true, outcome: { kind: 'stream-error-event', code: 'upstream_reset' }, errorClass: 'upstream_reset' },
  { name: 'hangs mid-stream', fault: 'hang-mid-stream', stream: true, outcome: { kind: 'stream-error-event', code: 'upstream_idle_timeout' }, errorClass: 'upstream_idle_timeout' },
  { name: 'sends garbage as JSON (passed on as it is: judging it is the client\'s)', fault: 'garbage', stream: false, outcome: { kind: 'passed', body: GARBAGE_BODY } },
  { name: 'sends invalid SSE (passed on as it is, and ended)', fault: 'invalid-sse', stream: true, outcome: { kind: 'passed', body: INVALID_SSE_BODY } },
  { name: 'sends a 1 MiB header', fault: 'big-header', stream: false, outcome: { kind: 'error', status: 502, code: 'upstream_bad_response' }, errorClass: 'upstream_protocol' },
  { name: 'sends a 1 MiB header on a stream', fault: 'big-header', stream: true, outcome: { kind: 'error', status: 502, code: 'upstream_bad_response' }, errorClass: 'upstream_protocol' },
  { name: 'declares a longer content-length than it sends, then closes', fault: 'wrong-content-length', stream: false, outcome: { kind: 'truncated' }, errorClass: 'upstream_protocol' }
]

function accessLine (gw: GatewayHandle, requestId: string): Record<string, unknown> | undefined {
  return gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.reqId === requestId && l.msg === 'request completed')
}

async function runFault (gw: GatewayHandle, mock: MockUpstream, c: FaultCase, requestId: string): Promise<void> {
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-fault': c.fault, 'x-request-id': requestId },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: c.stream })
  })
  const o = c.outcome
  if (o.kind === 'truncated') {
    // the status went out before the failure; the body can then only be cut, never completed
    assert.equal(res.statusCode, 200)
    await assert.rejects(res.body.text(), 'the client sees a broken body, never a whole one')
  } else {
    const text = await res.body.text()
    assert.doesNotMatch(text, INTERNALS)
    if (o.kind === 'error') {
      assert.equal(res.statusCode, o.status)
      assert.deepEqual(JSON.parse(text).error.code, o.code)
    } else if (o.kind === 'passed') {
      assert.equal(res.statusCode, 200)
      assert.equal(createHash('sha256').update(text, 'latin1').digest('hex'), createHash('sha256').update(o.body, 'latin1').digest('hex'))
    } else {
      assert.equal(res.statusCode, 200)
      const last = text.trim().split('\n\n').at(-1) ?? ''
      assert.match(last, /^data: \{"error":/)
      assert.equal(JSON.parse(last.slice(6)).error.code, o.code)
    }
  }
  await upstreamReleased(mock)
  await until('the access line', () => accessLine(gw, requestId) !== undefined)
  // the usage record on the same line says null where the bare access line leaves the field out
  assert.equal(accessLine(gw, requestId)?.errorClass ?? undefined, c.errorClass)
}

test('upstream faults: a clear status or stream end for the client, the upstream released, one classified line, still serving', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_RATE_LIMIT_ENABLED: 'false', ...TIMEOUTS } })
  for (const [i, c] of CASES.entries()) {
    await t.test(c.name, async () => {
      mock.reset()
      await runFault(gw, mock, c, `fault-${i}`)
      await stillServing(gw.url)
    })
  }
  // a warn line names the class and the cause's code, never a stack or a key
  const warns = gw.logs.filter(l => JSON.parse(l).level >= 40 && /upstream/.test(JSON.parse(l).msg))
  assert.ok(warns.length >= CASES.filter(c => c.errorClass !== undefined).length)
  for (const line of gw.logs) {
    assert.ok(!line.includes(UPSTREAM_KEY))
    assert.doesNotMatch(line, /"stack"/)
  }
})

test('with stream stages in place (context id, reverse aliases), broken streams still pass on and end', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CONTEXT_ID: 'true', GATEWAY_FIELD_ALIASES: '{"content":"text"}', GATEWAY_FIELD_ALIASES_REVERSE: 'true', GATEWAY_RATE_LIMIT_ENABLED: 'false', ...TIMEOUTS }
  })
  for (const [i, fault] of ['invalid-sse', 'reset-mid-stream', 'hang-mid-stream', 'garbage', 'wrong-content-length', 'reset-mid-stream'].entries()) {
    mock.reset()
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mock-fault': fault, 'x-request-id': `staged-${i}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: i < 3 })
    })
    const text = await res.body.text().catch(() => null)
    if (text !== null) assert.doesNotMatch(text, INTERNALS, fault)
    if (fault === 'invalid-sse') assert.match(text ?? '', /data: \{not json\}\n\n$/, 'unparseable events pass on raw')
    if (fault.endsWith('mid-stream') && i < 3) assert.match(text ?? '', /data: \{"error":/)
    await upstreamReleased(mock)
    await until('the access line', () => accessLine(gw, `staged-${i}`) !== undefined)
  }
  await stillServing(gw.url)
})

test('the upstream refuses connections (closed port) → 502 upstream_unreachable, classified upstream_refused', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${port}`, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  for (const stream of [false, true]) {
    const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream }) })
    assert.equal(res.statusCode, 502)
    const text = await res.body.text()
    assert.equal(JSON.parse(text).error.code, 'upstream_unreachable')
    assert.doesNotMatch(text, INTERNALS)
  }
  const warn = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'upstream request failed')
  assert.deepEqual(warn.map(l => [l.errorClass, l.cause]), [['upstream_refused', 'ECONNREFUSED'], ['upstream_refused', 'ECONNREFUSED']])
  await stillServing(gw.url)
})

test('the upstream resets while the client is still uploading → 502, the upload stops, nothing hangs', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let sent = 0
  async function * upload (): AsyncGenerator<Buffer> {
    for (let i = 0; i < 256; i++) { sent++; yield chunk }
  }
  const res = await request(`${gw.url}/v1/files`, {
    method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-mock-fault': 'reset-before-headers' }, body: Readable.from(upload())
  }).catch((err: Error) => err)
  if (res instanceof Error) {
    // the gateway may cut the connection before the client finished sending: still a clear end
    assert.match(res.message, /other side closed|socket|reset|closed|EPIPE/i)
  } else {
    assert.equal(res.statusCode, 502)
    assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'upstream_unreachable')
  }
  assert.ok(sent < 256, `the client stopped sending (sent ${sent} of 256 chunks)`)
  await upstreamReleased(mock)
  await stillServing(gw.url)
})

test('a name that does not resolve → 502 for HTTP and streams, 1011 for a realtime session', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://upstream.invalid', GATEWAY_CONNECT_TIMEOUT_MS: '3000', GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  const res = await request(`${gw.url}/v1/messages`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model: 'claude-3-5-sonnet-latest', max_tokens: 8, messages: [], stream: true })
  })
  assert.equal(res.statusCode, 502)
  const text = await res.body.text()
  assert.doesNotMatch(text, /upstream\.invalid/, 'the host name stays internal')
  assert.deepEqual(JSON.parse(text), { type: 'error', error: { type: 'api_error', message: 'The upstream service could not be reached' } })
  const ws = new Probe(wsUrl(gw.url), ['realtime'])
  const closed = await ws.waitClosed()
  assert.equal(closed.code, 1011)
  const dns = gw.logs.map(l => JSON.parse(l)).find(l => l.msg === 'upstream request failed')
  assert.equal(dns?.errorClass, 'upstream_dns')
  await stillServing(gw.url)
})

test('realtime: either side cutting its TCP connection without a close frame ends the other side cleanly', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })

  // the upstream drops its socket (the mock terminates when asked): the client hears 1011
  const a = new Probe(wsUrl(gw.url), ['realtime'])
  await a.received(1)
  a.send({ type: 'mock.terminate' })
  assert.deepEqual(await a.waitClosed(), { code: 1011, reason: 'upstream connection lost' })

  // the client's socket is destroyed mid-session: the upstream is closed (1006 is lifted to 1001)
  const b = new Probe(wsUrl(gw.url), ['realtime'])
  await b.received(1)
  ;(b.ws as unknown as { _socket: { destroy: () => void } })._socket.destroy()
  await until('the upstream session closed', () => mock.wsConnections[1]?.closeCode !== undefined)
  assert.equal(mock.wsConnections[1].closeCode, 1001)

  await upstreamReleased(mock, 'both upstream WebSocket connections are released')
  await until('one line per session', () => gw.logs.filter(l => l.includes('realtime session closed')).length === 2)
  const lines = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'realtime session closed')
  // the line records what happened (1006: no close frame); the upstream was sent 1001
  assert.deepEqual(lines.map(l => [l.closeCode, l.closedBy]), [[1011, 'upstream'], [1006, 'client']])
  await stillServing(gw.url)
})

// ---------------------------------------------------------------------------------------------
// The data directory (BASE_PATH): unwritable, read-only, full. Requests keep being served, the
// list stays whole in memory, one warn line per run of failures, and the first write that works
// again says so and saves everything.

async function adminAdd (gw: GatewayHandle, ip: string): Promise<number> {
  const res = await request(`${gw.url}/admin/blacklist`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ ip })
  })
  await res.body.dump()
  return res.statusCode
}

function warnLines (gw: GatewayHandle): Array<Record<string, unknown>> {
  return gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'blacklist file could not be written; the list stays in memory')
}

function fileIps (dir: string): string[] {
  return (JSON.parse(readFileSync(join(dir, 'black.json'), 'utf8')) as { entries: Array<{ ip: string }> }).entries.map(e => e.ip)
}

async function dataDirFault (t: TestContext, dir: string, fault: { apply: () => void | Promise<void>, lift: () => void | Promise<void>, cause: RegExp }): Promise<void> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, BASE_PATH: dir, GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  assert.equal(await adminAdd(gw, '192.0.2.1'), 201)
  assert.deepEqual(fileIps(dir), ['192.0.2.1'])

  await fault.apply()
  for (let i = 2; i <= 6; i++) {
    assert.equal(await adminAdd(gw, `192.0.2.${i}`), 201, 'the change applies in memory even though it cannot be saved')
    const ok = await request(`${gw.url}/v1/models`)
    assert.equal(ok.statusCode, 200, 'requests keep being served')
    await ok.body.dump()
  }
  const warns = warnLines(gw)
  assert.equal(warns.length, 1, 'one warn line for the whole run of failures')
  assert.match(String(warns[0].cause), fault.cause)
  assert.equal(gw.app.blacklist.size, 6)
  await stillServing(gw.url)

  await fault.lift()
  assert.equal(await adminAdd(gw, '192.0.2.7'), 201)
  assert.ok(gw.logs.some(l => l.includes('blacklist file written again')))
  assert.deepEqual(fileIps(dir), ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5', '192.0.2.6', '192.0.2.7'], 'nothing lost')
  assert.equal(readdirSync(dir).filter(n => n.endsWith('.tmp')).length, 0, 'no temporary file left behind')
}

test('BASE_PATH unwritable (black.json replaced by a directory): writes fail with one warn line, requests are served, nothing is lost', async (t) => {
  // tests run as root, for whom chmod does not stop writes: a directory where the file must go
  // makes every rename fail (EISDIR) for any user
  const dir = tempDir()
  await dataDirFault(t, dir, {
    apply: () => { rmSync(join(dir, 'black.json')); mkdirSync(join(dir, 'black.json')) },
    lift: () => { rmdirSync(join(dir, 'black.json')) },
    cause: /EISDIR|directory/
  })
})

test('BASE_PATH unusable at boot (a file where the directory should be): the boot stops with one clear line', async (t) => {
  const file = join(tempDir(), 'not-a-directory')
  writeFileSync(file, 'x')
  await assert.rejects(startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'mock', BASE_PATH: join(file, 'data') } }),
    /blacklist\.dir ".*" cannot be created \(ENOTDIR\); set GATEWAY_DATA_DIR \/ BASE_PATH to a writable directory/)
})

/** A tmpfs of `size` mounted on a fresh directory; null when this process may not mount (not root, no CAP_SYS_ADMIN). */
function tinyTmpfs (t: TestContext, size: string): string | null {
  const dir = tempDir('gw-mnt-')
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]).status !== 0) return null
  t.after(() => { spawnSync('umount', ['-l', dir]) })
  return dir
}

/**
 * Remounts `dir` read-only or writable. The kernel refuses a read-only remount (EBUSY) while any
 * file on it is open for writing, which a save still closing its file can be for a moment: tried
 * again for up to two seconds, with mount's own words in the failure.
 */
async function remount (dir: string, mode: 'ro' | 'rw'): Promise<{ ok: boolean, why: string }> {
  let why = ''
  for (const deadline = Date.now() + 2000; ;) {
    const r = spawnSync('mount', ['-o', `remount,${mode}`, dir], { encoding: 'utf8' })
    if (r.status === 0) return { ok: true, why: '' }
    why = `mount -o remount,${mode} exited ${String(r.status)}: ${(r.stderr ?? '').trim()}`
    if (Date.now() > deadline) return { ok: false, why }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

test('BASE_PATH read-only (a tmpfs remounted read-only: EROFS): one warn line, requests served, saved once writable again', async (t) => {
  const dir = tinyTmpfs(t, '1m')
  if (dir === null) { t.skip('needs permission to mount a tmpfs; the EISDIR test above covers unwritable directories'); return }
  // some sandboxes let a process mount a tmpfs but not remount it: probed first, on the empty mount
  const probe = await remount(dir, 'ro')
  if (!probe.ok) { t.skip(`this machine cannot remount a tmpfs read-only (${probe.why}); the EISDIR test above covers unwritable directories`); return }
  assert.ok((await remount(dir, 'rw')).ok)
  const must = async (mode: 'ro' | 'rw'): Promise<void> => { const r = await remount(dir, mode); assert.ok(r.ok, r.why) }
  await dataDirFault(t, dir, {
    apply: async () => { await must('ro') },
    lift: async () => { await must('rw') },
    cause: /EROFS|read-only/
  })
})

test('BASE_PATH full (a 64 KiB tmpfs filled up: ENOSPC): one warn line, the old file intact, saved once there is room', async (t) => {
  const dir = tinyTmpfs(t, '64k')
  if (dir === null) { t.skip('needs permission to mount a tmpfs; /dev/full cannot stand in (the temporary file name is random)'); return }
  const filler = join(dir, 'filler')
  await dataDirFault(t, dir, {
    apply: () => {
      // fill every last block; the old black.json stays as it was
      try {
        for (let i = 0; i < 1024; i++) writeFileSync(filler, Buffer.alloc(4096), { flag: 'a' })
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC')
      }
      assert.deepEqual(fileIps(dir), ['192.0.2.1'])
    },
    lift: () => { rmSync(filler) },
    cause: /ENOSPC|no space/
  })
})

// ---------------------------------------------------------------------------------------------
// SIGKILL during blacklist writes, on the real command

const TSX = import.meta.resolve('tsx')
const CLI = ['--import', TSX, fileURLToPath(new URL('../../src/cli.ts', import.meta.url))]

interface Cli { child: ChildProcess, url: string, lines: Array<Record<string, unknown>> }

async function startCli (t: TestContext, env: Record<string, string>): Promise<Cli> {
  const child = spawn(process.execPath, CLI, { env: { PATH: process.env.PATH, GATEWAY_PORT: '0', ...env }, cwd: tempDir(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines: Array<Record<string, unknown>> = []
  const reader = createInterface({ input: child.stdout! })
  const url = await new Promise<string>((resolve, reject) => {
    reader.on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      lines.push(entry)
      if (entry.msg === 'gateway listening') resolve(String(entry.url))
    })
    child.once('exit', () => reject(new Error('the gateway exited before listening')))
  })
  return { child, url, lines }
}

test('SIGKILL at a seeded random moment during blacklist writes: black.json is intact at the next start and holds every acknowledged addition, in order', async (t) => {
  const dir = tempDir()
  const env = { BASE_PATH: dir, GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_UPSTREAM_URL: 'mock', GATEWAY_RATE_LIMIT_ENABLED: 'false', GATEWAY_LOG_LEVEL: 'info' }
  const random = seededRandom(0x5eed11)
  const sequence: string[] = []
  let acknowledged = 0
  let interrupted = 0
  let cli = await startCli(t, env)
  for (let round = 0; round < 3; round++) {
    // k sequential acknowledged additions, then one more in flight when the kill lands
    const k = 5 + Math.floor(random() * 40)
    const killAfterMs = random() * 4
    for (let i = 0; i <= k; i++) {
      const ip = `10.${round}.${i >> 8}.${i & 255}`
      sequence.push(ip)
      const pending = request(`${cli.url}/admin/blacklist`, {
        method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ ip, reason: `round ${round}` })
      })
      if (i < k) {
        const res = await pending
        await res.body.dump()
        assert.equal(res.statusCode, 201)
        acknowledged = sequence.length
      } else {
        pending.then(r => r.body.dump(), () => {}).catch(() => {})
        await new Promise(resolve => setTimeout(resolve, killAfterMs))
        const exited = new Promise(resolve => cli.child.once('exit', resolve))
        cli.child.kill('SIGKILL')
        await exited
      }
    }
    const leftovers = readdirSync(dir).filter(n => n.endsWith('.tmp'))
    if (leftovers.length > 0) interrupted++

    cli = await startCli(t, env)
    // the file parses and is taken as it is: no corrupt-file line, no entry skipped
    assert.ok(!cli.lines.some(l => /corrupt|cannot be read|invalid entries/.test(String(l.msg))), 'the file was intact')
    const ips = fileIps(dir)
    assert.deepEqual(ips, sequence.slice(0, ips.length), 'the file holds a prefix of the additions, in order')
    assert.ok(ips.length >= acknowledged, `every acknowledged addition is on disk (${ips.length} of ${acknowledged})`)
    assert.ok(ips.length <= sequence.length)
    const loaded = cli.lines.find(l => l.msg === 'blacklist loaded')
    assert.equal(loaded?.entries, ips.length)
    assert.equal(readdirSync(dir).filter(n => n.endsWith('.tmp')).length, 0, 'temporary files of the killed write were removed at boot')
    // the restarted gateway serves and refuses listed addresses
    const health = await request(`${cli.url}/healthz`)
    assert.equal(health.statusCode, 200)
    await health.body.dump()
    // what was lost in flight (at most the one unacknowledged addition) is re-sent by its caller
    sequence.length = ips.length
    acknowledged = ips.length
  }
  t.diagnostic(`kills that landed inside a write (temporary file left): ${interrupted} of 3`)
  cli.child.kill('SIGTERM')
  assert.ok(existsSync(join(dir, 'black.json')))
})
