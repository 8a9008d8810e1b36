/**
 * Direction 1: an Anthropic Messages client on a Chat Completions upstream (GPT, Azure, any
 * OpenAI-compatible model). The request's blocks become chat messages and tool calls; the answer
 * comes back as a Message, or as Anthropic's exact event grammar:
 * `message_start`, `ping`, per block `content_block_start` / `content_block_delta` /
 * `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`.
 */
import type { Provider } from '../upstream/target.js'
import { anthropicError } from './errors.js'
import {
  type Json, ToolCallKeys, arr, copyGiven, given, isObject, namedEvent, obj, refuse, refuseUnknown, str, tokens
} from './shared.js'
import type { AnswerTranslator, Direction, StreamTranslator, TranslatedRequest } from './types.js'

const KNOWN = new Set([
  'model', 'messages', 'system', 'max_tokens', 'metadata', 'stop_sequences', 'stream', 'temperature',
  'top_p', 'tools', 'tool_choice', 'thinking'
])

/** `thinking.budget_tokens` → `reasoning_effort`: the budget's order of magnitude. */
export function effortForBudget (budget: number): 'low' | 'medium' | 'high' {
  if (budget < 4096) return 'low'
  if (budget < 16384) return 'medium'
  return 'high'
}

function systemText (system: unknown): string {
  if (typeof system === 'string') return system
  const parts: string[] = []
  arr(system, 'system').forEach((block, i) => {
    const b = obj(block, `system[${i}]`)
    if (b.type !== 'text') refuse(`system[${i}].type`, `'${String(b.type)}' cannot be carried: a Chat system message takes text`)
    parts.push(str(b.text, `system[${i}].text`))
  })
  return parts.join('\n\n')
}

function imagePart (block: Json, field: string): Json {
  const source = obj(block.source, `${field}.source`)
  if (source.type === 'base64') {
    return { type: 'image_url', image_url: { url: `data:${str(source.media_type, `${field}.source.media_type`)};base64,${str(source.data, `${field}.source.data`)}` } }
  }
  if (source.type === 'url') return { type: 'image_url', image_url: { url: str(source.url, `${field}.source.url`) } }
  refuse(`${field}.source.type`, `'${String(source.type)}' cannot be carried: images go as base64 or a URL`)
}

/**
 * A tool result's content as the text of a `tool` message. A Chat tool message takes text only:
 * its images go into `images`, for the user message that follows the tool messages.
 */
function toolResultText (block: Json, field: string, images: Json[]): string {
  let text: string
  const content = block.content
  if (content === undefined || content === null) text = ''
  else if (typeof content === 'string') text = content
  else {
    const texts: string[] = []
    arr(content, `${field}.content`).forEach((part, i) => {
      const f = `${field}.content[${i}]`
      const p = obj(part, f)
      if (p.type === 'text') texts.push(str(p.text, `${f}.text`))
      else if (p.type === 'image') images.push(imagePart(p, f))
      else refuse(`${f}.type`, `'${String(p.type)}' cannot be carried: a Chat tool message takes text (and images, in the next user message)`)
    })
    text = texts.join('\n')
  }
  // Chat has no error flag on a tool message: the model is told in the text itself
  return block.is_error === true ? `[tool error] ${text}` : text
}

/** A document block: plain text as text, a base64 PDF as a Chat `file` part. */
function documentPart (block: Json, field: string): Json {
  const source = obj(block.source, `${field}.source`)
  if (source.type === 'text') return { type: 'text', text: str(source.data, `${field}.source.data`) }
  if (source.type === 'base64' && source.media_type === 'application/pdf') {
    const name = typeof block.title === 'string' && block.title !== '' ? block.title : 'document.pdf'
    return { type: 'file', file: { filename: name, file_data: `data:application/pdf;base64,${str(source.data, `${field}.source.data`)}` } }
  }
  refuse(`${field}.source`, 'cannot be carried: documents go as text or a base64 PDF')
}

function userMessages (content: unknown, field: string, out: Json[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'user', content })
    return
  }
  const parts: Json[] = []
  arr(content, field).forEach((block, i) => {
    const f = `${field}[${i}]`
    const b = obj(block, f)
    switch (b.type) {
      case 'text': parts.push({ type: 'text', text: str(b.text, `${f}.text`) }); break
      case 'image': parts.push(imagePart(b, f)); break
      case 'document': parts.push(documentPart(b, f)); break
      // each result is its own tool message, before the user's text (Chat wants them right after the calls)
      case 'tool_result': out.push({ role: 'tool', tool_call_id: str(b.tool_use_id, `${f}.tool_use_id`), content: toolResultText(b, f, parts) }); break
      default: refuse(`${f}.type`, `'${String(b.type)}' cannot be carried to a Chat Completions upstream`)
    }
  })
  if (parts.length > 0) out.push({ role: 'user', content: parts })
}

function assistantMessage (content: unknown, field: string): Json {
  if (typeof content === 'string') return { role: 'assistant', content }
  let text = ''
  const calls: Json[] = []
  arr(content, field).forEach((block, i) => {
    const f = `${field}[${i}]`
    const b = obj(block, f)
    switch (b.type) {
      case 'text': text += str(b.text, `${f}.text`); break
      case 'tool_use':
        calls.push({ id: str(b.id, `${f}.id`), type: 'function', function: { name: str(b.name, `${f}.name`), arguments: JSON.stringify(b.input ?? {}) } })
        break
      // earlier turns' reasoning: Chat takes no reasoning as input (docs/translation.md)
      case 'thinking': case 'redacted_thinking': break
      default: refuse(`${f}.type`, `'${String(b.type)}' cannot be carried to a Chat Completions upstream`)
    }
  })
  const message: Json = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text }
  if (calls.length > 0) message.tool_calls = calls
  return message
}

function chatTools (tools: unknown): Json[] {
  return arr(tools, 'tools').map((tool, i) => {
    const t = obj(tool, `tools[${i}]`)
    if (given(t.type) && t.type !== 'custom') refuse(`tools[${i}].type`, `'${String(t.type)}' is an Anthropic server tool: only custom tools can be carried`)
    const fn: Json = { name: str(t.name, `tools[${i}].name`), parameters: t.input_schema ?? { type: 'object', properties: {} } }
    if (typeof t.description === 'string') fn.description = t.description
    return { type: 'function', function: fn }
  })
}

function toolChoice (choice: Json, chat: Json): void {
  switch (choice.type) {
    case 'auto': chat.tool_choice = 'auto'; break
    case 'any': chat.tool_choice = 'required'; break
    case 'none': chat.tool_choice = 'none'; break
    case 'tool': chat.tool_choice = { type: 'function', function: { name: str(choice.name, 'tool_choice.name') } }; break
    default: refuse('tool_choice.type', `'${String(choice.type)}' is not a tool choice`)
  }
  if (choice.disable_parallel_tool_use === true && chat.tools !== undefined) chat.parallel_tool_calls = false
}

export function messagesToChatRequest (body: Json, provider: Provider): Json {
  refuseUnknown(body, KNOWN, 'Chat Completions')
  const chat: Json = { model: body.model }
  const messages: Json[] = []
  if (given(body.system)) {
    const text = systemText(body.system)
    if (text !== '') messages.push({ role: 'system', content: text })
  }
  arr(body.messages, 'messages').forEach((message, i) => {
    const m = obj(message, `messages[${i}]`)
    if (m.role === 'user') userMessages(m.content, `messages[${i}].content`, messages)
    else if (m.role === 'assistant') messages.push(assistantMessage(m.content, `messages[${i}].content`))
    else refuse(`messages[${i}].role`, `'${String(m.role)}' is not a Messages role`)
  })
  chat.messages = messages
  // OpenAI's own models refuse max_tokens for reasoning models; compatible servers often know only max_tokens
  if (given(body.max_tokens)) chat[provider === 'openai-compatible' ? 'max_tokens' : 'max_completion_tokens'] = body.max_tokens
  copyGiven(body, chat, ['temperature', 'top_p'])
  if (given(body.stop_sequences)) chat.stop = arr(body.stop_sequences, 'stop_sequences')
  if (isObject(body.metadata) && typeof body.metadata.user_id === 'string') chat.user = body.metadata.user_id
  if (given(body.tools)) chat.tools = chatTools(body.tools)
  // `auto` or `none` without tools asks for nothing, and OpenAI refuses a choice without tools
  const choice = given(body.tool_choice) ? obj(body.tool_choice, 'tool_choice') : null
  if (choice !== null && (chat.tools !== undefined || (choice.type !== 'auto' && choice.type !== 'none'))) toolChoice(choice, chat)
  if (isObject(body.thinking) && body.thinking.type === 'enabled') chat.reasoning_effort = effortForBudget(tokens(body.thinking.budget_tokens))
  if (body.stream === true) {
    chat.stream = true
    // the closing message_delta carries usage: always asked for
    chat.stream_options = { include_usage: true }
  }
  return chat
}

/** What the answer's translation needs of the request. */
interface Asked {
  stopSequences: readonly string[]
  /** the model the client asked for: named where the upstream names none */
  model: unknown
}

/** The stop sequence that ended the answer, where the upstream says (vLLM's `stop_reason`, SGLang's `matched_stop`). */
function matchedStop (choice: Json, asked: Asked): string | null {
  const named = choice.stop_reason ?? choice.matched_stop
  return typeof named === 'string' && asked.stopSequences.includes(named) ? named : null
}

export function stopReason (finish: unknown, stopSequence: string | null): string {
  switch (finish) {
    case 'length': return 'max_tokens'
    case 'tool_calls': case 'function_call': return 'tool_use'
    case 'content_filter': return 'refusal'
    default: return stopSequence !== null ? 'stop_sequence' : 'end_turn'
  }
}

/** Chat usage → Anthropic's: `input_tokens` excludes what was read from the cache. */
function anthropicUsage (usage: unknown): Json {
  const u = isObject(usage) ? usage : {}
  const cached = isObject(u.prompt_tokens_details) ? tokens(u.prompt_tokens_details.cached_tokens) : 0
  return {
    input_tokens: Math.max(0, tokens(u.prompt_tokens) - cached),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: tokens(u.completion_tokens)
  }
}

function messageId (id: unknown): string {
  return `msg_${typeof id === 'string' && id !== '' ? id : 'gateway'}`
}

function reasoningOf (delta: Json): string {
  const r = delta.reasoning_content ?? delta.reasoning
  return typeof r === 'string' ? r : ''
}

function chatToMessage (body: unknown, asked: Asked): unknown {
  if (!isObject(body)) return body
  const choice = Array.isArray(body.choices) && isObject(body.choices[0]) ? body.choices[0] : {}
  const message = isObject(choice.message) ? choice.message : {}
  const content: Json[] = []
  const reasoning = reasoningOf(message)
  if (reasoning !== '') content.push({ type: 'thinking', thinking: reasoning, signature: '' })
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content })
  if (typeof message.refusal === 'string' && message.refusal !== '') content.push({ type: 'text', text: message.refusal })
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!isObject(call) || !isObject(call.function)) continue
      let input: unknown = {}
      try {
        input = JSON.parse(typeof call.function.arguments === 'string' && call.function.arguments !== '' ? call.function.arguments : '{}')
      } catch {
        input = {}
      }
      content.push({ type: 'tool_use', id: call.id, name: call.function.name, input })
    }
  }
  const stop = matchedStop(choice, asked)
  return {
    id: messageId(body.id),
    type: 'message',
    role: 'assistant',
    model: typeof body.model === 'string' && body.model !== '' ? body.model : asked.model,
    content,
    stop_reason: stopReason(choice.finish_reason, stop),
    stop_sequence: stop,
    usage: anthropicUsage(body.usage)
  }
}

type BlockKind = 'text' | 'thinking' | 'tool'

/** The error types Anthropic's SDK knows; an OpenAI type (`server_error`) is none of them. */
const ANTHROPIC_TYPES = new Set([
  'invalid_request_error', 'authentication_error', 'billing_error', 'permission_error', 'not_found_error',
  'request_too_large', 'rate_limit_error', 'api_error', 'timeout_error', 'overloaded_error'
])

/**
 * Chat chunks → Anthropic events. One block is open at a time: text, thinking, or one tool call
 * (each tool call is its own block with its own index). The end (`message_delta`, `message_stop`)
 * waits for `[DONE]` or the end of the body, since usage comes in a chunk after the finish reason.
 */
export class ChatToMessagesStream implements StreamTranslator {
  readonly #asked: Asked
  #started = false
  #finished = false
  #failed = false
  #open: BlockKind | null = null
  #nextIndex = 0
  /** Chat tool-call index → Anthropic block index */
  readonly #tools = new Map<number, number>()
  readonly #keys = new ToolCallKeys()
  #openTool = -1
  #finish: unknown = null
  #stop: string | null = null
  #usage: unknown = null

  constructor (asked: Asked) {
    this.#asked = asked
  }

  event (_name: string | undefined, data: unknown): string {
    if (this.#failed || this.#finished || !isObject(data)) return ''
    if (isObject(data.error) || data.type === 'error') return this.#fail(data)
    if (isObject(data.usage)) this.#usage = data.usage
    const choice = Array.isArray(data.choices) && isObject(data.choices[0]) ? data.choices[0] : null
    // a chunk without a choice (Azure's first, with its prompt filter results and an empty id and
    // model; the usage-only last one) starts nothing
    if (choice === null) return ''
    let out = this.#start(data)
    const delta = isObject(choice.delta) ? choice.delta : {}
    const reasoning = reasoningOf(delta)
    if (reasoning !== '') out += this.#delta('thinking', { type: 'thinking_delta', thinking: reasoning })
    if (typeof delta.content === 'string' && delta.content !== '') out += this.#delta('text', { type: 'text_delta', text: delta.content })
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call)) out += this.#toolCall(call)
    if (given(choice.finish_reason)) {
      this.#finish = choice.finish_reason
      this.#stop = matchedStop(choice, this.#asked)
      out += this.#close()
    }
    return out
  }

  done (): string {
    return this.#end()
  }

  end (): string {
    if (this.#failed || this.#finished) return ''
    if (this.#finish === null) return this.#fail({ error: { message: 'The upstream stream ended before its last chunk' } })
    return this.#end()
  }

  #start (data: Json): string {
    if (this.#started) return ''
    this.#started = true
    const message = {
      id: messageId(data.id),
      type: 'message',
      role: 'assistant',
      model: typeof data.model === 'string' && data.model !== '' ? data.model : this.#asked.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 }
    }
    return namedEvent('message_start', { type: 'message_start', message }) + namedEvent('ping', { type: 'ping' })
  }

  /** A delta of a text or thinking block, opening it first when another kind is open. */
  #delta (kind: 'text' | 'thinking', delta: Json): string {
    let out = ''
    if (this.#open !== kind) {
      out += this.#close()
      const block = kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' }
      out += namedEvent('content_block_start', { type: 'content_block_start', index: this.#nextIndex, content_block: block })
      this.#open = kind
    }
    return out + namedEvent('content_block_delta', { type: 'content_block_delta', index: this.#nextIndex, delta })
  }

  #toolCall (call: Json): string {
    const chatIndex = this.#keys.of(call)
    const fn = isObject(call.function) ? call.function : {}
    let out = ''
    let index = this.#tools.get(chatIndex)
    if (index === undefined) {
      out += this.#close()
      index = this.#nextIndex
      this.#tools.set(chatIndex, index)
      this.#open = 'tool'
      this.#openTool = chatIndex
      const block = { type: 'tool_use', id: typeof call.id === 'string' ? call.id : `toolu_${index}`, name: typeof fn.name === 'string' ? fn.name : '', input: {} }
      out += namedEvent('content_block_start', { type: 'content_block_start', index, content_block: block })
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      out += namedEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: fn.arguments } })
    }
    return out
  }

  #close (): string {
    if (this.#open === null) return ''
    const index = this.#open === 'tool' ? this.#tools.get(this.#openTool) ?? this.#nextIndex : this.#nextIndex
    this.#open = null
    this.#nextIndex = Math.max(this.#nextIndex, index) + 1
    return namedEvent('content_block_stop', { type: 'content_block_stop', index })
  }

  #end (): string {
    if (this.#finished || this.#failed) return ''
    this.#finished = true
    const out = this.#start({}) + this.#close()
    const usage = anthropicUsage(this.#usage)
    return out +
      namedEvent('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason(this.#finish, this.#stop), stop_sequence: this.#stop }, usage }) +
      namedEvent('message_stop', { type: 'message_stop' })
  }

  #fail (data: Json): string {
    this.#failed = true
    const error = isObject(data.error) ? data.error : {}
    const type = typeof error.type === 'string' && ANTHROPIC_TYPES.has(error.type) ? error.type : error.type === 'requests' ? 'rate_limit_error' : 'api_error'
    const message = typeof error.message === 'string' ? error.message : 'The upstream stream failed'
    return namedEvent('error', { type: 'error', error: { type, message } })
  }
}

function translate (body: Json, provider: Provider): TranslatedRequest {
  const chat = messagesToChatRequest(body, provider)
  const asked: Asked = { stopSequences: Array.isArray(chat.stop) ? chat.stop.filter((s): s is string => typeof s === 'string') : [], model: body.model }
  const answer: AnswerTranslator = {
    json: (value) => chatToMessage(value, asked),
    stream: () => new ChatToMessagesStream(asked)
  }
  return { body: chat, answer }
}

export const messagesToChat: Direction = {
  client: 'messages',
  upstream: 'chat',
  upstreamPath: '/v1/chat/completions',
  usageDialect: 'openai',
  request: translate,
  error: anthropicError
}
