import type { Controls } from './controls.js'
import { asObject, requireJsonObject, requireModel, type Exchange } from './exchange.js'
import { pace } from './pacer.js'
import { SSE_HEADERS, sendError, sendJson } from './respond.js'
import { answerDeltas, answerText } from './text.js'
import { argumentPieces, forcedToolCalls, reasoningText, type MockToolCall } from './tools.js'

/** Fixed model creation time: listings are meant to be stable. */
const MODEL_CREATED = 1_700_000_000

interface Usage {
  prompt: number
  completion: number
}

function usageJson (usage: Usage): string {
  return `{"prompt_tokens":${usage.prompt},"completion_tokens":${usage.completion},"total_tokens":${usage.prompt + usage.completion}}`
}

/**
 * JSON-encoded answer text. The default answer is the same for nearly every
 * request, so it is encoded once per chunk count.
 */
const answerJsonCache = new Map<number, string>()
function answerJson (controls: Controls): string {
  if (controls.contextId !== undefined || controls.splitNetwork) return JSON.stringify(answerText(controls))
  let json = answerJsonCache.get(controls.chunks)
  if (json === undefined) {
    if (answerJsonCache.size >= 64) answerJsonCache.clear()
    json = JSON.stringify(answerText(controls))
    answerJsonCache.set(controls.chunks, json)
  }
  return json
}

/** Assembled from constant parts rather than JSON.stringify: this is the benchmark's hot path. */
function chatCompletionJson (ex: Exchange, model: string, usage: Usage): string {
  return '{"id":"chatcmpl-mock-' + ex.record.id + '","object":"chat.completion","created":' + ex.state.created +
    ',"model":' + JSON.stringify(model) +
    ',"choices":[{"index":0,"message":{"role":"assistant","content":' + answerJson(ex.controls) +
    ',"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":' + usageJson(usage) + '}'
}

/** All SSE events of a streamed chat completion, `data: [DONE]` included. */
function chatChunkEvents (ex: Exchange, model: string, usage: Usage, includeUsage: boolean): string[] {
  const head = 'data: {"id":"chatcmpl-mock-' + ex.record.id + '","object":"chat.completion.chunk","created":' +
    ex.state.created + ',"model":' + JSON.stringify(model) + ',"choices":'
  // With include_usage OpenAI sends "usage":null on every chunk but the extra last one.
  const tail = includeUsage ? ',"usage":null}\n\n' : '}\n\n'
  const choice = (delta: string, finish: string): string =>
    head + '[{"index":0,"delta":' + delta + ',"logprobs":null,"finish_reason":' + finish + '}]' + tail
  const events = [choice('{"role":"assistant","content":""}', 'null')]
  for (const delta of answerDeltas(ex.controls)) events.push(choice('{"content":' + JSON.stringify(delta) + '}', 'null'))
  events.push(choice('{}', '"stop"'))
  if (includeUsage) events.push(head + '[],"usage":' + usageJson(usage) + '}\n\n')
  events.push('data: [DONE]\n\n')
  return events
}

/** Usage with cached prompt tokens and reasoning tokens, as OpenAI reports them. */
function richUsage (ex: Exchange, usage: Usage): object {
  const cached = Math.min(ex.controls.cachedTokens, usage.prompt)
  return {
    prompt_tokens: usage.prompt,
    completion_tokens: usage.completion,
    total_tokens: usage.prompt + usage.completion,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: ex.controls.reasoning, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
  }
}

/**
 * The answer with tool calls, reasoning (`reasoning_content`, as DeepSeek and vLLM send it) or
 * cached tokens: built with JSON.stringify, off the benchmark's hot path.
 */
function richCompletion (ex: Exchange, model: string, usage: Usage, calls: MockToolCall[]): string {
  const message: Record<string, unknown> = { role: 'assistant', content: calls.length > 0 ? null : answerText(ex.controls), refusal: null }
  if (ex.controls.reasoning > 0) message.reasoning_content = Array.from({ length: ex.controls.reasoning }, (_, i) => reasoningText(i)).join('')
  if (calls.length > 0) message.tool_calls = calls.map(c => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
  return JSON.stringify({
    id: `chatcmpl-mock-${ex.record.id}`,
    object: 'chat.completion',
    created: ex.state.created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: calls.length > 0 ? 'tool_calls' : 'stop' }],
    usage: richUsage(ex, usage)
  })
}

function richChunkEvents (ex: Exchange, model: string, usage: Usage, includeUsage: boolean, calls: MockToolCall[]): string[] {
  const base = { id: `chatcmpl-mock-${ex.record.id}`, object: 'chat.completion.chunk', created: ex.state.created, model }
  const chunk = (delta: object, finish: string | null): string =>
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) })}\n\n`
  const events = [chunk({ role: 'assistant', content: '' }, null)]
  for (let i = 0; i < ex.controls.reasoning; i++) events.push(chunk({ reasoning_content: reasoningText(i) }, null))
  if (calls.length === 0) for (const delta of answerDeltas(ex.controls)) events.push(chunk({ content: delta }, null))
  calls.forEach((call, index) => {
    events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }, null))
    for (const piece of argumentPieces(call.arguments)) events.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }, null))
  })
  events.push(chunk({}, calls.length > 0 ? 'tool_calls' : 'stop'))
  if (includeUsage) events.push(`data: ${JSON.stringify({ ...base, choices: [], usage: richUsage(ex, usage) })}\n\n`)
  events.push('data: [DONE]\n\n')
  return events
}

/** POST /v1/chat/completions */
export function chatCompletions (ex: Exchange): Promise<void> | undefined {
  const body = requireJsonObject(ex)
  if (body === undefined) return
  const model = requireModel(ex, body)
  if (model === undefined) return
  const messages = Array.isArray(body.messages) ? body.messages.length : 0
  const usage = { prompt: messages * 10, completion: ex.controls.chunks }
  const calls = body.tools !== undefined ? forcedToolCalls(body, false) : []
  if (calls.length > 0 || ex.controls.reasoning > 0 || ex.controls.cachedTokens > 0) {
    if (body.stream !== true) {
      sendJson(ex, 200, richCompletion(ex, model, usage, calls))
      return
    }
    const events = richChunkEvents(ex, model, usage, asObject(body.stream_options)?.include_usage === true, calls)
    ex.res.writeHead(200, SSE_HEADERS)
    return pace(ex, events.length, (i) => events[i])
  }
  if (body.stream !== true) {
    sendJson(ex, 200, chatCompletionJson(ex, model, usage))
    return
  }
  const includeUsage = asObject(body.stream_options)?.include_usage === true
  const events = chatChunkEvents(ex, model, usage, includeUsage)
  ex.res.writeHead(200, SSE_HEADERS)
  return pace(ex, events.length, (i) => events[i])
}

/** Embedding inputs as strings: a string, strings, a token array, or token arrays. */
function embeddingInputs (input: unknown): string[] | undefined {
  if (typeof input === 'string') return [input]
  if (!Array.isArray(input) || input.length === 0) return undefined
  if (input.every((item) => typeof item === 'number')) return [JSON.stringify(input)]
  if (input.every((item) => typeof item === 'string')) return input as string[]
  if (input.every(Array.isArray)) return input.map((item) => JSON.stringify(item))
  return undefined
}

/**
 * A deterministic 8-dimensional embedding of `text`. Components are k/256 - 1,
 * exact in float32, so base64 answers decode to exactly these numbers.
 */
export function mockEmbedding (text: string): number[] {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  const vector: number[] = []
  for (let d = 0; d < 8; d++) {
    h = Math.imul(h ^ (d + 1), 0x01000193)
    vector.push(((h >>> 0) % 512) / 256 - 1)
  }
  return vector
}

function encodeEmbedding (vector: number[], base64: boolean): number[] | string {
  return base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector
}

/** POST /v1/embeddings */
export function embeddings (ex: Exchange): void {
  const body = requireJsonObject(ex)
  if (body === undefined) return
  const model = requireModel(ex, body)
  if (model === undefined) return
  const inputs = embeddingInputs(body.input)
  if (inputs === undefined) return sendError(ex, 400, "'input' must be a non-empty string or array")
  const base64 = body.encoding_format === 'base64'
  // Roughly four characters per token, at least one per input.
  const tokens = inputs.reduce((sum, text) => sum + Math.max(1, Math.ceil(text.length / 4)), 0)
  sendJson(ex, 200, JSON.stringify({
    object: 'list',
    data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: encodeEmbedding(mockEmbedding(text), base64) })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens }
  }))
}

function wantsAnthropicModels (ex: Exchange): boolean {
  return ex.req.headers['anthropic-version'] !== undefined
}

function openaiModel (id: string): object {
  return { id, object: 'model', created: MODEL_CREATED, owned_by: id.startsWith('claude') ? 'anthropic' : 'openai' }
}

function anthropicModel (id: string): object {
  return { type: 'model', id, display_name: id, created_at: new Date(MODEL_CREATED * 1000).toISOString() }
}

/** GET /v1/models, in Anthropic's shape when the client sent `anthropic-version`. */
export function listModels (ex: Exchange): void {
  const { models } = ex.state
  const payload = wantsAnthropicModels(ex)
    ? { data: models.map(anthropicModel), has_more: false, first_id: models[0] ?? null, last_id: models.at(-1) ?? null }
    : { object: 'list', data: models.map(openaiModel) }
  sendJson(ex, 200, JSON.stringify(payload))
}

/** GET /v1/models/{id} */
export function getModel (ex: Exchange): void {
  const id = ex.params[0]
  if (!ex.state.models.includes(id)) return sendError(ex, 404, `The model '${id}' does not exist`)
  sendJson(ex, 200, JSON.stringify(wantsAnthropicModels(ex) ? anthropicModel(id) : openaiModel(id)))
}
