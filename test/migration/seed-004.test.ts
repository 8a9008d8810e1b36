/**
 * docs/migration/free-sophnet-api.md: the guide's `openai-chat-proxy-config.yaml`,
 * written to the working directory where the gateway finds it by itself, with only `base_url`
 * pointed at the mock, and the guide's command line. The upstream of the example speaks a
 * different dialect (`/chat`, `model_id`), so the mock answers `/chat` with a small handler.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import OpenAI from 'openai'
import { request } from 'undici'
import { parse as parseYaml } from 'yaml'
import { startMock } from '../helper.js'
import type { MockRequest, MockUpstream } from '../../mock/upstream.js'
import type { GatewayHandle } from '../helper.js'
import { blocks, gatewayCommand, guide, startAsGuide } from './guide.js'

const section = guide('free-sophnet-api')
const yaml = blocks(section, 'yaml')[0].text
const file = parseYaml(yaml) as { base_url: string, api_keys: Record<string, string>, ip_blacklist: string[], cors: { origins: string[] } }
const command = gatewayCommand(section)
const [[clientKey1, realKey1], [clientKey2, realKey2]] = Object.entries(file.api_keys)

/** The example's upstream: chat completions at /chat, the model named `model_id`. */
function chatDialect (_req: unknown, res: ServerResponse, record: MockRequest): void {
  const body = record.json as { model_id?: string, stream?: boolean }
  const chunk = (delta: object, finish: string | null) => ({ id: 'chat-1', object: 'chat.completion.chunk', created: 1, model: body.model_id, choices: [{ index: 0, delta, finish_reason: finish }] })
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-request-id': 'up-42' })
    res.write(`data: ${JSON.stringify(chunk({ role: 'assistant', content: 'Hel' }, null))}\n\n`)
    res.write(`data: ${JSON.stringify(chunk({ content: 'lo' }, null))}\n\n`)
    res.end(`data: ${JSON.stringify(chunk({}, 'stop'))}\n\ndata: [DONE]\n\n`)
    return
  }
  const answer = { id: 'chat-1', object: 'chat.completion', created: 1, model: body.model_id, choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }] }
  res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'up-42' }).end(JSON.stringify(answer))
}

async function setup (t: TestContext, edit: (text: string) => string = s => s): Promise<{ gw: GatewayHandle, mock: MockUpstream }> {
  const mock = await startMock(t)
  mock.override('/chat', chatDialect)
  const text = edit(yaml.replace(`base_url: "${file.base_url}"`, `base_url: "${mock.url}"`))
  const gw = await startAsGuide(t, { argv: command.argv, files: { 'openai-chat-proxy-config.yaml': text } })
  return { gw, mock }
}

test('the guide is a free-sophnet-api file with every key plus the browser origins, and the listen line', () => {
  assert.deepEqual(Object.keys(parseYaml(yaml) as object).sort(), ['api_keys', 'base_url', 'cors', 'field_aliases', 'ip_blacklist', 'ip_whitelist',
    'log_requests', 'log_responses', 'proxy', 'proxy_url_path', 'route_prefix', 'timeout'])
  assert.deepEqual(command, { env: {}, argv: ['-l', '0.0.0.0', '-p', '8000'] })
})

test('the file as free-sophnet-api read it: key mapping, proxy_url_path, field_aliases, streaming, /healthz', async (t) => {
  const { gw, mock } = await setup(t)
  assert.equal(gw.config.server.host, '0.0.0.0')
  assert.equal(gw.config.server.port, 8000)
  assert.equal(gw.config.upstream.url, mock.url)
  assert.equal(gw.config.upstream.connectTimeoutMs, 30_000, 'timeout: seconds, connect only')
  assert.ok(gw.config.configFile.endsWith('openai-chat-proxy-config.yaml'), 'found in the working directory')

  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: clientKey1, maxRetries: 0 })
  const answer = await client.chat.completions.create({ model: 'DeepSeek-V3-Fast', messages: [{ role: 'user', content: '你好' }], temperature: 0 })
  assert.equal(answer.choices[0].message.content, 'Hello')
  const seen = mock.requests.at(-1)
  assert.equal(seen?.path, '/chat', 'base_url + proxy_url_path')
  assert.equal(seen?.headers.authorization, `Bearer ${realKey1}`, 'the client key is mapped to the real key')
  assert.deepEqual(seen?.json, { model_id: 'DeepSeek-V3-Fast', messages: [{ role: 'user', content: '你好' }], temperature: 0 }, 'field_aliases renamed model')

  const other = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: clientKey2, maxRetries: 0 })
  const stream = await other.chat.completions.create({ model: 'DeepSeek-V3-Fast', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.equal(text, 'Hello')
  assert.equal(mock.requests.at(-1)?.headers.authorization, `Bearer ${realKey2}`)

  const health = await request(`${gw.url}/healthz`)
  assert.deepEqual(await health.body.json(), { status: 'ok' })

  // upstream response headers reach the client (free-sophnet-api dropped them)
  const raw = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${clientKey1}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] })
  })
  assert.equal(raw.statusCode, 200)
  assert.equal(raw.headers['x-upstream-request-id'], 'up-42')
  await raw.body.dump()

  // log_requests: true logs the request, never a key
  const logs = gw.logText()
  assert.ok(logs.includes('你好'), 'the request body is logged')
  for (const secret of [clientKey1, clientKey2, realKey1, realKey2]) assert.ok(!logs.includes(secret), `${secret} is not logged`)
})

test('client keys are a gate (free-sophnet-api forwarded unknown keys), CORS for browsers', async (t) => {
  const { gw, mock } = await setup(t)
  const unknown = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-someone-elses', maxRetries: 0 })
  await assert.rejects(unknown.chat.completions.create({ model: 'm', messages: [] }), OpenAI.AuthenticationError)
  const missing = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(missing.statusCode, 401)
  await missing.body.dump()
  assert.equal(mock.count('/chat'), 0, 'nothing reached the upstream')

  // CORS for the origins the file names (free-sophnet-api allowed every origin)
  const preflight = (origin: string) => request(`${gw.url}/v1/chat/completions`, {
    method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' }
  })
  const app = await preflight(file.cors.origins[0])
  assert.equal(app.statusCode, 204)
  assert.equal(app.headers['access-control-allow-origin'], file.cors.origins[0])
  await app.body.dump()
  const stranger = await preflight('https://elsewhere.example')
  assert.notEqual(stranger.statusCode, 204)
  assert.equal(stranger.headers['access-control-allow-origin'], undefined)
  await stranger.body.dump()
})

test('IP lists: the blacklist refuses, the whitelist admits only its addresses, X-Real-IP proves nothing', async (t) => {
  const { gw: listed } = await setup(t, text => text.replace(`ip_blacklist: ["${file.ip_blacklist[0]}"]`, 'ip_blacklist: ["127.0.0.1"]'))
  assert.deepEqual(listed.config.ipFilter.deny, ['127.0.0.1'])
  const denied = await request(`${listed.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${clientKey1}`, 'x-real-ip': '198.51.100.1' }, body: '{}' })
  assert.equal(denied.statusCode, 403)
  await denied.body.dump()

  const { gw: allowOnly } = await setup(t, text => text.replace('ip_whitelist: []', 'ip_whitelist: ["10.0.0.0/8"]'))
  const spoofed = await request(`${allowOnly.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${clientKey1}`, 'x-real-ip': '10.1.2.3' }, body: '{}' })
  assert.equal(spoofed.statusCode, 403, 'free-sophnet-api believed X-Real-IP from anyone')
  await spoofed.body.dump()

  const { gw: example, mock } = await setup(t)
  assert.deepEqual(example.config.ipFilter.deny, file.ip_blacklist)
  const res = await request(`${example.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${clientKey1}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] })
  })
  assert.equal(res.statusCode, 200, 'the example\'s own lists let this client in')
  await res.body.dump()
  assert.equal(mock.count('/chat'), 1)
})

test('the same file with native sections added: server (instead of -l/-p), auth.passThroughUnknown (free-sophnet-api\'s open mode)', async (t) => {
  const mock = await startMock(t)
  mock.override('/chat', chatDialect)
  const text = yaml.replace(`base_url: "${file.base_url}"`, `base_url: "${mock.url}"`) +
    'server: { host: 0.0.0.0, port: 8000 }\nauth: { passThroughUnknown: true }\n'
  const gw = await startAsGuide(t, { files: { 'openai-chat-proxy-config.yaml': text } })
  assert.equal(gw.config.server.host, '0.0.0.0')
  assert.equal(gw.config.server.port, 8000)

  const call = async (key: string): Promise<string | undefined> => {
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] })
    })
    assert.equal(res.statusCode, 200)
    await res.body.dump()
    return mock.requests.at(-1)?.headers.authorization
  }
  assert.equal(await call(clientKey1), `Bearer ${realKey1}`, 'known keys are still mapped')
  assert.equal(await call('sk-their-own-key'), 'Bearer sk-their-own-key', 'unknown keys pass with their own credentials, never a real key')
})
