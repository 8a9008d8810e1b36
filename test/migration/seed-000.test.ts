/**
 * docs/migration/aigc-proxy.md: the guide's command line, flags unchanged, with only
 * `-api` pointed at the mock; the OpenAI SDK as the client.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startMock } from '../helper.js'
import { gatewayCommand, guide, startAsGuide, withFlag } from './guide.js'

const section = guide('aigc-proxy')
const command = gatewayCommand(section)
const TAG_HEADER = '0123456789abcdef0123456789abcdef'
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'

function flagValue (name: string): string {
  return command.argv[command.argv.indexOf(name) + 1]
}

test('the guide is aigc-proxy\'s own command line', () => {
  assert.deepEqual(command.env, {})
  assert.deepEqual(command.argv, ['-l', '0.0.0.0', '-p', '2023', '-api', 'https://api.openai.com', '-key', 'your-upstream-key',
    '-bearer', 'your-client-key', '-nocid', '-cache', '10000', '-log', 'debug'])
  assert.ok(section.includes(`./aigc-proxy ${command.argv.map(a => a.startsWith('https') || a.startsWith('your') ? `"${a}"` : a).join(' ')}`), 'before and after are the same flags')
})

test('aigc-proxy flags: listen address, bearer check, upstream key swap, no client address upstream, no key in logs', async (t) => {
  const mock = await startMock(t)
  // -api keeps only scheme and host, as in aigc-proxy: a path given with the mock is ignored
  const gw = await startAsGuide(t, { argv: withFlag(command.argv, '-api', `${mock.url}/ignored/path`) })
  assert.equal(gw.config.server.host, '0.0.0.0')
  assert.equal(gw.config.server.port, 2023)
  assert.equal(gw.config.upstream.url, mock.url)
  assert.equal(gw.config.log.level, 'debug')
  assert.equal(gw.config.transforms.contextId.enabled, true)
  assert.equal(gw.config.transforms.contextId.capacity, 10000)

  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: flagValue('-bearer'), maxRetries: 0 })
  const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(answer.object, 'chat.completion')
  const seen = mock.requests.at(-1)
  assert.equal(seen?.path, '/v1/chat/completions')
  assert.equal(seen?.headers.authorization, `Bearer ${flagValue('-key')}`)
  assert.equal(seen?.headers['x-forwarded-for'], undefined, 'aigc-proxy re-added the peer address')
  assert.equal(seen?.headers['x-real-ip'], undefined)

  const wrong = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'not-the-bearer', maxRetries: 0 })
  await assert.rejects(wrong.models.list(), OpenAI.AuthenticationError)
  const refused = await request(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer nope' } })
  assert.equal(refused.statusCode, 401)
  assert.deepEqual(await refused.body.json(), { error: { message: 'Invalid or missing authorization token', type: 'invalid_request_error', code: 'invalid_api_key' } })

  // -log debug: nothing secret in any line (aigc-proxy logged the Authorization header and bodies)
  assert.ok(gw.logs.length > 0)
  for (const secret of [flagValue('-key'), flagValue('-bearer'), 'not-the-bearer', 'Bearer nope']) assert.ok(!gw.logText().includes(secret), secret)
})

test('without -bearer, clients send the -key value (aigc-proxy\'s default)', async (t) => {
  const mock = await startMock(t)
  const argv = withFlag(command.argv, '-api', mock.url)
  const at = argv.indexOf('-bearer')
  argv.splice(at, 2)
  const gw = await startAsGuide(t, { argv })
  const ok = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${flagValue('-key')}` } })
  assert.equal(ok.statusCode, 200)
  await ok.body.dump()
  const refused = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${flagValue('-bearer')}` } })
  assert.equal(refused.statusCode, 401)
  await refused.body.dump()
})

test('-nocid: tags cut from answers and streams, the chain appended to assistant messages, /v1/models intact', async (t) => {
  const mock = await startMock(t)
  const gw = await startAsGuide(t, { argv: withFlag(command.argv, '-api', mock.url) })
  // aigc-proxy's conversation key: headers whose name is 32 hex characters and whose value is [tag]
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: flagValue('-bearer'), maxRetries: 0, defaultHeaders: { [TAG_HEADER]: '[tag]' } })

  const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
    { headers: { 'x-mock-context-id': 'conv-7', 'x-mock-chunks': '2' } })
  const text = first.choices[0].message.content ?? ''
  assert.ok(!text.includes('CONTEXT_ID'), text)
  assert.equal(mock.requests.at(-1)?.headers[TAG_HEADER], '[tag]', 'the tag header goes upstream, as in aigc-proxy')

  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    stream: true,
    messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: text }, { role: 'user', content: 'more' }]
  }, { headers: { 'x-mock-context-id': 'conv-8', 'x-mock-split-tag': '1', 'x-mock-chunks': '3' } })
  let streamed = ''
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? ''
  assert.ok(streamed.length > 0 && !streamed.includes('['), `a tag split across deltas never reaches the client: ${JSON.stringify(streamed)}`)
  const sent = mock.requests.filter(r => r.path === '/v1/chat/completions').at(-1)?.json as { messages: Array<{ content: string }> }
  assert.match(sent.messages[1].content, new RegExp(`\\n\\[CONTEXT_ID:conv-7\\|${UUID}\\]$`), 'the stored chain plus a new id')

  // aigc-proxy answered /v1/models with an empty reply under -nocid (Content-Length not updated)
  const models = await client.models.list()
  assert.ok(models.data.length > 0)
})

test('with neither -key nor -bearer: pass-through mode, announced (aigc-proxy refused every request)', async (t) => {
  const mock = await startMock(t)
  const argv = withFlag(command.argv, '-api', mock.url)
  for (const flag of ['-key', '-bearer']) argv.splice(argv.indexOf(flag), 2)
  const gw = await startAsGuide(t, { argv })
  const res = await request(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer sk-client-own' } })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(mock.requests.at(-1)?.headers.authorization, 'Bearer sk-client-own')
  assert.ok(gw.logs.some(l => (JSON.parse(l) as { level: number }).level === 40 && /pass-through|no client key/i.test(l)), 'a warn line says so')
})
