/**
 * A key restricted to some models (`allowedModels`) reaches no other model by the ways around the
 * check that issue 17 found:
 * (a) an `Upgrade: websocket` header on an ordinary request does not make it a realtime session
 *     (whose model is only its `?model=`);
 * (b) a multipart form that busboy cannot parse, or that a more lenient parser reads otherwise, is
 *     a 400, never forwarded unchecked;
 * (c) an Azure deployment path is read as Azure reads it (decoded, any case): encoded separators,
 *     empty segments and double encoding are a 400, another deployment a 403;
 * (d) endpoints whose models sit where the gateway does not look are a 403 `endpoint_not_allowed`.
 * An unrestricted key is not affected by any of it.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI, { toFile } from 'openai'
import { Client, request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { rawExchange, statusesOf, lastJsonBody } from '../hardening/support.js'
import { bytes, rawForm, type RawPart } from '../uploads/forms.js'
import { Probe, wsUrl } from '../realtime/ws-helpers.js'

const RESTRICTED = 'gwk-restricted-models-81c2d9'
const FREE = 'gwk-unrestricted-models-02aa5e'

async function setup (t: TestContext): Promise<{ gw: GatewayHandle, mock: MockUpstream }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: ${mock.url}, key: sk-upstream-restricted }
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-upstream-key-restricted]
    azure: { apiVersion: 2024-10-21, deployments: { gpt-4o-mini: prod-mini } }
  claude: { url: ${mock.url}, provider: anthropic, keys: [sk-ant-upstream-restricted] }
auth:
  keys:
    - { name: restricted, key: ${RESTRICTED}, allowedModels: [gpt-4o-mini, whisper-1, gpt-realtime, claude-3-5-haiku-latest] }
    - { name: free, key: ${FREE} }
`
  })
  return { gw, mock }
}

function errorCode (body: unknown): string | null | undefined {
  const b = body as { error?: { code?: string | null, type?: string } }
  return b.error?.code ?? b.error?.type
}

test('(a) an Upgrade header on an ordinary request is no realtime session: the body\'s model is checked', async (t) => {
  const { gw, mock } = await setup(t)
  // bodies whose model only a lenient upstream reads (JSON sent as text/plain; a key spelled in
  // another case, which Go's encoding/json takes): refused for a restricted key, unless the
  // realtime short-cut skipped the body
  const bodies: Array<[string, string]> = [
    ['text/plain', JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })],
    ['application/json', JSON.stringify({ Model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })]
  ]
  for (const connection of ['keep-alive', 'Upgrade']) {
    for (const [type, body] of bodies) {
      const raw = `POST /v1/chat/completions?model=gpt-4o-mini HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${RESTRICTED}\r\n` +
        `Upgrade: websocket\r\nConnection: ${connection}\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      const answer = await rawExchange(gw.url, raw, { boundMs: 3000 })
      const statuses = statusesOf(answer.text)
      const what = `Connection: ${connection}, ${type}`
      assert.ok(!statuses.includes(200), `${what}: never answered by the upstream (${answer.text.slice(0, 80)})`)
      if (connection === 'keep-alive') {
        assert.deepEqual(statuses, [400], what)
        assert.equal(lastJsonBody(answer.text).error.code, 'model_not_checkable', what)
      }
    }
  }
  assert.equal(mock.requests.filter(r => r.path === '/v1/chat/completions').length, 0)

  // a real realtime session: its ?model= is what is checked
  const allowed = new Probe(wsUrl(gw.url, '/v1/realtime?model=gpt-realtime'), [], { headers: { authorization: `Bearer ${RESTRICTED}` } })
  await allowed.opened
  allowed.ws.close(1000)
  const refused = new Probe(wsUrl(gw.url, '/v1/realtime?model=gpt-4o-realtime-preview'), [], { headers: { authorization: `Bearer ${RESTRICTED}` } })
  await refused.waitClosed()
  assert.equal(refused.refusedWith, 403)
})

const BOUNDARY = '----gw-restricted-form'
const FILE: RawPart = { headers: ['Content-Disposition: form-data; name="file"; filename="a.wav"', 'Content-Type: audio/wav'], content: bytes(20_000, 4) }
const model = (value: string): RawPart => ({ headers: ['Content-Disposition: form-data; name="model"'], content: value })

/** Forms busboy cannot parse, or that a lenient parser (LF line endings, last header wins, RFC 2231 names) reads otherwise. */
function ambiguousForms (): Array<{ what: string, body: Buffer, type: string }> {
  const type = `multipart/form-data; boundary=${BOUNDARY}`
  const crlf = (parts: RawPart[]): Buffer => rawForm(parts, BOUNDARY).body
  const smuggled = `x\n--${BOUNDARY}\nContent-Disposition: form-data; name="model"\n\ngpt-4o-transcribe\n`
  const complete = crlf([FILE, model('gpt-4o-transcribe')])
  return [
    { what: 'LF-only line endings', body: rawForm([FILE, model('gpt-4o-transcribe')], BOUNDARY, '\n').body, type },
    { what: 'an oversized part header', body: crlf([{ headers: ['Content-Disposition: form-data; name="model"', `X-Pad: ${'a'.repeat(17_000)}`], content: 'gpt-4o-transcribe' }, FILE]), type },
    { what: 'an LF-delimited part inside a field', body: crlf([model('whisper-1'), { headers: ['Content-Disposition: form-data; name="prompt"'], content: smuggled }, FILE]), type },
    { what: 'two Content-Disposition lines', body: crlf([{ headers: ['Content-Disposition: form-data; name="prompt"', 'Content-Disposition: form-data; name="model"'], content: 'gpt-4o-transcribe' }, model('whisper-1'), FILE]), type },
    { what: 'two name parameters', body: crlf([{ headers: ['Content-Disposition: form-data; name="prompt"; name="model"'], content: 'gpt-4o-transcribe' }, model('whisper-1'), FILE]), type },
    { what: 'name and name*', body: crlf([{ headers: ["Content-Disposition: form-data; name=\"prompt\"; name*=UTF-8''model"], content: 'gpt-4o-transcribe' }, model('whisper-1'), FILE]), type },
    { what: 'a malformed disposition busboy skips', body: crlf([{ headers: ['Content-Disposition: form-data; name="model"; junk'], content: 'gpt-4o-transcribe' }, FILE]), type },
    { what: 'no closing delimiter', body: complete.subarray(0, complete.length - `--${BOUNDARY}--\r\n`.length), type },
    { what: 'two boundary parameters', body: complete, type: `${type}; boundary=other` },
    { what: 'no boundary', body: complete, type: 'multipart/form-data' }
  ]
}

test('(b) a multipart form busboy cannot parse or a lenient parser reads otherwise: 400 for a restricted key, forwarded for others', async (t) => {
  const { gw, mock } = await setup(t)
  for (const form of ambiguousForms()) {
    const before = mock.count()
    const res = await request(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${RESTRICTED}`, 'content-type': form.type }, body: form.body })
    assert.equal(res.statusCode, 400, form.what)
    assert.equal(errorCode(await res.body.json()), 'model_not_checkable', form.what)
    const whole = mock.requests.slice(before).filter(r => r.bodyBytes === form.body.length)
    assert.equal(whole.length, 0, `${form.what}: the upstream never had the whole form`)
  }
  // the same forms with an unrestricted key are the upstream's to judge
  for (const form of ambiguousForms()) {
    const before = mock.count()
    const res = await request(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${FREE}`, 'content-type': form.type }, body: form.body })
    await res.body.dump()
    assert.equal(mock.count(), before + 1, `${form.what}: forwarded`)
  }
  // and the SDK's own well-formed form, with the field before or after the file, passes
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: RESTRICTED, maxRetries: 0 })
  const ok = await client.audio.transcriptions.create({ file: await toFile(bytes(30_000), 'a.wav'), model: 'whisper-1' })
  assert.equal(ok.text, 'mock transcription')
})

test('(c) Azure deployment paths are read decoded and case-insensitively; ambiguous spellings are refused', async (t) => {
  const { gw, mock } = await setup(t)
  const client = new Client(gw.url)
  t.after(() => client.close())
  const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] })
  async function post (path: string, key = RESTRICTED): Promise<{ status: number, code: string | null | undefined }> {
    const res = await client.request({ method: 'POST', path, headers: { 'api-key': key, 'content-type': 'application/json' }, body })
    const text = await res.body.text()
    return { status: res.statusCode, code: res.statusCode === 200 ? null : errorCode(JSON.parse(text)) }
  }
  const cases: Array<[string, number, string | null]> = [
    ['/az/openai/deployments/prod-mini/chat/completions', 200, null],
    ['/az/openai/deployments/gpt-4o/chat/completions', 403, 'model_not_allowed'],
    ['/az/openai/%64eployments/gpt-4o/chat/completions', 403, 'model_not_allowed'],
    ['/az/openai/Deployments/gpt-4o/chat/completions', 403, 'model_not_allowed'],
    ['/az/openai/DEPLOYMENTS/%67pt-4o/chat/completions', 403, 'model_not_allowed'],
    ['/az/openai/deployments%2Fgpt-4o/chat/completions', 400, 'model_not_checkable'],
    ['/az/openai/deployments%2fgpt-4o%2fchat/completions', 400, 'model_not_checkable'],
    ['/az/openai/deployments%5Cgpt-4o/chat/completions', 400, 'model_not_checkable'],
    ['/az/openai//deployments/gpt-4o/chat/completions', 400, 'model_not_checkable'],
    ['/az/openai/deployments//gpt-4o/chat/completions', 400, 'model_not_checkable'],
    ['/az/openai/%2564eployments/gpt-4o/chat/completions', 400, 'model_not_checkable'],
    ['/az/openai/deployments/gpt-4o%ZZ/chat/completions', 400, 'bad_url'],
    ['/az/v1/chat/completions?deployment=gpt-4o', 403, 'model_not_allowed']
  ]
  for (const [path, status, code] of cases) {
    const res = await post(path)
    assert.equal(res.status, status, path)
    assert.equal(res.code, code, path)
  }
  const served = mock.requests.map(r => r.path).filter(p => p.includes('deployments'))
  assert.ok(served.every(p => p === '/openai/deployments/prod-mini/chat/completions'), served.join(' '))

  // the SDK's own Azure-style call, mapped from an allowed model, passes
  const chat = await request(`${gw.url}/az/v1/chat/completions`, { method: 'POST', headers: { 'api-key': RESTRICTED, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })
  assert.equal(chat.statusCode, 200)
  await chat.body.dump()
  assert.equal(mock.requests.at(-1)!.path, '/openai/deployments/prod-mini/chat/completions')
  // an unrestricted key is not held to any of it
  assert.equal((await post('/az/openai/deployments/gpt-4o/chat/completions', FREE)).status, 200)
})

test('(d) endpoints whose models the gateway does not see are a 403 endpoint_not_allowed for a restricted key', async (t) => {
  const { gw, mock } = await setup(t)
  const restricted = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: RESTRICTED, maxRetries: 0 })
  const refusals: Array<[string, () => Promise<unknown>]> = [
    ['batches', () => restricted.batches.create({ input_file_id: 'file-abc', endpoint: '/v1/chat/completions', completion_window: '24h' })],
    ['batches (list)', () => restricted.batches.list()],
    ['realtime/client_secrets', () => restricted.realtime.clientSecrets.create({ session: { type: 'realtime', model: 'gpt-4o-realtime-preview' } })],
    ['realtime/calls', () => restricted.realtime.calls.accept('call_123', { type: 'realtime', model: 'gpt-realtime' })],
    ['Azure batches', () => new OpenAI({ baseURL: `${gw.url}/az/openai`, apiKey: RESTRICTED, maxRetries: 0 }).batches.create({ input_file_id: 'file-abc', endpoint: '/v1/chat/completions', completion_window: '24h' })]
  ]
  const before = mock.count()
  for (const [what, call] of refusals) {
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof OpenAI.PermissionDeniedError, what)
      assert.equal(err.code, 'endpoint_not_allowed', what)
      return true
    })
  }
  const anthropic = new Anthropic({ baseURL: `${gw.url}/claude`, apiKey: RESTRICTED, maxRetries: 0 })
  await assert.rejects(anthropic.messages.batches.create({ requests: [{ custom_id: 'a', params: { model: 'claude-opus-4-1', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] } }] }), (err: unknown) => {
    assert.ok(err instanceof Anthropic.PermissionDeniedError)
    assert.equal((err.error as { error: { type: string } }).error.type, 'permission_error')
    return true
  })
  const sdp = await request(`${gw.url}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${RESTRICTED}`, 'content-type': 'application/sdp' }, body: 'v=0\r\n' })
  assert.equal(sdp.statusCode, 403)
  assert.equal(errorCode(await sdp.body.json()), 'endpoint_not_allowed')
  assert.equal(mock.count(), before, 'none reached the upstream')

  // an unrestricted key reaches them
  const free = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: FREE, maxRetries: 0 })
  await free.batches.list().catch(() => undefined)
  assert.equal(mock.requests.at(-1)!.path, '/v1/batches')
})
