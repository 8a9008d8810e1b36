/**
 * The embedded mock upstream, exercised through the official SDKs, plain
 * fetch, raw sockets and the `ws` client. Each test starts its own mock on
 * 127.0.0.1:0 and closes it afterwards.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI, { toFile } from 'openai'
import { Agent, request } from 'undici'
import WebSocket from 'ws'
import { mockEmbedding, mockPayload, startMockUpstream, type MockOptions, type MockUpstream } from '../mock/upstream.js'

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
const MESSAGE = { model: 'claude-3-5-sonnet-latest', max_tokens: 64, messages: [{ role: 'user' as const, content: 'hi' }] }

async function startMock (t: TestContext, opts: MockOptions = {}): Promise<MockUpstream> {
  const mock = await startMockUpstream(opts)
  t.after(() => mock.close())
  return mock
}

function openai (mock: MockUpstream): OpenAI {
  // logLevel off: the SDK would log the parse errors the fault tests provoke on purpose.
  return new OpenAI({ apiKey: 'sk-test-openai', baseURL: `${mock.url}/v1`, maxRetries: 0, logLevel: 'off' })
}

function anthropic (mock: MockUpstream): Anthropic {
  // The Anthropic SDK adds /v1 itself.
  return new Anthropic({ apiKey: 'sk-ant-test', baseURL: mock.url, maxRetries: 0 })
}

function sha256 (data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Polls until `check` holds; a bounded wait, never a timing assertion. */
async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await sleep(10)
  }
  assert.fail(`never happened: ${what}`)
}

function postJson (mock: MockUpstream, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal
  })
}

/** The `data:` payloads of an SSE body, in order. */
function sseData (text: string): string[] {
  return text.split('\n\n').flatMap((event) => event.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)))
}

/** The event names of an SSE body, in order. */
function sseEvents (text: string): string[] {
  return text.split('\n\n').flatMap((event) => event.split('\n').filter((line) => line.startsWith('event: ')).map((line) => line.slice(7)))
}

/** Reads a streamed body until `enough` says so, without consuming the rest. */
async function readUntil (res: Response, enough: (text: string) => boolean): Promise<{ text: string, reader: ReadableStreamDefaultReader<Uint8Array> }> {
  assert.ok(res.body !== null)
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  while (!enough(text)) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
  }
  return { text, reader }
}

async function readRest (reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}

interface OpenAIErrorBody {
  error: { message: string, type: string, param: null, code: string | null }
}

interface AnthropicErrorBody {
  type: 'error'
  error: { type: string, message: string }
}

/** A response body parsed as JSON and typed by the caller. */
async function json<T> (res: Response): Promise<T> {
  return await res.json() as T
}

function lastStream (mock: MockUpstream) {
  const stream = mock.streams.at(-1)
  assert.ok(stream !== undefined, 'the mock started a stream')
  return stream
}

test('chat completion as JSON through the openai SDK, and what the mock records', async (t) => {
  const mock = await startMock(t, { chunks: 4 })
  const completion = await openai(mock).chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }]
  })
  assert.equal(completion.object, 'chat.completion')
  assert.equal(completion.model, 'gpt-4o')
  assert.deepEqual(completion.choices[0].message, { role: 'assistant', content: 'tok0 tok1 tok2 tok3 ', refusal: null })
  assert.equal(completion.choices[0].finish_reason, 'stop')
  assert.deepEqual(completion.usage, { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 })

  assert.equal(mock.requests.length, 1)
  const seen = mock.requests[0]
  assert.equal(seen.id, 1)
  assert.equal(seen.method, 'POST')
  assert.equal(seen.path, '/v1/chat/completions')
  assert.equal(seen.headers.authorization, 'Bearer sk-test-openai')
  assert.equal((seen.json as { model: string }).model, 'gpt-4o')
  assert.ok(seen.bodyText !== undefined)
  assert.equal(seen.bodyBytes, Buffer.byteLength(seen.bodyText))
  assert.equal(seen.bodySha256, sha256(seen.bodyText))
  assert.equal(mock.streams.length, 0, 'a JSON answer is not a stream')
})

test('raw requests: query, lower-cased headers, x-request-id echo, count() and reset()', async (t) => {
  const mock = await startMock(t)
  const body = JSON.stringify(CHAT)
  const res = await fetch(`${mock.url}/v1/chat/completions?trace=1`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'req-123' },
    body
  })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('x-request-id'), 'req-123')
  await res.arrayBuffer()
  assert.equal((await json<{ status: string }>(await fetch(`${mock.url}/healthz`))).status, 'ok')

  const [chat, health] = mock.requests
  assert.equal(chat.url, '/v1/chat/completions?trace=1')
  assert.equal(chat.path, '/v1/chat/completions')
  assert.equal(chat.headers['x-request-id'], 'req-123')
  assert.equal(chat.bodyText, body)
  assert.equal(chat.bodySha256, sha256(body))
  assert.equal(health.method, 'GET')
  assert.equal(health.bodyBytes, 0)
  assert.equal(mock.count(), 2)
  assert.equal(mock.count('/v1/chat'), 1)
  assert.equal(mock.count('/v1/embeddings'), 0)
  await eventually(() => chat.closed && health.closed, 'both exchanges closed')

  mock.reset()
  assert.equal(mock.requests.length, 0)
  assert.equal(mock.count(), 0)
})

test('chat stream through the openai SDK, with and without include_usage', async (t) => {
  const mock = await startMock(t)
  const client = openai(mock)
  const stream = await client.chat.completions.create(
    { ...CHAT, stream: true, stream_options: { include_usage: true } },
    { headers: { 'x-mock-chunks': '5' } }
  )
  const chunks: OpenAI.ChatCompletionChunk[] = []
  for await (const chunk of stream) chunks.push(chunk)
  assert.equal(chunks[0].choices[0].delta.role, 'assistant')
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'tok0 tok1 tok2 tok3 tok4 ')
  assert.equal(chunks.at(-2)?.choices[0].finish_reason, 'stop')
  assert.deepEqual(chunks.at(-1)?.choices, [])
  assert.deepEqual(chunks.at(-1)?.usage, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 })
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'gpt-4o-mini'))

  // role + 5 tokens + finish + usage + [DONE]
  await eventually(() => lastStream(mock).finished, 'stream finished')
  const record = lastStream(mock)
  assert.equal(record.requestId, mock.requests[0].id)
  assert.equal(record.chunksPlanned, 9)
  assert.equal(record.chunksSent, 9)
  assert.equal(record.chunkTimes.length, 9)
  assert.equal(record.aborted, false)

  const res = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-chunks': '2' })
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  const data = sseData(await res.text())
  assert.equal(data.length, 5)
  assert.equal(data.at(-1), '[DONE]')
  assert.ok(!data.some((d) => d.includes('usage')), 'no usage without include_usage')
})

test('x-mock-context-id tags the answer; x-mock-split-tag spreads the tag over deltas', async (t) => {
  const mock = await startMock(t, { chunks: 2 })
  const client = openai(mock)
  const completion = await client.chat.completions.create(CHAT, { headers: { 'x-mock-context-id': 'ctx-42' } })
  assert.equal(completion.choices[0].message.content, 'tok0 tok1 \n[CONTEXT_ID:ctx-42]')

  const stream = await client.chat.completions.create({ ...CHAT, stream: true }, {
    headers: { 'x-mock-context-id': 'ctx-42', 'x-mock-split-tag': '1' }
  })
  const deltas: string[] = []
  for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '')
  assert.equal(deltas.join(''), 'tok0 tok1 \n[CONTEXT_ID:ctx-42]')
  assert.ok(!deltas.some((d) => d.includes('CONTEXT_ID')), 'no single delta holds the whole tag')
  assert.ok(!deltas.some((d) => d.includes('ctx-42')), 'the id itself is split')
})

/** Sends one request on a fresh socket and returns the payloads of each HTTP/1.1 chunk. */
async function rawChunks (mock: MockUpstream, path: string, headers: Record<string, string>, body: string): Promise<Buffer[]> {
  const { port } = mock
  const socket = connect(port, '127.0.0.1')
  const head = [`POST ${path} HTTP/1.1`, `host: 127.0.0.1:${port}`, 'connection: close', 'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n')
  // write, not end: Node's HTTP server treats a half-closed request as an abort.
  socket.write(`${head}\r\n\r\n${body}`)
  const parts: Buffer[] = []
  for await (const part of socket) parts.push(part as Buffer)
  const raw = Buffer.concat(parts)
  let at = raw.indexOf('\r\n\r\n') + 4
  const chunks: Buffer[] = []
  // Decode the chunked framing by hand: it shows each write of the server, however TCP packed them.
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at)
    const size = parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16)
    assert.ok(lineEnd !== -1 && Number.isSafeInteger(size), 'well-formed chunked framing')
    if (size === 0) return chunks
    chunks.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}

test('x-mock-split-network cuts every event mid-line and, where possible, mid-character', async (t) => {
  const mock = await startMock(t)
  const body = JSON.stringify({ ...CHAT, stream: true })
  const chunks = await rawChunks(mock, '/v1/chat/completions', { 'x-mock-chunks': '3', 'x-mock-split-network': '1' }, body)
  // role + 3 tokens + finish + [DONE], each in two writes
  assert.equal(chunks.length, 12)
  for (let i = 0; i < chunks.length; i += 2) {
    assert.ok(!chunks[i].includes('\n\n'), 'the first half never ends the event')
    assert.ok(chunks[i + 1].toString('latin1').endsWith('\n\n'), 'the second half does')
  }
  const brokenCharacters = chunks.filter((chunk) => !isUtf8(chunk))
  assert.ok(brokenCharacters.length >= 6, 'each token event (two halves each) is cut inside a UTF-8 character')

  const text = Buffer.concat(chunks).toString('utf8')
  const deltas = sseData(text).slice(0, -1).map((d) => (JSON.parse(d) as OpenAI.ChatCompletionChunk).choices[0].delta.content ?? '')
  assert.equal(deltas.join(''), 'tok0 héllo wörld 你好 tok1 héllo wörld 你好 tok2 héllo wörld 你好 ')
  assert.equal(sseData(text).at(-1), '[DONE]')
})

test('models: OpenAI shape, Anthropic shape with anthropic-version, one model, unknown model', async (t) => {
  const mock = await startMock(t)
  const ids = ['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-latest', 'text-embedding-3-small']
  const client = openai(mock)
  const list = await client.models.list()
  assert.deepEqual(list.data.map((m) => m.id), ids)
  assert.ok(list.data.every((m) => m.object === 'model' && typeof m.created === 'number' && typeof m.owned_by === 'string'))
  assert.equal((await client.models.retrieve('gpt-4o')).owned_by, 'openai')
  await assert.rejects(client.models.retrieve('gpt-nope'), (err: unknown) => err instanceof OpenAI.NotFoundError)

  const claudeModels: string[] = []
  for await (const model of anthropic(mock).models.list()) {
    assert.equal(model.type, 'model')
    assert.equal(model.display_name, model.id)
    claudeModels.push(model.id)
  }
  assert.deepEqual(claudeModels, ids)
  const raw = await json<{ has_more: boolean, first_id: string, last_id: string }>(
    await fetch(`${mock.url}/v1/models`, { headers: { 'anthropic-version': '2023-06-01' } })
  )
  assert.deepEqual(
    { has_more: raw.has_more, first_id: raw.first_id, last_id: raw.last_id },
    { has_more: false, first_id: 'gpt-4o-mini', last_id: 'text-embedding-3-small' }
  )
  const missing = await fetch(`${mock.url}/v1/models/nope`, { headers: { 'anthropic-version': '2023-06-01' } })
  assert.equal(missing.status, 404)
  assert.equal((await json<AnthropicErrorBody>(missing)).error.type, 'not_found_error')

  const custom = await startMock(t, { models: ['only-one'] })
  assert.deepEqual((await openai(custom).models.list()).data.map((m) => m.id), ['only-one'])
})

test('messages as JSON and as a stream through @anthropic-ai/sdk', async (t) => {
  const mock = await startMock(t)
  const client = anthropic(mock)
  const message = await client.messages.create(MESSAGE, { headers: { 'x-mock-chunks': '3' } })
  assert.equal(message.type, 'message')
  assert.equal(message.role, 'assistant')
  assert.equal(message.model, MESSAGE.model)
  assert.deepEqual(message.content, [{ type: 'text', text: 'tok0 tok1 tok2 ' }])
  assert.equal(message.stop_reason, 'end_turn')
  assert.deepEqual(message.usage, { input_tokens: 10, output_tokens: 3, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 })
  const { headers } = mock.requests[0]
  assert.ok(headers['anthropic-version'] !== undefined)
  // Depending on the SDK version the key travels as x-api-key or as a bearer token.
  assert.ok(headers['x-api-key'] === 'sk-ant-test' || headers.authorization === 'Bearer sk-ant-test')

  const stream = client.messages.stream(MESSAGE, { headers: { 'x-mock-chunks': '6', 'x-mock-context-id': 'a1' } })
  const streamed = await stream.finalMessage()
  assert.equal(streamed.content.length, 1)
  assert.equal(streamed.content[0].type === 'text' && streamed.content[0].text, 'tok0 tok1 tok2 tok3 tok4 tok5 \n[CONTEXT_ID:a1]')
  assert.equal(streamed.usage.output_tokens, 6)
  assert.equal(streamed.stop_reason, 'end_turn')

  const res = await postJson(mock, '/v1/messages', { ...MESSAGE, stream: true }, { 'x-mock-chunks': '2' })
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  assert.deepEqual(sseEvents(await res.text()), [
    'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta',
    'content_block_stop', 'message_delta', 'message_stop'
  ])
  const count = await client.messages.countTokens({ model: MESSAGE.model, messages: MESSAGE.messages })
  assert.equal(count.input_tokens, 10)
})

test('x-mock-usage: cumulative sends running totals; the last one is the usage', async (t) => {
  const mock = await startMock(t)
  const headers = { 'x-mock-chunks': '9', 'x-mock-usage': 'cumulative' }
  const final = await anthropic(mock).messages.stream(MESSAGE, { headers }).finalMessage()
  assert.equal(final.usage.output_tokens, 9)
  assert.equal(final.usage.input_tokens, 10)

  const text = await postJson(mock, '/v1/messages', { ...MESSAGE, stream: true }, headers).then((r) => r.text())
  const events = sseData(text).map((d) => JSON.parse(d) as { type: string, usage?: { output_tokens: number }, message?: { usage: { output_tokens: number } } })
  assert.equal(events[0].message?.usage.output_tokens, 1, 'message_start carries usage too')
  assert.deepEqual(events.filter((e) => e.type === 'message_delta').map((e) => e.usage?.output_tokens), [3, 6, 9])
})

test('embeddings: base64 (the SDK default) and float, string and array input, Azure deployment path', async (t) => {
  const mock = await startMock(t)
  const client = openai(mock)
  const single = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' })
  assert.equal((mock.requests[0].json as { encoding_format: string }).encoding_format, 'base64')
  assert.deepEqual(Array.from(single.data[0].embedding), mockEmbedding('hello'))
  assert.equal(single.model, 'text-embedding-3-small')
  assert.deepEqual(single.usage, { prompt_tokens: 2, total_tokens: 2 })

  const many = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'], encoding_format: 'float' })
  assert.deepEqual(many.data.map((d) => [d.object, d.index, d.embedding]), [
    ['embedding', 0, mockEmbedding('a')],
    ['embedding', 1, mockEmbedding('b')]
  ])
  assert.equal(mockEmbedding('a').length, 8)
  assert.notDeepEqual(mockEmbedding('a'), mockEmbedding('b'))

  const azure = await postJson(mock, '/openai/deployments/my-embedder/embeddings?api-version=2024-10-21', { input: 'x', encoding_format: 'float' })
  assert.equal((await json<{ model: string }>(azure)).model, 'my-embedder')
  const bad = await postJson(mock, '/v1/embeddings', { model: 'text-embedding-3-small' })
  assert.equal(bad.status, 400)
})

/** Deterministic pseudo-random bytes, so that a shifted or dropped byte changes the hash. */
function testBytes (length: number): Buffer {
  const out = Buffer.alloc(length)
  let x = 12345
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

test('files.create: multipart is parsed while streaming, files hashed, fields recorded', async (t) => {
  const mock = await startMock(t)
  const data = testBytes(300_000)
  const file = await openai(mock).files.create({
    file: await toFile(data, 'train.jsonl', { type: 'application/jsonl' }),
    purpose: 'fine-tune'
  })
  assert.match(file.id, /^file-/)
  assert.equal(file.object, 'file')
  assert.equal(file.bytes, data.length)
  assert.equal(file.filename, 'train.jsonl')
  assert.equal(file.purpose, 'fine-tune')

  const seen = mock.requests[0]
  assert.deepEqual(seen.files, [{ field: 'file', filename: 'train.jsonl', mimeType: 'application/jsonl', bytes: data.length, sha256: sha256(data) }])
  assert.deepEqual(seen.fields, { purpose: 'fine-tune' })
  assert.equal(seen.bodyText, undefined, 'multipart bodies are not kept')
  assert.ok(seen.bodyBytes > data.length)
  assert.match(seen.bodySha256, /^[0-9a-f]{64}$/)

  // A non-multipart body on a multipart path is hashed as it is.
  const raw = await fetch(`${mock.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: data })
  assert.equal((await json<{ bytes: number }>(raw)).bytes, data.length)
  assert.equal(mock.requests[1].bodySha256, sha256(data))

  const broken = await fetch(`${mock.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: 'x' })
  assert.equal(broken.status, 400)
  assert.equal((await json<OpenAIErrorBody>(broken)).error.type, 'invalid_request_error')
})

test('audio transcriptions/translations, image edits/variations and upload parts', async (t) => {
  const mock = await startMock(t)
  const client = openai(mock)
  const audio = (): Promise<File> => toFile(testBytes(1000), 'speech.mp3', { type: 'audio/mpeg' })
  const text = await client.audio.transcriptions.create({ file: await audio(), model: 'whisper-1', response_format: 'text' })
  assert.equal(text, 'mock transcription')
  const json = await client.audio.translations.create({ file: await audio(), model: 'whisper-1' })
  assert.equal(json.text, 'mock transcription')
  assert.deepEqual(mock.requests[1].fields, { model: 'whisper-1' })
  assert.equal(mock.requests[1].files?.[0].sha256, sha256(testBytes(1000)))

  const png = (): Promise<File> => toFile(testBytes(500), 'in.png', { type: 'image/png' })
  const edit = await client.images.edit({ image: await png(), prompt: 'a hat', model: 'dall-e-2', n: 2 })
  assert.equal(edit.data?.length, 2)
  assert.ok(Buffer.from(edit.data?.[0].b64_json ?? '', 'base64').subarray(1, 4).equals(Buffer.from('PNG')))
  const variation = await client.images.createVariation({ image: await png(), model: 'dall-e-2' })
  assert.equal(variation.data?.length, 1)

  const part = await client.uploads.parts.create('upload_abc', { data: await toFile(testBytes(2048), 'part.bin') })
  assert.equal(part.object, 'upload.part')
  assert.equal(part.upload_id, 'upload_abc')
  assert.match(part.id, /^part_/)
  assert.equal(mock.requests.at(-1)?.files?.[0].bytes, 2048)
})

test('downloads: file content and speech stream deterministic bytes', async (t) => {
  const mock = await startMock(t)
  const client = openai(mock)
  const content = await client.files.content('file-abc')
  assert.equal(content.headers.get('content-type'), 'application/octet-stream')
  assert.equal(content.headers.get('content-disposition'), 'attachment; filename="file-abc"')
  const bytes = Buffer.from(await content.arrayBuffer())
  assert.equal(bytes.length, 1024 * 1024)
  assert.equal(sha256(bytes), sha256(mockPayload(1024 * 1024)))

  const small = await fetch(`${mock.url}/v1/files/f1/content`, { headers: { 'x-mock-bytes': '1000', 'x-mock-chunks': '3' } })
  assert.ok(Buffer.from(await small.arrayBuffer()).equals(mockPayload(1000)))
  assert.equal(lastStream(mock).chunksPlanned, 3)

  const speech = await client.audio.speech.create({ model: 'tts-1', input: 'hi', voice: 'alloy' }, { headers: { 'x-mock-bytes': '5000' } })
  assert.equal(speech.headers.get('content-type'), 'audio/mpeg')
  assert.ok(Buffer.from(await speech.arrayBuffer()).equals(mockPayload(5000)))
  assert.ok(mockPayload(300, 1000).equals(mockPayload(1300).subarray(1000)), 'payload offsets line up')
  assert.ok(mockPayload(200_000, 7).equals(mockPayload(200_007).subarray(7)), 'large chunks line up too')
})

test('x-mock-hold keeps the last chunk until release(); a release before the hold also works', async (t) => {
  const mock = await startMock(t)
  const res = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-hold': 'h1', 'x-mock-chunks': '3' })
  const { text: first, reader } = await readUntil(res, (text) => text.includes('\n\n'))
  assert.ok(first.startsWith('data: {'))
  await eventually(() => lastStream(mock).chunksSent === lastStream(mock).chunksPlanned - 1, 'all but the last chunk sent')
  assert.equal(lastStream(mock).finished, false)
  mock.release('h1')
  const text = first + await readRest(reader)
  assert.equal(sseData(text).at(-1), '[DONE]')
  await eventually(() => lastStream(mock).finished, 'stream finished after release')

  mock.release('h2')
  const early = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-hold': 'h2' })
  assert.equal(sseData(await early.text()).at(-1), '[DONE]')
})

test('x-mock-status answers OpenAI- or Anthropic-shaped errors, for stream requests too', async (t) => {
  const mock = await startMock(t)
  await assert.rejects(
    openai(mock).chat.completions.create({ ...CHAT, stream: true }, { headers: { 'x-mock-status': '429' } }),
    (err: unknown) => {
      assert.ok(err instanceof OpenAI.RateLimitError)
      assert.equal(err.code, 'rate_limit_exceeded')
      return true
    }
  )
  const res = await postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-status': '503', 'x-mock-retry-after': '7' })
  assert.equal(res.status, 503)
  assert.equal(res.headers.get('retry-after'), '7')
  assert.deepEqual(await res.json(), { error: { message: 'Mock error 503', type: 'server_error', param: null, code: 'service_unavailable' } })

  await assert.rejects(
    anthropic(mock).messages.create(MESSAGE, { headers: { 'x-mock-status': '401' } }),
    (err: unknown) => err instanceof Anthropic.AuthenticationError
  )
  const streamed = await postJson(mock, '/v1/messages', { ...MESSAGE, stream: true }, { 'x-mock-status': '529' })
  assert.equal(streamed.status, 529)
  assert.equal(streamed.headers.get('content-type'), 'application/json')
  assert.deepEqual(await streamed.json(), { type: 'error', error: { type: 'overloaded_error', message: 'Mock error 529' } })
  assert.equal(mock.streams.length, 0)
})

test('unknown paths, bad JSON and a missing model are OpenAI-shaped client errors', async (t) => {
  const mock = await startMock(t)
  const unknown = await fetch(`${mock.url}/v2/nothing`)
  assert.equal(unknown.status, 404)
  assert.deepEqual(await unknown.json(), { error: { message: 'Invalid URL (GET /v2/nothing)', type: 'invalid_request_error', param: null, code: 'not_found' } })
  const wrongMethod = await fetch(`${mock.url}/v1/chat/completions`)
  assert.equal(wrongMethod.status, 404)
  await wrongMethod.arrayBuffer()
  const badJson = await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' })
  assert.equal(badJson.status, 400)
  await badJson.arrayBuffer()
  const noModel = await postJson(mock, '/v1/chat/completions', { messages: [] })
  assert.equal((await json<OpenAIErrorBody>(noModel)).error.message, 'you must provide a model parameter')
  const azure = await postJson(mock, '/openai/deployments/gpt4-prod/chat/completions?api-version=2024-10-21', { messages: [] })
  assert.equal((await json<{ model: string }>(azure)).model, 'gpt4-prod')
})

test('override() replaces one exact path until removed', async (t) => {
  const mock = await startMock(t)
  mock.override('/v1/chat/completions', (_req, res, record) => {
    res.writeHead(418, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ sawModel: (record.json as { model: string }).model, bytes: record.bodyBytes }))
  })
  const overridden = await postJson(mock, '/v1/chat/completions', CHAT)
  assert.equal(overridden.status, 418)
  assert.deepEqual(await overridden.json(), { sawModel: 'gpt-4o-mini', bytes: Buffer.byteLength(JSON.stringify(CHAT)) })

  mock.override('/v1/broken', async () => { throw new Error('handler bug') })
  const broken = await fetch(`${mock.url}/v1/broken`)
  assert.equal(broken.status, 500)
  assert.equal((await json<OpenAIErrorBody>(broken)).error.message, 'handler bug')

  mock.override('/v1/chat/completions', null)
  const normal = await postJson(mock, '/v1/chat/completions', CHAT)
  assert.equal(normal.status, 200)
  await normal.arrayBuffer()
})

test('a client abort stops the stream and is recorded', async (t) => {
  const mock = await startMock(t)
  const ac = new AbortController()
  const res = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-chunks': '1000', 'x-mock-delay-ms': '2' }, ac.signal)
  await readUntil(res, (text) => text.includes('\n\n'))
  ac.abort()
  await eventually(() => lastStream(mock).aborted, 'abort noticed')
  const record = lastStream(mock)
  assert.ok(record.chunksSent < record.chunksPlanned)
  assert.equal(record.finished, false)
  assert.equal(typeof record.abortedAt, 'number')
  assert.equal(record.chunksAfterAbort, 0)
})

test('fault: reset-before-headers and hang-before-headers', async (t) => {
  const mock = await startMock(t)
  await assert.rejects(postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'reset-before-headers' }), TypeError)

  const ac = new AbortController()
  const pending = postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'hang-before-headers' }, ac.signal)
  await eventually(() => mock.count() === 2, 'hanging request received')
  const hanging = mock.requests[1]
  assert.equal(hanging.closed, false)
  ac.abort()
  await assert.rejects(pending, { name: 'AbortError' })
  await eventually(() => hanging.closed, 'the mock saw the client go away')
})

test('fault: reset-mid-stream and hang-mid-stream send two chunks first', async (t) => {
  const mock = await startMock(t)
  const reset = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-fault': 'reset-mid-stream' })
  assert.equal(reset.status, 200)
  await assert.rejects(reset.text(), TypeError)
  assert.equal(lastStream(mock).chunksSent, 2)
  assert.equal(lastStream(mock).aborted, false, 'a reset by the mock is not a client abort')

  const ac = new AbortController()
  const hang = await postJson(mock, '/v1/messages', { ...MESSAGE, stream: true }, { 'x-mock-fault': 'hang-mid-stream' }, ac.signal)
  const { text } = await readUntil(hang, (soFar) => soFar.split('\n\n').length > 2)
  assert.deepEqual(sseEvents(text), ['message_start', 'content_block_start'])
  assert.equal(lastStream(mock).chunksSent, 2)
  ac.abort()
  await eventually(() => lastStream(mock).aborted, 'hanging stream dropped by the client')

  const json = await postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'reset-mid-stream' })
  await assert.rejects(json.text(), TypeError, 'a JSON answer is cut short too')
})

test('fault: garbage, invalid-sse, wrong-content-length, big-header', async (t) => {
  const mock = await startMock(t)
  const garbage = await postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'garbage' })
  assert.equal(garbage.status, 200)
  assert.equal(garbage.headers.get('content-type'), 'application/json')
  await assert.rejects(garbage.json(), SyntaxError)

  const stream = await openai(mock).chat.completions.create({ ...CHAT, stream: true }, { headers: { 'x-mock-fault': 'invalid-sse' } })
  await assert.rejects(async () => { for await (const _chunk of stream); })
  const invalid = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-fault': 'invalid-sse' })
  assert.equal(invalid.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  assert.ok(!(await invalid.text()).includes('[DONE]'))

  const short = await postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'wrong-content-length' })
  assert.equal(short.status, 200)
  await assert.rejects(short.text(), TypeError)

  await assert.rejects(postJson(mock, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'big-header' }), (err: unknown) => {
    assert.ok(err instanceof TypeError)
    assert.equal((err.cause as { code?: string }).code, 'UND_ERR_HEADERS_OVERFLOW')
    return true
  })
})

/** Collects WebSocket messages so that tests can await them one by one. */
function inbox (ws: WebSocket): () => Promise<{ data: Buffer, isBinary: boolean }> {
  const queue: Array<{ data: Buffer, isBinary: boolean }> = []
  let wake: (() => void) | undefined
  ws.on('message', (data, isBinary) => {
    queue.push({ data: data as Buffer, isBinary })
    wake?.()
  })
  return async () => {
    while (queue.length === 0) await new Promise<void>((resolve) => { wake = resolve })
    return queue.shift() as { data: Buffer, isBinary: boolean }
  }
}

async function nextEvent (next: ReturnType<typeof inbox>): Promise<Record<string, unknown> & { type: string }> {
  const { data, isBinary } = await next()
  assert.equal(isBinary, false)
  return JSON.parse(data.toString('utf8'))
}

function wsUrl (mock: MockUpstream, path: string): string {
  return mock.url.replace(/^http/, 'ws') + path
}

test('realtime WebSocket: session, echo, binary echo, response.done, close code', async (t) => {
  const mock = await startMock(t)
  const ws = new WebSocket(wsUrl(mock, '/v1/realtime?model=gpt-4o-realtime-preview'),
    ['openai-insecure-api-key.sk-secret', 'realtime', 'openai-beta.realtime-v1'],
    { headers: { Authorization: 'Bearer sk-ws' } })
  t.after(() => ws.terminate())
  const next = inbox(ws)
  await once(ws, 'open')
  assert.equal(ws.protocol, 'realtime')
  const created = await nextEvent(next)
  assert.equal(created.type, 'session.created')
  assert.equal((created.session as { model: string }).model, 'gpt-4o-realtime-preview')

  ws.send(JSON.stringify({ type: 'conversation.item.create', item: { id: 'x' } }))
  assert.deepEqual((await nextEvent(next)).data, { type: 'conversation.item.create', item: { id: 'x' } })
  const binary = Buffer.from([0, 1, 2, 250, 255])
  ws.send(binary)
  const echoed = await next()
  assert.equal(echoed.isBinary, true)
  assert.ok(echoed.data.equals(binary))

  ws.send(JSON.stringify({ type: 'response.create' }))
  const types: string[] = []
  let done: Record<string, unknown> | undefined
  while (done === undefined) {
    const event = await nextEvent(next)
    types.push(event.type)
    if (event.type === 'response.done') done = event
  }
  assert.deepEqual(types, ['response.created', 'response.output_text.delta', 'response.output_text.delta', 'response.done'])
  assert.deepEqual((done.response as { usage: unknown }).usage, { total_tokens: 30, input_tokens: 10, output_tokens: 20 })

  ws.send(JSON.stringify({ type: 'mock.close', code: 4001, reason: 'bye' }))
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  assert.equal(code, 4001)
  assert.equal(reason.toString(), 'bye')

  await eventually(() => mock.wsConnections[0]?.closeCode === 4001, 'close recorded')
  const connection = mock.wsConnections[0]
  assert.equal(connection.path, '/v1/realtime')
  assert.equal(connection.url, '/v1/realtime?model=gpt-4o-realtime-preview')
  assert.equal(connection.protocol, 'realtime')
  assert.equal(connection.headers.authorization, 'Bearer sk-ws')
  assert.equal(connection.closeReason, 'bye')
  assert.equal(connection.messages, 4)
  assert.equal(mock.count('/v1/realtime'), 1)
})

test('realtime WebSocket: protocol choice, terminate, refused upgrades', async (t) => {
  const mock = await startMock(t)
  const ws = new WebSocket(wsUrl(mock, '/v1/realtime'), ['openai-insecure-api-key.sk-secret', 'openai-beta.realtime-v1'])
  t.after(() => ws.terminate())
  await once(ws, 'open')
  assert.equal(ws.protocol, 'openai-beta.realtime-v1', 'the key protocol is never chosen')
  ws.send(JSON.stringify({ type: 'mock.terminate' }))
  const [code] = await once(ws, 'close') as [number]
  assert.equal(code, 1006)

  for (const [path, headers, status] of [
    ['/v1/realtime', { 'x-mock-status': '403' }, 403],
    ['/v1/elsewhere', {}, 404]
  ] as const) {
    const refused = new WebSocket(wsUrl(mock, path), { headers })
    const [err] = await once(refused, 'error') as [Error]
    assert.equal(err.message, `Unexpected server response: ${status}`)
  }
})

test('close() drops held streams and open WebSockets', async (t) => {
  const mock = await startMockUpstream()
  t.after(() => mock.close())
  const held = await postJson(mock, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-hold': 'never', 'x-mock-chunks': '2' })
  const { reader } = await readUntil(held, (text) => text.includes('\n\n'))
  const ws = new WebSocket(wsUrl(mock, '/v1/realtime'))
  await once(ws, 'open')
  const wsClosed = once(ws, 'close')
  await mock.close()
  await assert.rejects(readRest(reader))
  const [code] = await wsClosed as [number]
  assert.equal(code, 1006)
})

function selfSigned (): { key: string, cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'mock-tls-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') }
}

test('tls option serves HTTPS', async (t) => {
  const tls = selfSigned()
  if (tls === undefined) return t.skip('openssl is not available')
  const mock = await startMock(t, { tls })
  assert.match(mock.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const agent = new Agent({ connect: { ca: tls.cert } })
  t.after(() => agent.close())
  const res = await request(`${mock.url}/healthz`, { dispatcher: agent })
  assert.deepEqual(await res.body.json(), { status: 'ok' })
})

test('cli: prints one JSON line, serves, exits cleanly on SIGTERM', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'mock/cli.ts', '--chunks', '3', '--delay-ms', '0'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines: string[] = []
  const rl = createInterface({ input: child.stdout })
  rl.on('line', (line) => lines.push(line))
  await eventually(() => lines.length > 0, 'the cli printed its address')
  const { mock: url } = JSON.parse(lines[0]) as { mock: string }
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT) })
  assert.equal((await json<OpenAI.ChatCompletion>(res)).choices[0].message.content, 'tok0 tok1 tok2 ')
  child.kill('SIGTERM')
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  assert.equal(signal, null)
  assert.equal(code, 0)
  assert.equal(lines.length, 1)
})

test('tool calls, reasoning and cached tokens, in each API\'s own wire format as its SDK reads it', async (t) => {
  const mock = await startMock(t)
  const tool = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }
  const openai = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x', maxRetries: 0 })
  const chat = await openai.chat.completions.stream({
    ...CHAT, tools: [{ type: 'function', function: tool }], tool_choice: 'required', stream_options: { include_usage: true }
  }, { headers: { 'x-mock-cached-tokens': '4', 'x-mock-reasoning': '2' } }).finalChatCompletion()
  const call = chat.choices[0].message.tool_calls?.[0]
  assert.ok(call?.type === 'function')
  assert.deepEqual([call.id, call.function.name, JSON.parse(call.function.arguments)], ['call_mock_0', 'get_weather', { city: 'mock-city' }])
  assert.equal(chat.choices[0].finish_reason, 'tool_calls')
  assert.equal(chat.usage?.prompt_tokens_details?.cached_tokens, 4)
  assert.equal(chat.usage?.completion_tokens_details?.reasoning_tokens, 2)

  const anthropic = new Anthropic({ baseURL: mock.url, apiKey: 'x', maxRetries: 0 })
  const message = await anthropic.messages.stream({
    ...MESSAGE, tools: [{ name: tool.name, input_schema: tool.parameters as { type: 'object' } }], tool_choice: { type: 'any' }
  }, { headers: { 'x-mock-cached-tokens': '4', 'x-mock-reasoning': '2' } }).finalMessage()
  assert.deepEqual(message.content, [
    { type: 'thinking', thinking: 'think0 think1 ', signature: 'mock-signature' },
    { type: 'tool_use', id: 'toolu_mock_0', name: 'get_weather', input: { city: 'mock-city' } }
  ])
  assert.equal(message.stop_reason, 'tool_use')
  assert.equal(message.usage.cache_read_input_tokens, 4)
})
