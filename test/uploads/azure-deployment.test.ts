/**
 * Multipart uploads to an Azure target reach the deployment their `model` field names
 * (`/openai/deployments/{d}/audio/transcriptions`), whichever order the form has: the OpenAI SDK
 * sends the file first, so the gateway holds the form until the field, within
 * `uploads.modelFieldHoldBytes`; a model field that comes later is a 400 naming the fix, and the
 * upstream is never called. Bytes arrive unchanged (sha256 at the mock).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import OpenAI, { toFile } from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { bytes, multipartForm, sha256 } from './forms.js'

const MiB = 1024 * 1024
const API_VERSION = '2024-10-21'

/** A form with the file (`bytes`) and the fields in the given order ('file' marks the file's place). */
function form (order: Array<[string, string] | 'file'>, file: Buffer): { body: Buffer, type: string } {
  return multipartForm(order.map((part) => part === 'file' ? file : part), '----gw-azure-form')
}

/** A gateway with the Azure target `az` in front of a mock; `moreYaml` adds top-level sections. */
async function azure (t: TestContext, env: Record<string, string> = {}, moreYaml = ''): Promise<{ url: string, mock: Awaited<ReturnType<typeof startMock>> }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env,
    yaml: `
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-upstream-key-forms]
    azure:
      apiVersion: ${API_VERSION}
      deployments: { whisper-1: prod-whisper, gpt-image-1: prod-image }
${moreYaml}`
  })
  return { url: `${gw.url}/az`, mock }
}

test('Azure target: the OpenAI SDK\'s transcription (file before model) goes to the model\'s deployment', async (t) => {
  const { url, mock } = await azure(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'gateway-client-key', maxRetries: 0 })
  const audio = bytes(3 * MiB + 17)
  const result = await client.audio.transcriptions.create({ file: await toFile(audio, 'speech.wav', { type: 'audio/wav' }), model: 'whisper-1', language: 'en' })
  assert.equal(result.text, 'mock transcription')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, `/openai/deployments/prod-whisper/audio/transcriptions?api-version=${API_VERSION}`)
  assert.equal(seen.headers['api-key'], 'azure-upstream-key-forms')
  assert.equal(seen.files?.[0].sha256, sha256(audio), 'the held bytes and the rest arrive unchanged')
  assert.equal(seen.fields?.model, 'whisper-1')
  assert.equal(seen.fields?.language, 'en')

  const image = bytes(200_000, 9)
  const edited = await client.images.edit({ image: await toFile(image, 'in.png', { type: 'image/png' }), prompt: 'a hat', model: 'gpt-image-1' })
  assert.equal(edited.data?.length, 1)
  assert.equal(mock.requests.at(-1)!.url, `/openai/deployments/prod-image/images/edits?api-version=${API_VERSION}`)
})

test('Azure target: a model field before the file streams at once; an unlisted model is its own deployment', async (t) => {
  const { url, mock } = await azure(t)
  const audio = bytes(2 * MiB, 5)
  const { body, type } = form([['model', 'whisper-large'], 'file'], audio)
  const res = await request(`${url}/v1/audio/translations`, { method: 'POST', headers: { 'content-type': type }, body })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, `/openai/deployments/whisper-large/audio/translations?api-version=${API_VERSION}`)
  assert.equal(seen.files?.[0].sha256, sha256(audio))
})

test('Azure target: a form without a model field goes to /openai/… as before', async (t) => {
  const { url, mock } = await azure(t)
  const { body, type } = form(['file', ['language', 'en']], bytes(10_000))
  const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': type }, body })
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.url, `/openai/audio/transcriptions?api-version=${API_VERSION}`)
})

test('Azure target: a model field past modelFieldHoldBytes is a 400 that says what to do; the upstream is not called', async (t) => {
  const { url, mock } = await azure(t, { GATEWAY_UPLOAD_MODEL_FIELD_HOLD_BYTES: String(256 * 1024) })
  const { body, type } = form(['file', ['model', 'whisper-1']], bytes(MiB))
  const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': type }, body })
  assert.equal(res.statusCode, 400)
  const answer = await res.body.json() as { error: { message: string, type: string, code: string } }
  assert.equal(answer.error.code, 'model_field_too_late')
  assert.equal(answer.error.type, 'invalid_request_error')
  assert.match(answer.error.message, /first 262144 bytes/)
  assert.match(answer.error.message, /\/openai\/deployments\//)
  assert.equal(mock.requests.length, 0)

  // within the bound the same form is held and mapped
  const small = form(['file', ['model', 'whisper-1']], bytes(100_000))
  const ok = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': small.type }, body: small.body })
  assert.equal(ok.statusCode, 200)
  await ok.body.dump()
  assert.equal(mock.requests.at(-1)!.url, `/openai/deployments/prod-whisper/audio/transcriptions?api-version=${API_VERSION}`)
})

test('Azure target: modelFieldHoldBytes 0 never holds a form (no deployment in the path)', async (t) => {
  const { url, mock } = await azure(t, { GATEWAY_UPLOAD_MODEL_FIELD_HOLD_BYTES: '0' })
  const { body, type } = form(['file', ['model', 'whisper-1']], bytes(50_000))
  const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': type }, body })
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.url, `/openai/audio/transcriptions?api-version=${API_VERSION}`)
})

test('Azure target: a client that leaves while its form is held leaves no upstream request and a healthy gateway', async (t) => {
  const { url, mock } = await azure(t)
  const { type } = form([], Buffer.alloc(0))
  const head = Buffer.from('------gw-azure-form\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\ncontent-type: audio/wav\r\n\r\n')
  const controller = new AbortController()
  const body = Readable.from((async function * () {
    yield head
    yield bytes(300_000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    controller.abort()
  })())
  await assert.rejects(request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': type }, body, signal: controller.signal }))
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(mock.requests.length, 0)
  const again = form([['model', 'whisper-1'], 'file'], bytes(1000))
  const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': again.type }, body: again.body })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
})

test('Azure target: a restricted key\'s held form with a model it may not use is a 403; the upstream is not called', async (t) => {
  const { url, mock } = await azure(t, {}, `
auth:
  keys:
    - name: restricted
      key: gwk-azure-restricted-0123456789
      allowedModels: [whisper-1]
`)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'gwk-azure-restricted-0123456789', maxRetries: 0 })
  const refused = await client.audio.transcriptions.create({ file: await toFile(bytes(MiB), 'a.wav'), model: 'gpt-4o-transcribe' }).catch((err: unknown) => err)
  assert.ok(refused instanceof OpenAI.APIError)
  assert.equal(refused.status, 403)
  assert.equal((refused.error as { code?: string }).code, 'model_not_allowed')
  assert.equal(mock.requests.length, 0)
  const ok = await client.audio.transcriptions.create({ file: await toFile(bytes(MiB), 'a.wav'), model: 'whisper-1' })
  assert.equal(ok.text, 'mock transcription')
  assert.equal(mock.requests.at(-1)!.url, `/openai/deployments/prod-whisper/audio/transcriptions?api-version=${API_VERSION}`)
})
