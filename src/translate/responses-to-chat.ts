/**
 * Direction 3: a Responses API client (Codex, the OpenAI SDKs' `responses`) on a Chat Completions
 * upstream. Input items become chat messages (function calls and their outputs included), and
 * the answer comes back as a response object, or as the Responses API's typed events from
 * `response.created` through `response.completed` with usage. The gateway stores no responses:
 * `previous_response_id` is refused (docs/translation.md).
 */
import type { Provider } from '../upstream/target.js'
import { openAiError } from './errors.js'
import {
  type Json, ToolCallKeys, arr, given, isObject, namedEvent, obj, refuse, refuseUnknown, str, tokens
} from './shared.js'
import type { AnswerTranslator, Direction, StreamTranslator, TranslatedRequest } from './types.js'

const KNOWN = new Set([
  'model', 'input', 'instructions', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'max_output_tokens',
  'temperature', 'top_p', 'user', 'reasoning', 'stream', 'store', 'truncation', 'background', 'include', 'previous_response_id',
  'prompt_cache_key', 'safety_identifier', 'service_tier'
])

/** Members Chat Completions has under the same name and meaning. */
const SAME = ['temperature', 'top_p', 'user', 'parallel_tool_calls', 'prompt_cache_key', 'safety_identifier', 'service_tier']

/**
 * `include` values that ask only for output a Chat upstream never has: accepted, and nothing comes
 * back for them (Codex asks for encrypted reasoning on every request).
 */
const EMPTY_INCLUDES = new Set(['reasoning.encrypted_content'])

/** Members whose default asks for nothing: accepted at that value only. */
const NEUTRAL: Record<string, unknown> = { store: false, truncation: 'disabled', background: false }

function textPart (part: Json, field: string): Json {
  switch (part.type) {
    case 'input_text': case 'output_text': return { type: 'text', text: str(part.text, `${field}.text`) }
    case 'refusal': return { type: 'text', text: str(part.refusal, `${field}.refusal`) }
    case 'input_image':
      if (typeof part.image_url !== 'string') refuse(`${field}.image_url`, 'must be a URL (file ids cannot be carried to a Chat Completions upstream)')
      return { type: 'image_url', image_url: given(part.detail) ? { url: part.image_url, detail: part.detail } : { url: part.image_url } }
    default: refuse(`${field}.type`, `'${String(part.type)}' cannot be carried to a Chat Completions upstream`)
  }
}

function messageContent (content: unknown, field: string, textOnly: boolean): unknown {
  if (typeof content === 'string') return content
  const parts = arr(content, field).map((part, i) => textPart(obj(part, `${field}[${i}]`), `${field}[${i}]`))
  if (!textOnly) return parts
  return parts.map((p, i) => p.type === 'text' ? p.text : refuse(`${field}[${i}].type`, 'this role takes text')).join('')
}

/** The assistant message function calls join (Chat puts a turn's calls on one message). */
function assistantFor (messages: Json[]): Json {
  const last = messages.at(-1)
  if (last !== undefined && last.role === 'assistant') return last
  const message: Json = { role: 'assistant', content: null }
  messages.push(message)
  return message
}

function convertItem (item: Json, field: string, messages: Json[]): void {
  const type = item.type ?? 'message'
  switch (type) {
    case 'message': {
      const role = item.role
      if (role !== 'user' && role !== 'system' && role !== 'developer' && role !== 'assistant') refuse(`${field}.role`, `'${String(role)}' is not a message role`)
      messages.push({ role, content: messageContent(item.content, `${field}.content`, role !== 'user') })
      return
    }
    case 'function_call': {
      const message = assistantFor(messages)
      const calls = (message.tool_calls ??= []) as Json[]
      calls.push({ id: str(item.call_id, `${field}.call_id`), type: 'function', function: { name: str(item.name, `${field}.name`), arguments: str(item.arguments, `${field}.arguments`) } })
      return
    }
    case 'function_call_output': {
      const output = typeof item.output === 'string' ? item.output : messageContent(item.output, `${field}.output`, true)
      messages.push({ role: 'tool', tool_call_id: str(item.call_id, `${field}.call_id`), content: output })
      return
    }
    // earlier turns' reasoning: Chat takes no reasoning as input (docs/translation.md)
    case 'reasoning': return
    default: refuse(`${field}.type`, `'${String(type)}' cannot be carried to a Chat Completions upstream`)
  }
}

function chatTools (tools: unknown): Json[] {
  return arr(tools, 'tools').map((tool, i) => {
    const t = obj(tool, `tools[${i}]`)
    if (t.type !== 'function') refuse(`tools[${i}].type`, `'${String(t.type)}' is a hosted tool: only function tools can be carried to a Chat Completions upstream`)
    const fn: Json = { name: str(t.name, `tools[${i}].name`), parameters: t.parameters ?? { type: 'object', properties: {} } }
    if (typeof t.description === 'string') fn.description = t.description
    if (typeof t.strict === 'boolean') fn.strict = t.strict
    return { type: 'function', function: fn }
  })
}

function toolChoice (choice: unknown): unknown {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice
  const c = obj(choice, 'tool_choice')
  if (c.type !== 'function') refuse('tool_choice.type', `'${String(c.type)}' cannot be carried: only function choices can`)
  return { type: 'function', function: { name: str(c.name, 'tool_choice.name') } }
}

function responseFormat (text: Json, chat: Json): void {
  if (given(text.verbosity)) chat.verbosity = text.verbosity
  if (!given(text.format)) return
  const format = obj(text.format, 'text.format')
  switch (format.type) {
    case 'text': return
    case 'json_object': chat.response_format = { type: 'json_object' }; return
    case 'json_schema': {
      const schema: Json = { name: str(format.name, 'text.format.name'), schema: format.schema }
      if (typeof format.strict === 'boolean') schema.strict = format.strict
      if (typeof format.description === 'string') schema.description = format.description
      chat.response_format = { type: 'json_schema', json_schema: schema }
      return
    }
    default: refuse('text.format.type', `'${String(format.type)}' is not a text format`)
  }
}

export function responsesToChatRequest (body: Json, provider: Provider): Json {
  if (given(body.previous_response_id)) {
    refuse('previous_response_id', 'cannot be served: the gateway stores no responses and this model\'s Chat Completions upstream keeps no conversation; send the whole conversation in \'input\'')
  }
  refuseUnknown(body, KNOWN, 'Chat Completions')
  for (const name in NEUTRAL) {
    if (given(body[name]) && body[name] !== NEUTRAL[name]) refuse(name, `other than ${String(NEUTRAL[name])} cannot be served on a Chat Completions upstream`)
  }
  if (given(body.include)) {
    arr(body.include, 'include').forEach((value, i) => {
      if (typeof value !== 'string' || !EMPTY_INCLUDES.has(value)) refuse(`include[${i}]`, 'cannot be served on a Chat Completions upstream')
    })
  }
  const messages: Json[] = []
  if (given(body.instructions)) messages.push({ role: 'system', content: str(body.instructions, 'instructions') })
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input })
  else arr(body.input, 'input').forEach((item, i) => convertItem(obj(item, `input[${i}]`), `input[${i}]`, messages))
  const chat: Json = { model: body.model, messages }
  if (given(body.max_output_tokens)) chat[provider === 'openai-compatible' ? 'max_tokens' : 'max_completion_tokens'] = body.max_output_tokens
  for (const name of SAME) if (given(body[name])) chat[name] = body[name]
  if (given(body.tools)) chat.tools = chatTools(body.tools)
  if (given(body.tool_choice)) chat.tool_choice = toolChoice(body.tool_choice)
  if (given(body.text)) responseFormat(obj(body.text, 'text'), chat)
  // a reasoning summary is output the Chat API does not produce: none comes back (docs/translation.md)
  if (isObject(body.reasoning) && given(body.reasoning.effort)) chat.reasoning_effort = body.reasoning.effort
  if (body.stream === true) {
    chat.stream = true
    // response.completed carries usage: always asked for
    chat.stream_options = { include_usage: true }
  }
  return chat
}

/** The response object's members that echo the request. */
function echo (body: Json): Json {
  return {
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools : [],
    text: isObject(body.text) ? body.text : { format: { type: 'text' } },
    reasoning: { effort: isObject(body.reasoning) ? body.reasoning.effort ?? null : null, summary: null },
    previous_response_id: null,
    store: false,
    truncation: 'disabled',
    metadata: {}
  }
}

function responsesUsage (usage: unknown): Json | null {
  if (!isObject(usage)) return null
  const input = tokens(usage.prompt_tokens)
  const output = tokens(usage.completion_tokens)
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: isObject(usage.prompt_tokens_details) ? tokens(usage.prompt_tokens_details.cached_tokens) : 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: isObject(usage.completion_tokens_details) ? tokens(usage.completion_tokens_details.reasoning_tokens) : 0 },
    total_tokens: input + output
  }
}

/** Status and incomplete details from the finish reason. */
function ending (finish: unknown): { status: string, incomplete_details: Json | null } {
  if (finish === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } }
  if (finish === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } }
  return { status: 'completed', incomplete_details: null }
}

function messageItem (id: string, text: string, status: string): Json {
  return { id, type: 'message', status, role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] }
}

function reasoningItem (id: string, text: string): Json {
  return { id, type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text }] }
}

function callItem (callId: string, name: string, args: string, status: string): Json {
  return { id: `fc_${callId}`, type: 'function_call', status, call_id: callId, name, arguments: args }
}

function responseId (id: unknown): string {
  return `resp_${typeof id === 'string' ? id : 'gateway'}`
}

/** A whole chat completion → a response object, echoing the client's `request`. */
export function chatToResponse (body: unknown, request: Json): unknown {
  if (!isObject(body)) return body
  const id = typeof body.id === 'string' ? body.id : 'gateway'
  const choice = Array.isArray(body.choices) && isObject(body.choices[0]) ? body.choices[0] : {}
  const message = isObject(choice.message) ? choice.message : {}
  const output: Json[] = []
  const reasoning = message.reasoning_content ?? message.reasoning
  if (typeof reasoning === 'string' && reasoning !== '') output.push(reasoningItem(`rs_${id}`, reasoning))
  if (typeof message.content === 'string' && message.content !== '') output.push(messageItem(`msg_${id}`, message.content, 'completed'))
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!isObject(call) || !isObject(call.function)) continue
      output.push(callItem(String(call.id), String(call.function.name), typeof call.function.arguments === 'string' ? call.function.arguments : '{}', 'completed'))
    }
  }
  return {
    id: responseId(body.id),
    object: 'response',
    created_at: typeof body.created === 'number' ? body.created : Math.floor(Date.now() / 1000),
    ...ending(choice.finish_reason),
    error: null,
    model: body.model,
    output,
    ...echo(request),
    usage: responsesUsage(body.usage)
  }
}

interface OpenItem {
  kind: 'message' | 'reasoning' | 'call'
  id: string
  index: number
  text: string
  callId: string
  name: string
}

/** Chat chunks → the Responses API's typed events, each with its sequence number. */
export class ChatToResponsesStream implements StreamTranslator {
  readonly #request: Json
  #seq = 0
  #id = 'resp_gateway'
  #chatId = 'gateway'
  #model: unknown = null
  #created = Math.floor(Date.now() / 1000)
  #started = false
  #over = false
  #open: OpenItem | null = null
  readonly #calls = new Map<number, OpenItem>()
  readonly #keys = new ToolCallKeys()
  readonly #output: Json[] = []
  #finish: unknown = null
  #usage: unknown = null

  constructor (request: Json) {
    this.#request = request
  }

  event (_name: string | undefined, data: unknown): string {
    if (this.#over || !isObject(data)) return ''
    if (isObject(data.error) || data.type === 'error') return this.#fail(data)
    if (isObject(data.usage)) this.#usage = data.usage
    const choice = Array.isArray(data.choices) && isObject(data.choices[0]) ? data.choices[0] : null
    // a chunk without a choice (Azure's first, with an empty id and model; the usage-only last one) starts nothing
    if (choice === null) return ''
    let out = this.#start(data)
    const delta = isObject(choice.delta) ? choice.delta : {}
    const reasoning = delta.reasoning_content ?? delta.reasoning
    if (typeof reasoning === 'string' && reasoning !== '') out += this.#text('reasoning', reasoning)
    if (typeof delta.content === 'string' && delta.content !== '') out += this.#text('message', delta.content)
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call)) out += this.#toolCall(call)
    if (given(choice.finish_reason)) {
      this.#finish = choice.finish_reason
      out += this.#close()
    }
    return out
  }

  done (): string {
    return this.#complete()
  }

  end (): string {
    if (this.#over) return ''
    if (this.#finish === null) return this.#fail({ error: { message: 'The upstream stream ended before its last chunk' } })
    return this.#complete()
  }

  #emit (type: string, data: Json): string {
    return namedEvent(type, { type, sequence_number: this.#seq++, ...data })
  }

  #response (status: string, extra: Json): Json {
    return {
      id: this.#id,
      object: 'response',
      created_at: this.#created,
      status,
      incomplete_details: null,
      error: null,
      model: this.#model,
      output: this.#output,
      ...echo(this.#request),
      usage: null,
      ...extra
    }
  }

  #start (data: Json): string {
    if (this.#started) return ''
    this.#started = true
    if (typeof data.id === 'string' && data.id !== '') this.#chatId = data.id
    this.#id = responseId(this.#chatId)
    this.#model = typeof data.model === 'string' && data.model !== '' ? data.model : this.#request.model ?? null
    if (typeof data.created === 'number') this.#created = data.created
    const response = this.#response('in_progress', { output: [] })
    return this.#emit('response.created', { response }) + this.#emit('response.in_progress', { response })
  }

  /** A delta of the message's text or of the reasoning, opening that item first. */
  #text (kind: 'message' | 'reasoning', delta: string): string {
    let out = ''
    let item = this.#open
    if (item === null || item.kind !== kind) {
      out += this.#close()
      const index = this.#output.length
      const prefix = kind === 'message' ? 'msg' : 'rs'
      item = { kind, id: `${prefix}_${this.#chatId}_${index}`, index, text: '', callId: '', name: '' }
      this.#open = item
      if (kind === 'message') {
        out += this.#emit('response.output_item.added', { output_index: index, item: { id: item.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } })
        out += this.#emit('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } })
      } else {
        out += this.#emit('response.output_item.added', { output_index: index, item: { id: item.id, type: 'reasoning', summary: [] } })
        out += this.#emit('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'reasoning_text', text: '' } })
      }
    }
    item.text += delta
    const type = kind === 'message' ? 'response.output_text.delta' : 'response.reasoning_text.delta'
    return out + this.#emit(type, { item_id: item.id, output_index: item.index, content_index: 0, delta })
  }

  #toolCall (call: Json): string {
    const chatIndex = this.#keys.of(call)
    const fn = isObject(call.function) ? call.function : {}
    let out = ''
    let item = this.#calls.get(chatIndex)
    if (item === undefined) {
      out += this.#close()
      const index = this.#output.length
      const callId = typeof call.id === 'string' ? call.id : `call_${index}`
      item = { kind: 'call', id: `fc_${callId}`, index, text: '', callId, name: typeof fn.name === 'string' ? fn.name : '' }
      this.#calls.set(chatIndex, item)
      this.#open = item
      out += this.#emit('response.output_item.added', { output_index: index, item: callItem(callId, item.name, '', 'in_progress') })
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      item.text += fn.arguments
      out += this.#emit('response.function_call_arguments.delta', { item_id: item.id, output_index: item.index, delta: fn.arguments })
    }
    return out
  }

  #close (): string {
    const item = this.#open
    if (item === null) return ''
    this.#open = null
    let out = ''
    let done: Json
    if (item.kind === 'message') {
      const part = { type: 'output_text', text: item.text, annotations: [] }
      out += this.#emit('response.output_text.done', { item_id: item.id, output_index: item.index, content_index: 0, text: item.text })
      out += this.#emit('response.content_part.done', { item_id: item.id, output_index: item.index, content_index: 0, part })
      done = messageItem(item.id, item.text, 'completed')
    } else if (item.kind === 'reasoning') {
      out += this.#emit('response.reasoning_text.done', { item_id: item.id, output_index: item.index, content_index: 0, text: item.text })
      out += this.#emit('response.content_part.done', { item_id: item.id, output_index: item.index, content_index: 0, part: { type: 'reasoning_text', text: item.text } })
      done = reasoningItem(item.id, item.text)
    } else {
      out += this.#emit('response.function_call_arguments.done', { item_id: item.id, output_index: item.index, name: item.name, arguments: item.text })
      done = callItem(item.callId, item.name, item.text, 'completed')
    }
    this.#output.push(done)
    return out + this.#emit('response.output_item.done', { output_index: item.index, item: done })
  }

  #complete (): string {
    if (this.#over) return ''
    this.#over = true
    const out = this.#start({}) + this.#close()
    const end = ending(this.#finish)
    const response = this.#response(end.status, { incomplete_details: end.incomplete_details, usage: responsesUsage(this.#usage) })
    return out + this.#emit(end.status === 'completed' ? 'response.completed' : 'response.incomplete', { response })
  }

  #fail (data: Json): string {
    this.#over = true
    const error = isObject(data.error) ? data.error : {}
    const message = typeof error.message === 'string' ? error.message : 'The upstream stream failed'
    const out = this.#start({})
    return out +
      this.#emit('error', { code: 'server_error', message, param: null }) +
      this.#emit('response.failed', { response: this.#response('failed', { error: { code: 'server_error', message } }) })
  }
}

function translate (body: Json, provider: Provider): TranslatedRequest {
  const chat = responsesToChatRequest(body, provider)
  const answer: AnswerTranslator = {
    json: (value) => chatToResponse(value, body),
    stream: () => new ChatToResponsesStream(body)
  }
  return { body: chat, answer }
}

export const responsesToChat: Direction = {
  client: 'responses',
  upstream: 'chat',
  upstreamPath: '/v1/chat/completions',
  usageDialect: 'openai',
  request: translate,
  error: openAiError
}
