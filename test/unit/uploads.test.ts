/**
 * Multipart uploads through `inject`: the form reaches the mock byte for byte (sha256 there),
 * each upload limit answers 413 naming itself, a restricted key's model field is checked while the
 * form streams, and on an Azure target a model field after the file is held for until it is read
 * to pick the deployment.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import { startMock } from '../helper.js'
import { bytes, multipartForm, rawForm, sha256, type FormPart } from '../uploads/forms.js'
import { injectGateway, type InjectedGateway } from './gateway.js'

const KiB = 1024
const AZURE = '2024-10-21'

function upload (gw: InjectedGateway, url: string, parts: readonly FormPart[], headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const { body, type } = multipartForm(parts)
  return gw.app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': type, ...headers } })
}

test('a transcription form streams to the upstream byte for byte, fields and file; the upstream key replaces the client\'s', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-upload' } })
  const audio = bytes(300 * KiB + 7, 3)
  const res = await upload(gw, '/v1/audio/transcriptions', [['model', 'whisper-1'], audio, ['language', 'en']], { authorization: 'Bearer sk-client' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.json().text, 'mock transcription')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.path, '/v1/audio/transcriptions')
  assert.equal(seen.files?.[0].sha256, sha256(audio))
  assert.deepEqual(seen.fields, { model: 'whisper-1', language: 'en' })
  assert.equal(seen.headers.authorization, 'Bearer sk-upstream-upload')
})

test('upload limits answer 413 naming the limit: file size, total size, file count, field count, field size', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_UPLOAD_MAX_FILE_BYTES: String(64 * KiB),
      GATEWAY_UPLOAD_MAX_TOTAL_BYTES: String(256 * KiB),
      GATEWAY_UPLOAD_MAX_FILES: '1',
      GATEWAY_UPLOAD_MAX_FIELDS: '2',
      GATEWAY_UPLOAD_MAX_FIELD_BYTES: '100'
    }
  })
  const exact = await upload(gw, '/v1/files', [['purpose', 'user_data'], bytes(64 * KiB)])
  assert.equal(exact.statusCode, 200, 'a file of exactly the limit passes')
  const cases: Array<[string, readonly FormPart[], string, RegExp]> = [
    ['file size', [['purpose', 'x'], bytes(65 * KiB)], 'upload_file_size_exceeded', /file size limit of 65536 bytes/],
    ['file count', [bytes(100), bytes(100)], 'upload_file_count_exceeded', /file count limit of 1 files/],
    ['field count', [['a', '1'], ['b', '2'], ['c', '3'], bytes(10)], 'upload_field_count_exceeded', /field/],
    ['field size', [['prompt', 'p'.repeat(101)], bytes(10)], 'upload_field_size_exceeded', /field/]
  ]
  for (const [what, parts, code, message] of cases) {
    const res = await upload(gw, '/v1/audio/transcriptions', parts)
    assert.equal(res.statusCode, 413, what)
    assert.equal(res.json().error.code, code, what)
    assert.match(res.json().error.message, message, what)
  }
  const before = mock.count('/v1/files')
  const total = await upload(gw, '/v1/files', [['purpose', 'x'], bytes(300 * KiB)])
  assert.equal(total.statusCode, 413)
  assert.equal(total.json().error.code, 'upload_total_size_exceeded')
  assert.equal(mock.count('/v1/files'), before, 'a declared length over the total never reaches the upstream')
})

test('a restricted key: its form\'s model field is checked as it streams (403 for another model, 400 for two spellings)', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: '${mock.url}' }
auth:
  keys:
    - { name: web, key: ck-upload-0001, allowedModels: [whisper-1] }
`
  })
  const auth = { authorization: 'Bearer ck-upload-0001' }
  const audio = bytes(32 * KiB, 5)
  assert.equal((await upload(gw, '/v1/audio/transcriptions', [audio, ['model', 'whisper-1']], auth)).statusCode, 200)
  const other = await upload(gw, '/v1/audio/transcriptions', [['model', 'gpt-4o-transcribe'], audio], auth)
  assert.equal(other.statusCode, 403)
  assert.equal(other.json().error.code, 'model_not_allowed')
  const twice = await upload(gw, '/v1/audio/transcriptions', [['model', 'whisper-1'], ['MODEL', 'gpt-4o-transcribe'], audio], auth)
  assert.equal(twice.statusCode, 400)
  assert.equal(twice.json().error.code, 'model_not_checkable')
  const nameless = rawForm([{ headers: ['content-disposition: form-data'], content: 'x' }])
  const unreadable = await gw.app.inject({ method: 'POST', url: '/v1/audio/transcriptions', payload: nameless.body, headers: { ...auth, 'content-type': nameless.type } })
  assert.equal(unreadable.statusCode, 400)
  assert.equal(unreadable.json().error.code, 'model_not_checkable')
  assert.ok(!mock.requests.some(r => r.fields?.model === 'gpt-4o-transcribe' && r.closed && r.files !== undefined && r.files.length > 0 && r.files[0].bytes === audio.length), 'no refused form was answered whole')
})

test('Azure target: the model field after the file is held for, then picks the deployment; past the hold bound a 400 says what to do', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    env: { GATEWAY_UPLOAD_MODEL_FIELD_HOLD_BYTES: String(128 * KiB) },
    yaml: `
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-upload-key]
    azure:
      apiVersion: ${AZURE}
      deployments: { whisper-1: prod-whisper }
`
  })
  const audio = bytes(100 * KiB + 17)
  const held = await upload(gw, '/az/v1/audio/transcriptions', [audio, ['model', 'whisper-1'], ['language', 'en']])
  assert.equal(held.statusCode, 200)
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, `/openai/deployments/prod-whisper/audio/transcriptions?api-version=${AZURE}`)
  assert.equal(seen.headers['api-key'], 'azure-upload-key')
  assert.equal(seen.files?.[0].sha256, sha256(audio), 'the held bytes and the rest arrive unchanged')
  const first = await upload(gw, '/az/v1/audio/translations', [['model', 'whisper-large'], audio])
  assert.equal(first.statusCode, 200)
  assert.equal(mock.requests.at(-1)!.url, `/openai/deployments/whisper-large/audio/translations?api-version=${AZURE}`)
  await upload(gw, '/az/v1/audio/transcriptions', [audio, ['language', 'en']])
  // (the mock has no such path: its 404 is passed on)
  assert.equal(mock.requests.at(-1)!.url, `/openai/audio/transcriptions?api-version=${AZURE}`)
  const before = mock.requests.length
  // the bound is on what is held in memory: the form arrives in 16 KiB pieces, as from a socket
  const form = multipartForm([bytes(200 * KiB), ['model', 'whisper-1']])
  const pieces = Array.from({ length: Math.ceil(form.body.length / (16 * KiB)) }, (_, i) => form.body.subarray(i * 16 * KiB, (i + 1) * 16 * KiB))
  const late = await gw.app.inject({ method: 'POST', url: '/az/v1/audio/transcriptions', payload: Readable.from(pieces), headers: { 'content-type': form.type, 'content-length': String(form.body.length) } })
  assert.equal(late.statusCode, 400)
  assert.equal(late.json().error.code, 'model_field_too_late')
  assert.match(late.json().error.message, /first 131072 bytes/)
  assert.equal(mock.requests.length, before, 'the upstream was not called')
})

test('downloads: file content and speech come back byte for byte', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const file = await gw.app.inject({ url: '/v1/files/file-abc/content', headers: { 'x-mock-bytes': '70000', 'x-mock-chunks': '5' } })
  assert.equal(file.statusCode, 200)
  assert.equal(file.rawPayload.length, 70000)
  const speech = await gw.app.inject({ method: 'POST', url: '/v1/audio/speech', payload: { model: 'tts-1', input: 'hi', voice: 'alloy' }, headers: { 'x-mock-bytes': '4096' } })
  assert.equal(speech.statusCode, 200)
  assert.equal(speech.rawPayload.length, 4096)
  assert.match(String(speech.headers['content-type']), /^audio\//)
})
