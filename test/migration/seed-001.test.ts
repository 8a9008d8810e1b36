/**
 * docs/migration/jb-proxy-llm.md: the guide's `.env` file, written to the working
 * directory as jb-proxy-llm read it, with only `TARGET_HOST` pointed at the mock; the guide's
 * command line; the OpenAI SDK and undici as clients.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startMock } from '../helper.js'
import { blocks, dotenv, gatewayCommand, guide, startAsGuide } from './guide.js'

const section = guide('jb-proxy-llm')
const env = dotenv(section)
const command = gatewayCommand(section)
const tokens = env.ALLOWED_TOKENS.split(',')

function dotEnvFile (overrides: Record<string, string>): string {
  return Object.entries({ ...env, ...overrides }).map(([k, v]) => `${k}=${v}`).join('\n')
}

test('the guide is jb-proxy-llm\'s own .env and a docker line with the same variables', () => {
  assert.deepEqual(Object.keys(env).sort(), ['ADMIN_TOKEN', 'ALLOWED_TOKENS', 'AUTH_BEARER', 'AUTH_VALIDATION', 'DEFAULT_AUTH_HEADER', 'LOG_LEVEL', 'PROXY_PORT', 'TARGET_HOST'])
  assert.deepEqual(command, { env: {}, argv: ['-l', '0.0.0.0'] })
  assert.ok(blocks(section, 'sh')[0].text.includes('docker run -d -p 8080:8080 --env-file .env llm-gateway'))
})

test('the .env as jb-proxy-llm read it: allowed tokens, upstream key swap, models cache, admin clear', async (t) => {
  const mock = await startMock(t)
  const gw = await startAsGuide(t, { argv: command.argv, files: { '.env': dotEnvFile({ TARGET_HOST: mock.url }) } })
  assert.equal(gw.config.server.host, '0.0.0.0')
  assert.equal(gw.config.server.port, Number(env.PROXY_PORT))
  assert.equal(gw.config.upstream.url, mock.url)

  // any allowed token works, in Authorization (DEFAULT_AUTH_HEADER) with Bearer
  for (const token of tokens) {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: token, maxRetries: 0 })
    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(answer.object, 'chat.completion')
    assert.equal(mock.requests.at(-1)?.headers.authorization, `Bearer ${env.AUTH_BEARER}`, 'the upstream gets AUTH_BEARER')
  }
  // the token without "Bearer " works too, as in jb-proxy-llm
  const bare = await request(`${gw.url}/v1/models`, { headers: { authorization: tokens[0] } })
  assert.equal(bare.statusCode, 200)
  await bare.body.dump()

  // 401 with WWW-Authenticate; the message jb-proxy-llm used, in OpenAI's shape
  const refused = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer not-allowed' }, body: '{}'
  })
  assert.equal(refused.statusCode, 401)
  assert.match(String(refused.headers['www-authenticate']), /^Bearer/)
  assert.equal((await refused.body.json() as { error: { message: string } }).error.message, 'Invalid or missing authorization token')
  const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'not-allowed', maxRetries: 0 })
  await assert.rejects(sdk.models.list(), OpenAI.AuthenticationError)

  // /v1/models: the list fetched above is served from the cache for 24 h, for every allowed token
  // (they share AUTH_BEARER upstream)
  assert.equal(gw.config.models.cacheTtlMs, 24 * 3600 * 1000)
  mock.reset()
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: tokens[1], maxRetries: 0 })
  await client.models.list()
  const second = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${tokens[2]}` } })
  assert.equal(second.headers['x-cache'], 'HIT')
  await second.body.dump()
  assert.equal(mock.count('/v1/models'), 0)

  // POST /admin/cache/clear with ADMIN_TOKEN; anyone else is refused
  const noToken = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers: { authorization: `Bearer ${tokens[0]}` } })
  assert.equal(noToken.statusCode, 401)
  await noToken.body.dump()
  const cleared = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } })
  assert.equal(cleared.statusCode, 200)
  assert.deepEqual(await cleared.body.json(), { cleared: { models: 1 } })
  await client.models.list()
  assert.equal(mock.count('/v1/models'), 1, 'fetched again after the clear')
})

test('jb-proxy-llm defects fixed: stream status kept, errors not cached, query kept, custom auth header not forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startAsGuide(t, {
    argv: command.argv,
    files: { '.env': dotEnvFile({ TARGET_HOST: mock.url, DEFAULT_AUTH_HEADER: 'X-Api-Key' }) }
  })
  const auth = { 'x-api-key': `Bearer ${tokens[2]}` }

  // an upstream 429 on a stream reaches the client as 429 (jb-proxy-llm answered 200)
  const limited = await request(`${gw.url}/v1/chat/completions?trace=1`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', 'x-mock-status': '429' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [] })
  })
  assert.equal(limited.statusCode, 429)
  await limited.body.dump()
  const seen = mock.requests.at(-1)
  assert.equal(seen?.url, '/v1/chat/completions?trace=1', 'the query string is kept')
  assert.equal(seen?.headers['x-api-key'], undefined, 'the client token header is not forwarded')
  assert.equal(seen?.headers.authorization, `Bearer ${env.AUTH_BEARER}`)

  // an upstream error on /v1/models is passed on and not cached (jb-proxy-llm kept it for 24 h)
  const failing = await request(`${gw.url}/v1/models`, { headers: { ...auth, 'x-mock-status': '500' } })
  assert.equal(failing.statusCode, 500)
  await failing.body.dump()
  const ok = await request(`${gw.url}/v1/models`, { headers: auth })
  assert.equal(ok.statusCode, 200)
  assert.equal(ok.headers['x-cache'], 'MISS')
  await ok.body.dump()

  // every /v1 path is proxied (jb-proxy-llm: 404 outside its two routes)
  const embeddings = await request(`${gw.url}/v1/embeddings`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'text-embedding-3-small', input: 'x' })
  })
  assert.equal(embeddings.statusCode, 200)
  await embeddings.body.dump()
})

test('a real environment variable beats .env; tokens are checked without AUTH_VALIDATION; without ADMIN_TOKEN /admin answers 404', async (t) => {
  const mock = await startMock(t)
  const withoutAdmin = Object.fromEntries(Object.entries(env).filter(([k]) => k !== 'ADMIN_TOKEN' && k !== 'AUTH_VALIDATION'))
  const gw = await startAsGuide(t, {
    argv: command.argv,
    env: { PROXY_PORT: '9123' },
    files: { '.env': Object.entries({ ...withoutAdmin, TARGET_HOST: mock.url }).map(([k, v]) => `${k}=${v}`).join('\n') }
  })
  assert.equal(gw.config.server.port, 9123, 'jb-proxy-llm let .env win over the real environment')
  const unknown = await request(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer not-allowed' } })
  assert.equal(unknown.statusCode, 401, 'jb-proxy-llm ignored ALLOWED_TOKENS without AUTH_VALIDATION=true')
  await unknown.body.dump()
  const admin = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers: { authorization: `Bearer ${tokens[0]}` } })
  assert.equal(admin.statusCode, 404, 'never open to anyone (jb-proxy-llm: open without a token)')
  await admin.body.dump()
})

test('DEBUG_MODE logs bodies, but never a token, the DEFAULT_AUTH_HEADER one included (jb-proxy-llm logged it)', async (t) => {
  const mock = await startMock(t)
  const gw = await startAsGuide(t, {
    argv: command.argv,
    files: { '.env': dotEnvFile({ TARGET_HOST: mock.url, DEFAULT_AUTH_HEADER: 'X-Client-Token', DEBUG_MODE: 'true' }) }
  })
  assert.equal(gw.config.log.level, 'debug')
  for (const token of [tokens[0], 'an-unknown-token-value']) {
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-client-token': token, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'debug-me' }] })
    })
    await res.body.dump()
  }
  const logs = gw.logText()
  assert.ok(logs.includes('debug-me'), 'bodies are logged in debug mode')
  for (const secret of [tokens[0], 'an-unknown-token-value', env.AUTH_BEARER]) assert.ok(!logs.includes(secret), `${secret} is not logged`)
})

test('an open jb-proxy-llm .env (AUTH_BEARER, no tokens checked) on every interface stops the start; AUTH_VALIDATION=false keeps it on purpose', async (t) => {
  const mock = await startMock(t)
  // jb-proxy-llm's default: AUTH_VALIDATION unset (false), no ALLOWED_TOKENS
  const open = Object.entries(env).filter(([k]) => k !== 'ALLOWED_TOKENS' && k !== 'AUTH_VALIDATION')
    .map(([k, v]) => `${k}=${k === 'TARGET_HOST' ? mock.url : v}`).join('\n')
  await assert.rejects(startAsGuide(t, { argv: command.argv, files: { '.env': open } }),
    (err: Error) => /^open relay refused: .*server\.host \(flag -l\) = "0\.0\.0\.0".*ALLOWED_TOKENS.*AUTH_VALIDATION=false/.test(err.message))

  const kept = await startAsGuide(t, { argv: command.argv, files: { '.env': `${open}\nAUTH_VALIDATION=false` } })
  assert.equal(kept.app.clientAuth.mode, 'open-relay')
  assert.ok(kept.logs.some(l => l.includes('(open-relay mode)')), 'announced at start')
  const res = await request(`${kept.url}/v1/models`)
  assert.equal(res.statusCode, 200, 'anyone is served, as jb-proxy-llm did')
  await res.body.dump()
  assert.equal(mock.requests.at(-1)?.headers.authorization, `Bearer ${env.AUTH_BEARER}`)
})
