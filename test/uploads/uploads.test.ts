/**
 * Multipart uploads through the gateway with the official openai client and raw undici: bytes
 * reach the upstream unchanged (sha256 at the mock), limits answer 413 naming the limit, and an
 * upload cut short by the client or by a limit aborts the upstream request.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import OpenAI, { APIError, toFile } from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { bytes, sha256 } from './forms.js'
import { waitFor } from '../realtime/ws-helpers.js'

const MiB = 1024 * 1024

function sdk (url: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-client-upload', maxRetries: 0 })
}

async function refusal (promise: Promise<unknown>): Promise<APIError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof APIError, `expected an APIError, got ${String(err)}`)
    return err
  }
  throw new Error('expected the request to fail')
}

async function gateway (t: TestContext, env: Record<string, string> = {}): Promise<{ url: string, mock: Awaited<ReturnType<typeof startMock>> }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-upload', ...env } })
  return { url: gw.url, mock }
}

test('files.create streams the file to the upstream byte for byte', async (t) => {
  const { url, mock } = await gateway(t)
  const data = bytes(5 * MiB + 123)
  const file = await sdk(url).files.create({ file: await toFile(data, 'batch.jsonl'), purpose: 'batch' })
  assert.equal(file.bytes, data.length)
  assert.equal(file.filename, 'batch.jsonl')
  assert.equal(file.purpose, 'batch')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.path, '/v1/files')
  assert.equal(seen.files?.length, 1)
  assert.equal(seen.files?.[0].sha256, sha256(data))
  assert.equal(seen.headers.authorization, 'Bearer sk-upstream-upload')
})

test('audio.transcriptions.create streams the audio and the fields', async (t) => {
  const { url, mock } = await gateway(t)
  const audio = bytes(700_001, 7)
  const result = await sdk(url).audio.transcriptions.create({ file: await toFile(audio, 'speech.mp3', { type: 'audio/mpeg' }), model: 'whisper-1', language: 'en' })
  assert.equal(result.text, 'mock transcription')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.files?.[0].sha256, sha256(audio))
  assert.equal(seen.files?.[0].mimeType, 'audio/mpeg')
  assert.equal(seen.fields?.model, 'whisper-1')
  assert.equal(seen.fields?.language, 'en')
})

test('translations, image edits and upload parts stream too', async (t) => {
  const { url, mock } = await gateway(t)
  const client = sdk(url)
  const audio = bytes(300_000, 3)
  await client.audio.translations.create({ file: await toFile(audio, 'fr.mp3'), model: 'whisper-1' })
  assert.equal(mock.requests.at(-1)!.files?.[0].sha256, sha256(audio))

  const images = [bytes(200_000, 4), bytes(150_000, 5)]
  const edited = await client.images.edit({ image: [await toFile(images[0], 'a.png'), await toFile(images[1], 'b.png')], prompt: 'add a hat', model: 'gpt-image-1' })
  assert.equal(edited.data?.length, 1)
  assert.deepEqual(mock.requests.at(-1)!.files?.map(f => f.sha256), images.map(sha256))

  const part = bytes(2 * MiB, 6)
  const created = await client.uploads.parts.create('upload_abc', { data: await toFile(part, 'part') })
  assert.equal(created.upload_id, 'upload_abc')
  assert.equal(mock.requests.at(-1)!.files?.[0].sha256, sha256(part))
})

test('a file over the file size limit → 413 naming the limit; the upstream never gets the whole file', async (t) => {
  const { url, mock } = await gateway(t, { GATEWAY_UPLOAD_MAX_FILE_BYTES: String(MiB) })
  const exact = bytes(MiB, 8)
  const ok = await sdk(url).files.create({ file: await toFile(exact, 'exact.bin'), purpose: 'user_data' })
  assert.equal(ok.bytes, MiB, 'a file of exactly the limit passes')

  const big = bytes(3 * MiB, 9)
  const err = await refusal(sdk(url).files.create({ file: await toFile(big, 'big.bin'), purpose: 'user_data' }))
  assert.equal(err.status, 413)
  assert.equal(err.code, 'upload_file_size_exceeded')
  assert.match(err.message, /file size limit of 1048576 bytes/)
  const upstream = mock.requests.at(-1)!
  await waitFor(() => upstream.closed, 'the upstream request to end')
  assert.notEqual(upstream.files?.[0]?.sha256, sha256(big))
  assert.ok((upstream.files?.[0]?.bytes ?? 0) < big.length, 'the upstream saw only part of the file')
})

test('a declared body over the total limit → 413 before the upstream is contacted', async (t) => {
  const { url, mock } = await gateway(t, { GATEWAY_UPLOAD_MAX_TOTAL_BYTES: String(MiB) })
  const err = await refusal(sdk(url).files.create({ file: await toFile(bytes(2 * MiB), 'big.jsonl'), purpose: 'batch' }))
  assert.equal(err.status, 413)
  assert.equal(err.code, 'upload_total_size_exceeded')
  assert.equal(mock.count('/v1/files'), 0)
})

test('a chunked body over the total limit → 413 mid-stream, upstream request aborted', async (t) => {
  const { url, mock } = await gateway(t, { GATEWAY_UPLOAD_MAX_TOTAL_BYTES: String(MiB) })
  const body = new PassThrough()
  const boundary = 'gw-test-boundary'
  const pending = request(`${url}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body
  })
  body.write(`--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`)
  body.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="x.jsonl"\r\ncontent-type: application/octet-stream\r\n\r\n`)
  for (let i = 0; i < 4; i++) body.write(bytes(512 * 1024, i))
  body.end(`\r\n--${boundary}--\r\n`)
  const res = await pending
  assert.equal(res.statusCode, 413)
  const json = await res.body.json() as { error: { code: string, message: string } }
  assert.equal(json.error.code, 'upload_total_size_exceeded')
  assert.match(json.error.message, /total size limit of 1048576 bytes/)
  const upstream = mock.requests.at(-1)!
  await waitFor(() => upstream.closed, 'the upstream request to end')
  assert.ok((upstream.files?.[0]?.bytes ?? 0) < 2 * MiB)
})

test('too many files or fields, or a field too large → 413 naming the limit', async (t) => {
  const { url, mock } = await gateway(t, { GATEWAY_UPLOAD_MAX_FILES: '1', GATEWAY_UPLOAD_MAX_FIELDS: '3', GATEWAY_UPLOAD_MAX_FIELD_BYTES: '1024' })
  const client = sdk(url)
  const files = await refusal(client.images.edit({ image: [await toFile(bytes(1000), 'a.png'), await toFile(bytes(1000), 'b.png')], prompt: 'x', model: 'gpt-image-1' }))
  assert.equal(files.status, 413)
  assert.equal(files.code, 'upload_file_count_exceeded')
  assert.match(files.message, /file count limit of 1 files/)

  const fields = await refusal(client.audio.transcriptions.create({ file: await toFile(bytes(1000), 'a.mp3'), model: 'whisper-1', language: 'en', prompt: 'p', temperature: 0.2 }))
  assert.equal(fields.status, 413)
  assert.equal(fields.code, 'upload_field_count_exceeded')

  const field = await refusal(client.audio.transcriptions.create({ file: await toFile(bytes(1000), 'a.mp3'), model: 'whisper-1', prompt: 'p'.repeat(2000) }))
  assert.equal(field.status, 413)
  assert.equal(field.code, 'upload_field_size_exceeded')

  const ok = await client.audio.transcriptions.create({ file: await toFile(bytes(1000), 'a.mp3'), model: 'whisper-1', prompt: 'p'.repeat(1024) })
  assert.equal(ok.text, 'mock transcription', 'a field of exactly the limit passes')
  assert.equal(mock.requests.at(-1)!.fields?.prompt, 'p'.repeat(1024))
})

test('a client that disconnects mid-upload aborts the upstream request', async (t) => {
  const { url, mock } = await gateway(t)
  const body = new PassThrough()
  const abort = new AbortController()
  const boundary = 'gw-abort-boundary'
  const pending = request(`${url}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body,
    signal: abort.signal
  }).catch((err: unknown) => err)
  body.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="x.bin"\r\n\r\n`)
  body.write(bytes(256 * 1024))
  await waitFor(() => mock.requests.length === 1, 'the upstream request to start')
  assert.equal(mock.requests[0].closed, false)
  abort.abort()
  await pending
  await waitFor(() => mock.requests[0].closed, 'the upstream request to be aborted')
})

test('uploads stream: the upstream has the first bytes while the client still holds the rest', async (t) => {
  let received = 0
  let finished = false
  const upstream = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => { received += chunk.length })
    req.on('end', () => { finished = true; res.writeHead(200, { 'content-type': 'application/json' }).end(`{"received":${received}}`) })
  })
  await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise(resolve => upstream.close(resolve)))
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } })
  const body = new PassThrough()
  const boundary = 'gw-stream-boundary'
  const pending = request(`${gw.url}/v1/files`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body })
  body.write(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="x.bin"\r\n\r\n`)
  body.write(bytes(2 * MiB))
  await waitFor(() => received >= MiB, 'the first megabyte upstream')
  assert.equal(finished, false)
  body.end(`\r\n--${boundary}--\r\n`)
  const res = await pending
  assert.equal(res.statusCode, 200)
  const json = await res.body.json() as { received: number }
  assert.ok(json.received > 2 * MiB)
})
