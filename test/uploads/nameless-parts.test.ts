/**
 * A multipart part without a usable name (`Content-Disposition: form-data` with no name,
 * `name=""`, or only `name*=UTF-8''model`) is one busboy reports with an undefined name. Sent in
 * each set-up that reads form fields (a key restricted to some models; an Azure target in
 * pass-through mode, whose form is held until its model field; a plain upload), it fails at most
 * that one request, with a JSON error, and the gateway goes on serving: the OpenAI SDK's own
 * upload right after it works, and so does the health probe.
 *
 * And the rule behind it: a throw inside the upload's pass-through (here made on purpose) fails
 * that upload with a 500 in the SDK's shape and one log line, never the process.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI, { toFile } from 'openai'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { FormFraming } from '../../src/uploads/form-framing.js'
import { stillServing } from '../hardening/support.js'
import { bytes, rawForm, sha256, type RawPart } from './forms.js'

const KEY = 'gwk-nameless-restricted-5b1d0e'
const AUDIO = bytes(40_000, 3)

const NAMELESS = [
  'content-disposition: form-data',
  'content-disposition: form-data; name=""',
  "content-disposition: form-data; name*=UTF-8''model"
]

const FILE: RawPart = { headers: ['content-disposition: form-data; name="file"; filename="a.wav"', 'content-type: audio/wav'], content: AUDIO }
const MODEL: RawPart = { headers: ['content-disposition: form-data; name="model"'], content: 'whisper-1' }

/** The forms sent for one nameless disposition: as a field before the model field, and as a file. */
function forms (disposition: string): Array<{ what: string, body: Buffer, type: string }> {
  const asField = rawForm([FILE, { headers: [disposition], content: 'gpt-4o-transcribe' }, MODEL])
  const asFile = rawForm([{ headers: [`${disposition}; filename="b.wav"`, 'content-type: audio/wav'], content: AUDIO }, MODEL])
  return [{ what: `field "${disposition}"`, ...asField }, { what: `file "${disposition}; filename"`, ...asFile }]
}

interface Setup { base: string, mock: MockUpstream, gw: GatewayHandle, auth: Record<string, string> }

async function restricted (t: TestContext): Promise<Setup> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: ${mock.url}, key: sk-upstream-nameless }
auth:
  keys:
    - { name: restricted, key: ${KEY}, allowedModels: [whisper-1] }
`
  })
  return { base: gw.url, mock, gw, auth: { authorization: `Bearer ${KEY}` } }
}

async function azurePassThrough (t: TestContext): Promise<Setup> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
targets:
  az:
    url: ${mock.url}
    provider: azure
    azure: { apiVersion: 2024-10-21, deployments: { whisper-1: prod-whisper } }
`
  })
  return { base: `${gw.url}/az`, mock, gw, auth: { 'api-key': 'the-callers-own-azure-key' } }
}

async function plain (t: TestContext): Promise<Setup> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { yaml: `upstream: { url: ${mock.url}, key: sk-upstream-plain }` })
  return { base: gw.url, mock, gw, auth: {} }
}

async function post (s: Setup, form: { body: Buffer, type: string }): Promise<{ status: number, body: { error?: { code: string | null, message: string } } }> {
  const res = await request(`${s.base}/v1/audio/transcriptions`, { method: 'POST', headers: { ...s.auth, 'content-type': form.type }, body: form.body })
  return { status: res.statusCode, body: await res.body.json() as { error?: { code: string | null, message: string } } }
}

/** The OpenAI SDK's own upload still works, and the health probe answers. */
async function serving (s: Setup): Promise<void> {
  const apiKey = s.auth.authorization?.slice(7) ?? s.auth['api-key'] ?? 'no-key'
  const client = new OpenAI({ baseURL: `${s.base}/v1`, apiKey, maxRetries: 0 })
  const result = await client.audio.transcriptions.create({ file: await toFile(AUDIO, 'speech.wav', { type: 'audio/wav' }), model: 'whisper-1' })
  assert.equal(result.text, 'mock transcription')
  await stillServing(s.gw.url)
}

test('restricted key: every nameless part is a 400 model_not_checkable, and the gateway still serves', async (t) => {
  const s = await restricted(t)
  for (const disposition of NAMELESS) {
    for (const form of forms(disposition)) {
      const before = s.mock.count()
      const res = await post(s, form)
      assert.equal(res.status, 400, form.what)
      assert.equal(res.body.error?.code, 'model_not_checkable', form.what)
      const answered = s.mock.requests.slice(before).filter((r) => r.fields?.model !== undefined)
      assert.equal(answered.length, 0, `${form.what}: the upstream never had the whole form`)
    }
  }
  await serving(s)
})

test('Azure target in pass-through mode: a nameless part is no model field; the form goes to the model\'s deployment', async (t) => {
  const s = await azurePassThrough(t)
  for (const disposition of NAMELESS) {
    for (const form of forms(disposition)) {
      const res = await post(s, form)
      assert.equal(res.status, 200, form.what)
      const seen = s.mock.requests.at(-1)!
      assert.equal(seen.path, '/openai/deployments/prod-whisper/audio/transcriptions', form.what)
      assert.equal(seen.bodySha256, sha256(form.body), `${form.what}: the held bytes arrive unchanged`)
    }
  }
  await serving(s)
})

test('plain upload: a nameless part is passed on unchanged, for the upstream to judge', async (t) => {
  const s = await plain(t)
  for (const disposition of NAMELESS) {
    for (const form of forms(disposition)) {
      const res = await post(s, form)
      assert.equal(res.status, 200, form.what)
      assert.equal(s.mock.requests.at(-1)!.bodySha256, sha256(form.body), form.what)
    }
  }
  await serving(s)
})

test('a throw inside the upload pass-through fails that upload with a 500 and one log line; the gateway goes on', async (t) => {
  const s = await restricted(t)
  // a fault on purpose, in the strict form reading that runs inside the client socket's 'data' listener
  const push = FormFraming.prototype.push
  let armed = true
  FormFraming.prototype.push = function (this: FormFraming, chunk: Buffer): boolean {
    if (armed) {
      armed = false
      throw new TypeError('fault injected by the test')
    }
    return push.call(this, chunk)
  }
  t.after(() => { FormFraming.prototype.push = push })
  const res = await post(s, rawForm([MODEL, FILE]))
  assert.equal(res.status, 500)
  assert.deepEqual(res.body, { error: { message: 'The gateway failed to check this upload', type: 'server_error', code: 'internal_error' } })
  const lines = s.gw.logs.filter((l) => JSON.parse(l).level >= 50)
  assert.equal(lines.length, 1, 'one error line')
  assert.match(lines[0], /"msg":"upload check failed"/)
  assert.match(lines[0], /fault injected by the test/)
  assert.doesNotMatch(lines[0], /\n\s+at |\.ts:\d+/, 'no stack trace')
  assert.equal(armed, false)
  await serving(s)
})
