/**
 * Property-based fuzzing (fast-check) of the whole gateway: random methods, paths, query strings,
 * headers and bodies, through every plugin and route to the real mock upstream. For every request:
 * - no answer is the gateway's own generic 500 (an unexpected throw), and no answer shows
 *   internals (stack frames, file paths, undici or Node error text);
 * - no configured secret (upstream keys, client keys, the admin token) appears in any answer's
 *   headers or body, nor in any log line, whatever the request carried;
 * - the process never crashes (it still answers /healthz afterwards) and logs nothing at error level.
 *
 * Multipart uploads get their own run: forms with random part headers (dispositions without a
 * usable name, RFC 2231 names, duplicates, random header lines, LF or CRLF line endings, cut
 * short), sent by a key restricted to some models and to an Azure target whose form is held until
 * its model field; a restricted key's form that the upstream answered never named another model.
 *
 * Seeded and bounded: the same requests on every run. Most go through fastify.inject (fast, the
 * full app but no socket); a smaller sample goes over real HTTP. HARDENING_FUZZ_RUNS,
 * HARDENING_FUZZ_HTTP_RUNS and HARDENING_FUZZ_FORM_RUNS raise the counts; HARDENING_FUZZ_SEED
 * changes the seed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Client } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { INTERNALS, stillServing } from './support.js'

const RUNS = Number(process.env.HARDENING_FUZZ_RUNS ?? 600)
const HTTP_RUNS = Number(process.env.HARDENING_FUZZ_HTTP_RUNS ?? 120)
const FORM_RUNS = Number(process.env.HARDENING_FUZZ_FORM_RUNS ?? 150)
const SEED = Number(process.env.HARDENING_FUZZ_SEED ?? 20261122)

const SECRETS = {
  upstream: 'sk-fuzz-upstream-9d2f61c0a8',
  pool: 'fuzz-pool-key-b81e44d7c2',
  anthropic: 'fuzz-anthropic-key-5ac913',
  client: 'fuzz-client-key-7f3a9c51e2',
  restricted: 'fuzz-restricted-key-33e0d4',
  mapped: 'fuzz-mapped-upstream-key-a1c2e3',
  admin: 'fuzz-admin-token-c4d8e2f109'
}

// ------------------------------------------------------------------------------- arbitraries

const SEGMENTS = [
  'v1', 'chat', 'completions', 'models', 'gpt-4o-mini', 'embeddings', 'messages', 'count_tokens', 'files', 'audio',
  'speech', 'transcriptions', 'realtime', 'responses', 'openai', 'deployments', 'admin', 'cache', 'clear', 'keys',
  'blacklist', 'healthz', 'ping', 'default', 'claude', 'az', 'release', 'test', '..', '.', '%2e%2e', '%2E', '%2f', '%5c',
  '%00', '%ff', '%', '%zz', '%c3%a9', 'é', '你好', '', ' ', '\\', ';', '..;', 'a'.repeat(600), '127.0.0.1', '[::1]', '*'
]

const ENDPOINTS = [
  '/v1/chat/completions', '/v1/models', '/v1/models/gpt-4o', '/v1/embeddings', '/v1/messages', '/v1/messages/count_tokens',
  '/v1/files', '/v1/audio/speech', '/v1/responses', '/claude/v1/messages', '/az/v1/chat/completions', '/default/v1/models',
  '/openai/deployments/prod/chat/completions', '/release/v1/chat/completions', '/v1/realtime', '/healthz', '/ping',
  '/admin/keys', '/admin/cache/clear', '/admin/blacklist'
]

/** Mostly real endpoints (so requests get through auth and routing to the upstream), some mangled, some random. */
const pathArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...ENDPOINTS) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...ENDPOINTS), fc.constantFrom(...SEGMENTS)).map(([e, s]) => `${e}/${s}`) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom(...SEGMENTS), { minLength: 0, maxLength: 7 }).map(s => `/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/v1/', '/admin/', '/openai/', '/claude/v1/', '/'), fc.string({ maxLength: 40 })).map(([p, s]) => p + s) },
  { weight: 1, arbitrary: fc.webPath().map(p => p === '' ? '/' : p.startsWith('/') ? p : `/${p}`) }
)

const queryArb = fc.option(fc.oneof(
  fc.webQueryParameters(),
  fc.constantFrom('model=gpt-4o-mini', 'model=a&model=b', 'api-version=2024-10-21', 'key=fuzz', '%ff=%fe', '=', '&&', 'a=%')
), { nil: undefined })

const METHODS = ['GET', 'POST', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']

/** Header values inject and HTTP both accept: visible ASCII and spaces, no CR/LF (the parser owns those: bad-input.test.ts). */
const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)), maxLength: 80 })
const token = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 1, maxLength: 20 })

const KNOWN_HEADERS: Record<string, fc.Arbitrary<string>> = {
  'content-type': fc.oneof(
    { weight: 4, arbitrary: fc.constant('application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'multipart/form-data; boundary=x', 'multipart/form-data',
        'application/octet-stream', 'application/x-www-form-urlencoded', 'application/vnd.api+json', ';;', '')
    }),
  authorization: fc.oneof(
    { weight: 12, arbitrary: fc.constant(`Bearer ${SECRETS.client}`) },
    { weight: 3, arbitrary: fc.constantFrom(`Bearer ${SECRETS.restricted}`, `Bearer ${SECRETS.admin}`, `bearer ${SECRETS.client}`, 'Bearer', 'Basic Zm9vOmJhcg==') },
    { weight: 1, arbitrary: headerValue }),
  'x-api-key': fc.oneof(fc.constantFrom(SECRETS.client, SECRETS.restricted, SECRETS.admin), headerValue),
  'api-key': fc.oneof(fc.constantFrom(SECRETS.client, SECRETS.admin), headerValue),
  'anthropic-version': fc.constantFrom('2023-06-01', 'x'),
  'anthropic-beta': headerValue,
  'x-target-host': fc.constantFrom('api.openai.com', '127.0.0.1', 'localhost:80', '169.254.169.254', 'evil.example', 'a b', ''),
  'x-request-id': fc.oneof(token, headerValue),
  'x-forwarded-for': fc.constantFrom('1.2.3.4', 'garbage', '::1, 10.0.0.1'),
  'accept-encoding': fc.constantFrom('gzip', 'br', 'identity', '*'),
  accept: fc.constantFrom('text/event-stream', 'application/json', '*/*'),
  'openai-beta': fc.constantFrom('realtime=v1', 'assistants=v2'),
  origin: fc.constantFrom('https://example.com', 'null'),
  'access-control-request-method': fc.constantFrom('POST', 'GET'),
  host: fc.constantFrom('claude.api.example.com', 'az.example.com', 'oa-x.example.com', '127.0.0.1', 'localhost')
}

/** A few known headers (authorization and content-type usually among them) and a few random ones. */
const headersArb = fc.tuple(
  fc.uniqueArray(fc.constantFrom(...Object.keys(KNOWN_HEADERS)), { maxLength: 4 })
    .chain(names => fc.record(Object.fromEntries(names.map(n => [n, KNOWN_HEADERS[n]])))),
  fc.record({ authorization: KNOWN_HEADERS.authorization, 'content-type': KNOWN_HEADERS['content-type'] }, { requiredKeys: ['authorization'] }),
  fc.dictionary(token.filter(n => !n.startsWith('x-mock') && !['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect', 'te', 'trailer', 'keep-alive'].includes(n)), headerValue, { maxKeys: 3 })
).map(([known, usual, extra]) => ({ ...extra, ...usual, ...known }) as Record<string, string>)

const MODELS = ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-latest', 'text-embedding-3-small', '', 'x'.repeat(300), '../admin', 'a\r\nb', '你好']

const bodyArb = fc.option(fc.oneof(
  { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
  {
    weight: 4,
    arbitrary: fc.record({
      model: fc.oneof(fc.constantFrom(...MODELS), fc.jsonValue({ maxDepth: 1 })),
      stream: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 0 })),
      messages: fc.oneof(
        fc.array(fc.record({ role: fc.constantFrom('user', 'assistant', 'system'), content: fc.oneof(fc.string({ maxLength: 60 }), fc.jsonValue({ maxDepth: 2 })) }), { maxLength: 3 }),
        fc.jsonValue({ maxDepth: 2 })
      ),
      MODEL: fc.constantFrom(...MODELS),
      max_tokens: fc.integer(),
      input: fc.string({ maxLength: 40 })
    }, { requiredKeys: ['model'] }).map(o => JSON.stringify(o))
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map(a => Buffer.from(a)) }
), { nil: undefined })

interface FuzzRequest { method: string, path: string, query?: string, headers: Record<string, string>, body?: string | Buffer }

const requestArb: fc.Arbitrary<FuzzRequest> = fc.record({
  method: fc.constantFrom(...METHODS),
  path: pathArb,
  query: queryArb,
  headers: headersArb,
  body: bodyArb
}, { requiredKeys: ['method', 'path', 'headers'] })

/** The request target as sent on the wire: anything outside visible ASCII percent-encoded (clients do that). */
function urlOf (r: FuzzRequest): string {
  const url = r.query === undefined ? r.path : `${r.path}?${r.query}`
  return url.replace(/[^\x21-\x7e]/g, c => encodeURIComponent(c))
}

/**
 * fastify.inject parses the URL as a browser would (WHATWG: `..` removed, `\` read as `/`), and
 * throws on what it cannot parse; such targets go over real HTTP below and through raw sockets in
 * bad-input.test.ts, which send them byte for byte.
 */
function injectable (r: FuzzRequest): boolean {
  const url = urlOf(r)
  try {
    // eslint-disable-next-line no-new
    new URL(url.startsWith('//') ? `http://localhost${url}` : url, 'http://localhost')
    return true
  } catch {
    return false
  }
}

// ------------------------------------------------------------------------------- checks

const SECRET_VALUES = Object.values(SECRETS)

/** status → count, reported per test so a run that never reaches the upstream would show */
type Tally = Map<number, number>

function tallyText (tally: Tally): string {
  return [...tally.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')
}

function checkAnswer (r: FuzzRequest, status: number, headers: Record<string, unknown>, body: string, tally: Tally): void {
  tally.set(status, (tally.get(status) ?? 0) + 1)
  const where = `${r.method} ${urlOf(r)}`
  assert.ok(status >= 100 && status <= 599, `${where}: status ${status}`)
  const headerText = JSON.stringify(headers)
  for (const secret of SECRET_VALUES) {
    assert.ok(!body.includes(secret) && !headerText.includes(secret), `${where}: a secret in the answer`)
  }
  assert.doesNotMatch(body, INTERNALS, `${where}: internals in the answer`)
  if (status >= 500 && body !== '') {
    // every gateway 5xx is one of its coded upstream answers, never the generic catch-all
    const parsed = JSON.parse(body) as { error?: { code?: string, type?: string } }
    assert.notEqual(parsed.error?.code, 'internal_error', `${where}: an unexpected error became a 500`)
  }
}

function checkLogs (gw: GatewayHandle): void {
  for (const line of gw.logs) {
    for (const secret of SECRET_VALUES) assert.ok(!line.includes(secret), `a secret in a log line: ${line.slice(0, 200)}`)
    const entry = JSON.parse(line) as { level: number, msg: string }
    assert.ok(entry.level < 50, `an error-level line: ${line.slice(0, 3000)}`)
  }
}

async function fuzzGateway (t: import('node:test').TestContext, extraEnv: Record<string, string>, yaml?: string): Promise<GatewayHandle & { mock: MockUpstream }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_UPSTREAM_KEY: SECRETS.upstream,
      GATEWAY_CLIENT_KEYS: JSON.stringify([
        { name: 'client', key: SECRETS.client },
        { name: 'restricted', key: SECRETS.restricted, allowedModels: ['gpt-4o-mini'], allowedTargets: ['default'] },
        { name: 'mapped', keySha256: '0'.repeat(64), upstreamKey: SECRETS.mapped }
      ]),
      GATEWAY_ADMIN_TOKEN: SECRETS.admin,
      GATEWAY_RATE_LIMIT_ENABLED: 'false',
      // a request the fuzzer makes hang upstream ends quickly
      GATEWAY_FIRST_BYTE_TIMEOUT_MS: '3000',
      GATEWAY_IDLE_TIMEOUT_MS: '3000',
      GATEWAY_LOG_LEVEL: 'debug',
      ...extraEnv
    },
    ...(yaml !== undefined ? { yaml: yaml.replaceAll('MOCK_URL', mock.url) } : {})
  })
  return { ...gw, mock }
}

async function injectRuns (gw: GatewayHandle, runs: number, seed: number): Promise<Tally> {
  const tally: Tally = new Map()
  await fc.assert(fc.asyncProperty(requestArb.filter(injectable), async (r) => {
    const res = await gw.app.inject({ method: r.method as 'GET', url: urlOf(r), headers: r.headers, ...(r.body !== undefined ? { payload: r.body } : {}) })
    checkAnswer(r, res.statusCode, res.headers, res.body, tally)
  }), { seed, numRuns: runs, endOnFailure: true, includeErrorInReport: true })
  return tally
}

test(`fuzz through fastify.inject: ${RUNS} random requests (seed ${SEED}), default settings with keys and admin token`, async (t) => {
  const gw = await fuzzGateway(t, {})
  const tally = await injectRuns(gw, RUNS, SEED)
  t.diagnostic(`statuses: ${tallyText(tally)}`)
  assert.ok((tally.get(200) ?? 0) > 0, 'some requests made it through to the upstream')
  checkLogs(gw)
  await stillServing(gw.url)
})

const EVERYTHING = `
upstream:
  url: MOCK_URL
  keys: [${SECRETS.upstream}, { key: ${SECRETS.pool}, name: backup }]
targets:
  claude: { url: MOCK_URL, provider: anthropic, keys: [${SECRETS.anthropic}] }
  az: { url: MOCK_URL, provider: azure, keys: [${SECRETS.pool}], azure: { apiVersion: 2024-10-21, deployments: { gpt-4o-mini: prod } } }
routing:
  stripStagePrefixes: true
  targetHeader: { enabled: true }
transforms:
  fieldAliases: { content: text, max_tokens: max_completion_tokens }
  reverseFieldAliases: true
  contextId: { enabled: true, capacity: 100 }
`

test(`fuzz through fastify.inject: ${RUNS} random requests (seed ${SEED + 1}), every optional feature on (targets, key pools, Azure, X-Target-Host, stage prefixes, aliases, context id)`, async (t) => {
  const gw = await fuzzGateway(t, {}, EVERYTHING)
  const tally = await injectRuns(gw, RUNS, SEED + 1)
  t.diagnostic(`statuses: ${tallyText(tally)}`)
  assert.ok((tally.get(200) ?? 0) > 0, 'some requests made it through to the upstream')
  checkLogs(gw)
  await stillServing(gw.url)
})

test(`fuzz over real HTTP: ${HTTP_RUNS} random requests (seed ${SEED + 2}), paths sent byte for byte`, async (t) => {
  const gw = await fuzzGateway(t, {}, EVERYTHING)
  // a Client sends `path` as it is (undici.request(url) would parse and normalise it)
  const client = new Client(gw.url)
  t.after(() => client.close())
  const tally: Tally = new Map()
  await fc.assert(fc.asyncProperty(requestArb, async (r) => {
    const res = await client.request({
      path: urlOf(r),
      method: r.method as 'GET',
      headers: r.headers,
      body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body
    })
    const body = await res.body.text()
    checkAnswer(r, res.statusCode, res.headers, body, tally)
  }), { seed: SEED + 2, numRuns: HTTP_RUNS, endOnFailure: true, includeErrorInReport: true })
  t.diagnostic(`statuses: ${tallyText(tally)}`)
  checkLogs(gw)
  await stillServing(gw.url)
})

// ------------------------------------------------------------------------------- multipart forms

const DISPOSITIONS = [
  'form-data; name="model"', 'form-data; name=model', 'form-data; name="MODEL"', 'form-data; name="file"; filename="a.wav"',
  'form-data', 'form-data; name=""', "form-data; name*=UTF-8''model", "form-data; name=\"x\"; name*=UTF-8''model",
  'form-data; name="model"; name="x"', 'form-data; filename="b.wav"', 'form-data; name="model"; junk', 'attachment; name="model"',
  'form-data; name="mo\\"del"', 'form-data; name="language"', 'form-data;name="model";filename=""', 'form-data; name', 'form-data; =x', ''
]

const headerLineArb = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom('Content-Disposition', 'content-disposition', 'CONTENT-DISPOSITION', 'Content-Disposition '), fc.oneof(fc.constantFrom(...DISPOSITIONS), fc.string({ maxLength: 40 }).map(x => `form-data; ${x}`))).map(([n, v]) => `${n}: ${v}`) },
  { weight: 2, arbitrary: fc.constantFrom('Content-Type: audio/wav', 'Content-Type: text/plain; charset=utf-16le', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', ' folded: line') },
  { weight: 1, arbitrary: fc.tuple(token, headerValue).map(([n, v]) => `${n}: ${v}`) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 60 }), fc.constant('x'.repeat(17_000))) }
)

const partArb = fc.record({
  headers: fc.array(headerLineArb, { minLength: 1, maxLength: 3 }),
  content: fc.oneof(fc.constantFrom('gpt-4o-mini', 'gpt-4o', 'whisper-1', ''), fc.string({ maxLength: 80 }), fc.uint8Array({ maxLength: 2000 }).map(a => Buffer.from(a)))
})

interface FuzzForm { key: 'restricted' | 'client', path: string, type: string, body: Buffer }

const formArb: fc.Arbitrary<FuzzForm> = fc.record({
  // the restricted key may use the default target only; the other key also the Azure one, which holds the form
  to: fc.oneof(
    fc.constantFrom('/v1/audio/transcriptions', '/v1/images/edits').map(path => ({ key: 'restricted' as const, path })),
    fc.constantFrom('/az/v1/audio/transcriptions', '/az/v1/images/edits', '/v1/audio/transcriptions').map(path => ({ key: 'client' as const, path }))
  ),
  boundary: fc.string({ unit: fc.constantFrom(...'abcXYZ019-_'), minLength: 1, maxLength: 30 }),
  quoted: fc.boolean(),
  eol: fc.oneof({ weight: 8, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r') }),
  parts: fc.array(partArb, { minLength: 0, maxLength: 4 }),
  model: fc.option(fc.tuple(fc.nat(5), fc.constantFrom('gpt-4o-mini', 'gpt-4o')), { nil: undefined }),
  cut: fc.option(fc.nat(), { nil: undefined, freq: 8 })
}).map(f => {
  const parts: Array<{ headers: string[], content: string | Buffer }> = [...f.parts]
  if (f.model !== undefined) parts.splice(f.model[0] % (parts.length + 1), 0, { headers: ['Content-Disposition: form-data; name="model"'], content: f.model[1] })
  const chunks: Buffer[] = []
  for (const part of parts) chunks.push(Buffer.from(`--${f.boundary}${f.eol}${part.headers.map(h => h + f.eol).join('')}${f.eol}`), Buffer.from(part.content), Buffer.from(f.eol))
  chunks.push(Buffer.from(`--${f.boundary}--${f.eol}`))
  let body = Buffer.concat(chunks)
  if (f.cut !== undefined) body = body.subarray(0, f.cut % (body.length + 1))
  return { key: f.to.key, path: f.to.path, type: `multipart/form-data; boundary=${f.quoted ? `"${f.boundary}"` : f.boundary}`, body }
})

test(`fuzz multipart part headers: ${FORM_RUNS} random forms (seed ${SEED + 3}) from a restricted key and to an Azure target that holds the form for its model`, async (t) => {
  const gw = await fuzzGateway(t, {}, EVERYTHING)
  const tally: Tally = new Map()
  const secret = { restricted: SECRETS.restricted, client: SECRETS.client }
  await fc.assert(fc.asyncProperty(formArb, async (f) => {
    const before = gw.mock.count()
    const res = await gw.app.inject({ method: 'POST', url: f.path, headers: { authorization: `Bearer ${secret[f.key]}`, 'content-type': f.type }, payload: f.body })
    const r: FuzzRequest = { method: 'POST', path: f.path, headers: {} }
    checkAnswer(r, res.statusCode, res.headers, res.body, tally)
    if (f.key === 'restricted' && res.statusCode < 300) {
      // what the upstream read of a form it answered: no model, or an allowed one
      for (const seen of gw.mock.requests.slice(before)) assert.ok(seen.fields?.model === undefined || seen.fields.model === 'gpt-4o-mini', `the upstream read model ${seen.fields?.model}`)
    }
  }), { seed: SEED + 3, numRuns: FORM_RUNS, endOnFailure: true, includeErrorInReport: true })
  t.diagnostic(`statuses: ${tallyText(tally)}`)
  assert.ok((tally.get(200) ?? 0) > 0, 'some forms made it through to the upstream')
  assert.ok((tally.get(400) ?? 0) > 0, 'some forms were refused')
  checkLogs(gw)
  await stillServing(gw.url)
})
