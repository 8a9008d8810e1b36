/**
 * Direction 2: a Chat Completions client (the OpenAI SDKs and the tools built on them) on an
 * Anthropic Messages upstream. System and developer messages become the system prompt, tool
 * calls and tool messages become `tool_use` / `tool_result` blocks, `response_format` becomes a
 * forced tool whose input is the JSON answer; the answer comes back as a chat completion, or as
 * chunks with tool-call deltas indexed as OpenAI indexes them.
 */
import { openAiError } from './errors.js'
import {
  type Json, KEEP_ALIVE, arr, dataEvent, dataUrl, given, isObject, obj, parseArguments, refuse, refuseUnknown, str, tokens
} from './shared.js'
import type { AnswerTranslator, Direction, StreamTranslator, TranslatedRequest } from './types.js'

/** Anthropic requires `max_tokens`; a Chat client may leave it out (docs/translation.md). */
export const DEFAULT_MAX_TOKENS = 4096

/** `reasoning_effort` → thinking budget (Anthropic's minimum budget is 1024). */
const BUDGETS: Record<string, number> = { minimal: 1024, low: 1024, medium: 4096, high: 16384 }

/** Tool choices that ask for nothing when there are no tools. */
const NO_OP_CHOICES = new Set<unknown>(['auto', 'none'])

/** The forced tool that carries a `response_format` answer. */
const JSON_TOOL = 'json_response'

const KNOWN = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'stop', 'n', 'temperature', 'top_p',
  'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'reasoning_effort', 'stream',
  'stream_options', 'user', 'store', 'logprobs', 'frequency_penalty', 'presence_penalty'
])

/** Members whose default value asks for nothing: accepted at that value, refused otherwise. */
const NEUTRAL: Record<string, unknown> = { n: 1, store: false, logprobs: false, frequency_penalty: 0, presence_penalty: 0 }

function textOf (content: unknown, field: string): string {
  if (typeof content === 'string') return content
  return arr(content, field).map((part, i) => {
    const p = obj(part, `${field}[${i}]`)
    if (p.type !== 'text') refuse(`${field}[${i}].type`, `'${String(p.type)}' cannot be carried here: this message takes text`)
    return str(p.text, `${field}[${i}].text`)
  }).join('')
}

function imageBlock (part: Json, field: string): Json {
  const image = obj(part.image_url, `${field}.image_url`)
  const url = str(image.url, `${field}.image_url.url`)
  const inline = dataUrl(url)
  if (inline !== null) return { type: 'image', source: { type: 'base64', media_type: inline.mediaType, data: inline.data } }
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } }
  refuse(`${field}.image_url.url`, 'must be an http(s) or base64 data URL')
}

/** A `file` part with its data inline (a PDF) → a document block; a file id cannot be carried. */
function documentBlock (part: Json, field: string): Json {
  const file = obj(part.file, `${field}.file`)
  const inline = typeof file.file_data === 'string' ? dataUrl(file.file_data) : null
  if (inline === null || inline.mediaType !== 'application/pdf') refuse(`${field}.file`, 'cannot be carried: only a PDF as a base64 data URL in file_data can')
  const block: Json = { type: 'document', source: { type: 'base64', media_type: inline.mediaType, data: inline.data } }
  if (typeof file.filename === 'string' && file.filename !== '') block.title = file.filename
  return block
}

/** Anthropic refuses empty text blocks; Chat clients send empty strings freely. */
function nonEmpty (blocks: Json[]): Json[] {
  return blocks.filter(b => b.type !== 'text' || b.text !== '')
}

function userBlocks (content: unknown, field: string): Json[] {
  if (typeof content === 'string') return nonEmpty([{ type: 'text', text: content }])
  return nonEmpty(arr(content, field).map((part, i) => {
    const f = `${field}[${i}]`
    const p = obj(part, f)
    if (p.type === 'text') return { type: 'text', text: str(p.text, `${f}.text`) }
    if (p.type === 'image_url') return imageBlock(p, f)
    if (p.type === 'file') return documentBlock(p, f)
    return refuse(`${f}.type`, `'${String(p.type)}' cannot be carried to an Anthropic Messages upstream`)
  }))
}

function assistantBlocks (m: Json, field: string): Json[] {
  const blocks: Json[] = []
  if (given(m.content)) {
    const content = m.content
    const text = typeof content === 'string'
      ? content
      : arr(content, `${field}.content`).map((part, i) => {
        const p = obj(part, `${field}.content[${i}]`)
        if (p.type === 'text') return str(p.text, `${field}.content[${i}].text`)
        if (p.type === 'refusal') return str(p.refusal, `${field}.content[${i}].refusal`)
        return refuse(`${field}.content[${i}].type`, `'${String(p.type)}' cannot be carried to an Anthropic Messages upstream`)
      }).join('')
    if (text !== '') blocks.push({ type: 'text', text })
  }
  if (given(m.tool_calls)) {
    arr(m.tool_calls, `${field}.tool_calls`).forEach((call, i) => {
      const f = `${field}.tool_calls[${i}]`
      const c = obj(call, f)
      if (c.type !== undefined && c.type !== 'function') refuse(`${f}.type`, `'${String(c.type)}' is not a function call`)
      const fn = obj(c.function, `${f}.function`)
      blocks.push({ type: 'tool_use', id: str(c.id, `${f}.id`), name: str(fn.name, `${f}.function.name`), input: parseArguments(fn.arguments, `${f}.function.arguments`) })
    })
  }
  return blocks
}

/** Appends a turn, joining it to the previous one of the same role (Anthropic alternates roles). */
function push (messages: Json[], role: string, blocks: Json[]): void {
  if (blocks.length === 0) return
  const last = messages.at(-1)
  if (last !== undefined && last.role === role) (last.content as Json[]).push(...blocks)
  else messages.push({ role, content: blocks })
}

function convertMessages (list: unknown, system: Json[], messages: Json[]): void {
  arr(list, 'messages').forEach((message, i) => {
    const f = `messages[${i}]`
    const m = obj(message, f)
    if (given(m.name)) refuse(`${f}.name`, 'has no counterpart in the Anthropic Messages API')
    switch (m.role) {
      // Anthropic has one system prompt: every system and developer message goes there, in order
      case 'system': case 'developer': system.push({ type: 'text', text: textOf(m.content, `${f}.content`) }); break
      case 'user': push(messages, 'user', userBlocks(m.content, `${f}.content`)); break
      case 'assistant': push(messages, 'assistant', assistantBlocks(m, f)); break
      case 'tool':
        push(messages, 'user', [{ type: 'tool_result', tool_use_id: str(m.tool_call_id, `${f}.tool_call_id`), content: textOf(m.content, `${f}.content`) }])
        break
      default: refuse(`${f}.role`, `'${String(m.role)}' cannot be carried to an Anthropic Messages upstream`)
    }
  })
}

function anthropicTools (tools: unknown): Json[] {
  return arr(tools, 'tools').map((tool, i) => {
    const t = obj(tool, `tools[${i}]`)
    if (t.type !== 'function') refuse(`tools[${i}].type`, `'${String(t.type)}' cannot be carried: only function tools can`)
    const fn = obj(t.function, `tools[${i}].function`)
    const out: Json = { name: str(fn.name, `tools[${i}].function.name`), input_schema: fn.parameters ?? { type: 'object', properties: {} } }
    if (typeof fn.description === 'string') out.description = fn.description
    return out
  })
}

function toolChoice (choice: unknown): Json {
  if (choice === 'auto') return { type: 'auto' }
  if (choice === 'required') return { type: 'any' }
  if (choice === 'none') return { type: 'none' }
  const c = obj(choice, 'tool_choice')
  if (c.type !== 'function') refuse('tool_choice.type', `'${String(c.type)}' cannot be carried: only function choices can`)
  return { type: 'tool', name: str(obj(c.function, 'tool_choice.function').name, 'tool_choice.function.name') }
}

/** `response_format` as a forced tool; null for plain text. */
function jsonTool (format: Json, hasTools: boolean): Json | null {
  if (format.type === 'text') return null
  let schema: unknown
  if (format.type === 'json_object') schema = { type: 'object', additionalProperties: true }
  else if (format.type === 'json_schema') schema = obj(format.json_schema, 'response_format.json_schema').schema ?? { type: 'object' }
  else refuse('response_format.type', `'${String(format.type)}' is not a response format`)
  if (hasTools) refuse('response_format', 'cannot be combined with tools on an Anthropic Messages upstream (it is carried as a forced tool)')
  return { name: JSON_TOOL, description: 'Answer with JSON that matches this schema.', input_schema: schema }
}

function thinking (effort: unknown, maxTokens: number, explicit: boolean): Json | null {
  if (effort === 'none') return null
  const budget = BUDGETS[str(effort, 'reasoning_effort')]
  if (budget === undefined) refuse('reasoning_effort', `'${String(effort)}' is not a reasoning effort`)
  if (explicit && maxTokens <= 1024) refuse('max_tokens', 'must be above 1024 with reasoning_effort: Anthropic\'s thinking budget is at least 1024 tokens and below max_tokens')
  return { type: 'enabled', budget_tokens: explicit ? Math.min(budget, maxTokens - 1) : budget }
}

export function chatToMessagesRequest (body: Json): { body: Json, jsonTool: boolean, includeUsage: boolean } {
  refuseUnknown(body, KNOWN, 'Anthropic Messages')
  for (const name in NEUTRAL) {
    if (given(body[name]) && body[name] !== NEUTRAL[name]) {
      refuse(name, name === 'n' ? 'above 1 cannot be served: the Anthropic Messages API returns one answer per request' : `other than ${String(NEUTRAL[name])} has no counterpart in the Anthropic Messages API`)
    }
  }
  const system: Json[] = []
  const messages: Json[] = []
  convertMessages(body.messages, system, messages)
  const limit = body.max_completion_tokens ?? body.max_tokens
  const explicit = given(limit)
  let maxTokens = explicit ? tokens(limit) : DEFAULT_MAX_TOKENS
  const out: Json = { model: body.model, messages, max_tokens: maxTokens }
  if (system.length > 0) out.system = system
  if (given(body.stop)) out.stop_sequences = typeof body.stop === 'string' ? [body.stop] : arr(body.stop, 'stop')
  if (given(body.temperature)) out.temperature = body.temperature
  if (given(body.top_p)) out.top_p = body.top_p
  if (typeof body.user === 'string') out.metadata = { user_id: body.user }
  const tools = given(body.tools) ? anthropicTools(body.tools) : []
  // `auto` or `none` without tools asks for nothing, and Anthropic refuses a choice without tools
  if (given(body.tool_choice) && (tools.length > 0 || !NO_OP_CHOICES.has(body.tool_choice))) out.tool_choice = toolChoice(body.tool_choice)
  if (body.parallel_tool_calls === false && tools.length > 0) out.tool_choice = { ...(isObject(out.tool_choice) ? out.tool_choice : { type: 'auto' }), disable_parallel_tool_use: true }
  const forced = given(body.response_format) ? jsonTool(obj(body.response_format, 'response_format'), tools.length > 0) : null
  if (forced !== null) {
    tools.push(forced)
    out.tool_choice = { type: 'tool', name: JSON_TOOL }
  }
  if (tools.length > 0) out.tools = tools
  if (given(body.reasoning_effort)) {
    if (forced !== null) refuse('reasoning_effort', 'cannot be combined with response_format on an Anthropic Messages upstream (thinking does not take a forced tool)')
    const t = thinking(body.reasoning_effort, maxTokens, explicit)
    if (t !== null) {
      out.thinking = t
      // without a client limit, the default is room for the answer after the thinking
      if (!explicit) out.max_tokens = maxTokens = tokens(t.budget_tokens) + DEFAULT_MAX_TOKENS
    }
  }
  if (body.stream === true) out.stream = true
  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true
  return { body: out, jsonTool: forced !== null, includeUsage }
}

export function finishReason (stop: unknown, jsonTool: boolean): string {
  switch (stop) {
    case 'max_tokens': case 'model_context_window_exceeded': return 'length'
    case 'tool_use': return jsonTool ? 'stop' : 'tool_calls'
    case 'refusal': return 'content_filter'
    default: return 'stop'
  }
}

/** Anthropic's usage counters (last value of each) → Chat's usage object. */
class Counts {
  input = 0
  output = 0
  cacheRead = 0
  cacheCreation = 0

  add (usage: unknown): void {
    if (!isObject(usage)) return
    if (given(usage.input_tokens)) this.input = tokens(usage.input_tokens)
    if (given(usage.output_tokens)) this.output = tokens(usage.output_tokens)
    if (given(usage.cache_read_input_tokens)) this.cacheRead = tokens(usage.cache_read_input_tokens)
    if (given(usage.cache_creation_input_tokens)) this.cacheCreation = tokens(usage.cache_creation_input_tokens)
  }

  chat (): Json {
    const prompt = this.input + this.cacheRead + this.cacheCreation
    return { prompt_tokens: prompt, completion_tokens: this.output, total_tokens: prompt + this.output, prompt_tokens_details: { cached_tokens: this.cacheRead } }
  }
}

function now (): number {
  return Math.floor(Date.now() / 1000)
}

function messageToChat (body: unknown, jsonTool: boolean): unknown {
  if (!isObject(body)) return body
  let text = ''
  let reasoning = ''
  const calls: Json[] = []
  for (const block of Array.isArray(body.content) ? body.content : []) {
    if (!isObject(block)) continue
    if (block.type === 'text' && typeof block.text === 'string') text += block.text
    else if (block.type === 'thinking' && typeof block.thinking === 'string') reasoning += block.thinking
    else if (block.type === 'tool_use' && jsonTool && block.name === JSON_TOOL) text += JSON.stringify(block.input ?? {})
    else if (block.type === 'tool_use') calls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } })
  }
  const message: Json = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null }
  if (reasoning !== '') message.reasoning_content = reasoning
  if (calls.length > 0) message.tool_calls = calls
  const counts = new Counts()
  counts.add(body.usage)
  return {
    id: `chatcmpl-${String(body.id)}`,
    object: 'chat.completion',
    created: now(),
    model: body.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(body.stop_reason, jsonTool) }],
    usage: counts.chat()
  }
}

/** The end of a Chat stream, `data: [DONE]`. */
export const DONE: unique symbol = Symbol('[DONE]')

/** Takes one Chat chunk (or the end) and returns the text to send for it. */
export type ChunkSink = (chunk: Json | typeof DONE) => string

function chatSse (chunk: Json | typeof DONE): string {
  return chunk === DONE ? 'data: [DONE]\n\n' : dataEvent(chunk)
}

type BlockRole = { kind: 'text' | 'thinking' | 'json' | 'other' } | { kind: 'tool', index: number }

/** Anthropic events → Chat chunks, then `data: [DONE]`. */
export class MessagesToChatStream implements StreamTranslator {
  readonly #jsonTool: boolean
  readonly #includeUsage: boolean
  readonly #created = now()
  readonly #counts = new Counts()
  readonly #blocks = new Map<number, BlockRole>()
  #id = 'chatcmpl-gateway'
  #model: unknown = null
  #tools = 0
  #over = false
  #finish = 'stop'

  readonly #emit: ChunkSink

  /** `emit`: where each chunk goes; by default the client's SSE text (another translator, composed) */
  constructor (jsonTool: boolean, includeUsage: boolean, emit: ChunkSink = chatSse) {
    this.#jsonTool = jsonTool
    this.#includeUsage = includeUsage
    this.#emit = emit
  }

  event (name: string | undefined, data: unknown): string {
    if (this.#over || !isObject(data)) return ''
    // an error in Chat's own shape (the gateway's, when the stream failed on its way): as it is
    if (isObject(data.error) && data.type === undefined) {
      this.#over = true
      return this.#emit(data)
    }
    switch (name ?? data.type) {
      case 'message_start': return this.#start(data)
      case 'content_block_start': return this.#blockStart(data)
      case 'content_block_delta': return this.#blockDelta(data)
      // (Anthropic may send several, with running totals: the finish chunk goes once, at message_stop)
      case 'message_delta':
        this.#counts.add(data.usage)
        if (isObject(data.delta) && given(data.delta.stop_reason)) this.#finish = finishReason(data.delta.stop_reason, this.#jsonTool)
        return ''
      case 'message_stop': return this.#stop()
      case 'error': return this.#fail(data)
      // Anthropic's keep-alive: a comment, which every SSE reader skips
      case 'ping': return KEEP_ALIVE
      default: return ''
    }
  }

  done (): string {
    return ''
  }

  end (): string {
    if (this.#over) return ''
    return this.#fail({ error: { message: 'The upstream stream ended before its last event' } })
  }

  #start (data: Json): string {
    const message = isObject(data.message) ? data.message : {}
    if (typeof message.id === 'string') this.#id = `chatcmpl-${message.id}`
    this.#model = message.model ?? null
    this.#counts.add(message.usage)
    return this.#chunk({ role: 'assistant', content: '' }, null)
  }

  #blockStart (data: Json): string {
    const index = typeof data.index === 'number' ? data.index : -1
    const block = isObject(data.content_block) ? data.content_block : {}
    if (block.type === 'tool_use' && this.#jsonTool && block.name === JSON_TOOL) {
      this.#blocks.set(index, { kind: 'json' })
      return ''
    }
    if (block.type === 'tool_use') {
      const tool = this.#tools++
      this.#blocks.set(index, { kind: 'tool', index: tool })
      return this.#chunk({ tool_calls: [{ index: tool, id: block.id, type: 'function', function: { name: block.name, arguments: '' } }] }, null)
    }
    this.#blocks.set(index, { kind: block.type === 'text' ? 'text' : block.type === 'thinking' ? 'thinking' : 'other' })
    return typeof block.text === 'string' && block.text !== '' ? this.#chunk({ content: block.text }, null) : ''
  }

  #blockDelta (data: Json): string {
    const delta = isObject(data.delta) ? data.delta : {}
    const role = this.#blocks.get(typeof data.index === 'number' ? data.index : -1)
    switch (delta.type) {
      case 'text_delta': return this.#chunk({ content: delta.text }, null)
      case 'thinking_delta': return this.#chunk({ reasoning_content: delta.thinking }, null)
      case 'input_json_delta':
        if (typeof delta.partial_json !== 'string' || delta.partial_json === '') return ''
        if (role?.kind === 'json') return this.#chunk({ content: delta.partial_json }, null)
        if (role?.kind === 'tool') return this.#chunk({ tool_calls: [{ index: role.index, function: { arguments: delta.partial_json } }] }, null)
        return ''
      default: return ''
    }
  }

  #stop (): string {
    let out = this.#chunk({}, this.#finish)
    this.#over = true
    if (this.#includeUsage) out += this.#emit({ id: this.#id, object: 'chat.completion.chunk', created: this.#created, model: this.#model, choices: [], usage: this.#counts.chat() })
    return out + this.#emit(DONE)
  }

  #chunk (delta: Json, finish: string | null): string {
    const chunk: Json = {
      id: this.#id,
      object: 'chat.completion.chunk',
      created: this.#created,
      model: this.#model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }]
    }
    if (this.#includeUsage) chunk.usage = null
    return this.#emit(chunk)
  }

  #fail (data: Json): string {
    this.#over = true
    const error = isObject(data.error) ? data.error : {}
    const message = typeof error.message === 'string' ? error.message : 'The upstream stream failed'
    return this.#emit({ error: { message, type: 'server_error', param: null, code: typeof error.type === 'string' ? error.type : null } })
  }
}

/** A whole Message → a chat completion (for a direction composed with this one). */
export function messageAnswerToChat (value: unknown, jsonTool: boolean): unknown {
  return messageToChat(value, jsonTool)
}

function translate (body: Json): TranslatedRequest {
  const request = chatToMessagesRequest(body)
  const answer: AnswerTranslator = {
    json: (value) => messageToChat(value, request.jsonTool),
    stream: () => new MessagesToChatStream(request.jsonTool, request.includeUsage)
  }
  return { body: request.body, answer }
}

export const chatToMessages: Direction = {
  client: 'chat',
  upstream: 'messages',
  upstreamPath: '/v1/messages',
  usageDialect: 'anthropic',
  request: translate,
  error: openAiError
}
