import { requireJsonObject, requireModel, type Exchange } from './exchange.js'
import { pace } from './pacer.js'
import { SSE_HEADERS, sendJson } from './respond.js'
import { answerDeltas, answerText } from './text.js'
import { argumentPieces, forcedToolCalls, reasoningText, type MockToolCall } from './tools.js'

interface Tokens {
  input: number
  output: number
}

function messageId (ex: Exchange): string {
  return `msg_mock_${ex.record.id}`
}

function inputTokens (body: Record<string, unknown>): number {
  return Array.isArray(body.messages) ? body.messages.length * 10 : 0
}

function fullUsage (tokens: Tokens): object {
  return { input_tokens: tokens.input, output_tokens: tokens.output, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }
}

function sse (event: string, data: object): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/**
 * The closing message_delta events. Normally one, carrying the final
 * output_tokens. Cumulative mode sends several running totals (as Anthropic
 * may), so a consumer that adds them up instead of keeping the last one
 * over-counts.
 */
function messageDeltas (ex: Exchange, tokens: Tokens): string[] {
  const totals = ex.controls.cumulativeUsage
    ? [Math.ceil(tokens.output / 3), Math.ceil((tokens.output * 2) / 3), tokens.output]
    : [tokens.output]
  return totals.map((output, i) => {
    const last = i === totals.length - 1
    const usage = ex.controls.cumulativeUsage ? { input_tokens: tokens.input, output_tokens: output } : { output_tokens: output }
    return sse('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: last ? 'end_turn' : null, stop_sequence: null },
      usage
    })
  })
}

/** All named SSE events of a streamed message, in Anthropic's order. */
function messageEvents (ex: Exchange, model: string, tokens: Tokens): string[] {
  const events = [
    sse('message_start', {
      type: 'message_start',
      message: {
        id: messageId(ex),
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: fullUsage({ input: tokens.input, output: 1 })
      }
    }),
    sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    sse('ping', { type: 'ping' })
  ]
  for (const text of answerDeltas(ex.controls)) {
    events.push(sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }))
  }
  events.push(sse('content_block_stop', { type: 'content_block_stop', index: 0 }))
  events.push(...messageDeltas(ex, tokens))
  events.push(sse('message_stop', { type: 'message_stop' }))
  return events
}

const SIGNATURE = 'mock-signature'

function richUsage (ex: Exchange, tokens: Tokens): object {
  return { input_tokens: tokens.input, output_tokens: tokens.output, cache_read_input_tokens: ex.controls.cachedTokens, cache_creation_input_tokens: 0 }
}

function toolStopReason (calls: MockToolCall[]): string {
  return calls.length > 0 ? 'tool_use' : 'end_turn'
}

/** A message with thinking, tool use or cached tokens: off the benchmark's hot path. */
function richMessage (ex: Exchange, model: string, tokens: Tokens, calls: MockToolCall[]): string {
  const content: object[] = []
  if (ex.controls.reasoning > 0) {
    content.push({ type: 'thinking', thinking: Array.from({ length: ex.controls.reasoning }, (_, i) => reasoningText(i)).join(''), signature: SIGNATURE })
  }
  if (calls.length === 0) content.push({ type: 'text', text: answerText(ex.controls) })
  for (const call of calls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: JSON.parse(call.arguments) })
  return JSON.stringify({
    id: messageId(ex), type: 'message', role: 'assistant', model, content, stop_reason: toolStopReason(calls), stop_sequence: null, usage: richUsage(ex, tokens)
  })
}

function richEvents (ex: Exchange, model: string, tokens: Tokens, calls: MockToolCall[]): string[] {
  const events = [sse('message_start', {
    type: 'message_start',
    message: { id: messageId(ex), type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: richUsage(ex, { input: tokens.input, output: 1 }) }
  })]
  let index = 0
  const block = (start: object, deltas: object[]): void => {
    events.push(sse('content_block_start', { type: 'content_block_start', index, content_block: start }))
    for (const delta of deltas) events.push(sse('content_block_delta', { type: 'content_block_delta', index, delta }))
    events.push(sse('content_block_stop', { type: 'content_block_stop', index }))
    index++
  }
  if (ex.controls.reasoning > 0) {
    const deltas: object[] = Array.from({ length: ex.controls.reasoning }, (_, i) => ({ type: 'thinking_delta', thinking: reasoningText(i) }))
    block({ type: 'thinking', thinking: '', signature: '' }, [...deltas, { type: 'signature_delta', signature: SIGNATURE }])
  }
  events.push(sse('ping', { type: 'ping' }))
  if (calls.length === 0) block({ type: 'text', text: '' }, answerDeltas(ex.controls).map(text => ({ type: 'text_delta', text })))
  for (const call of calls) {
    block({ type: 'tool_use', id: call.id, name: call.name, input: {} }, argumentPieces(call.arguments).map(partial => ({ type: 'input_json_delta', partial_json: partial })))
  }
  events.push(sse('message_delta', { type: 'message_delta', delta: { stop_reason: toolStopReason(calls), stop_sequence: null }, usage: { output_tokens: tokens.output } }))
  events.push(sse('message_stop', { type: 'message_stop' }))
  return events
}

/** POST /v1/messages */
export function messages (ex: Exchange): Promise<void> | undefined {
  const body = requireJsonObject(ex)
  if (body === undefined) return
  const model = requireModel(ex, body, 'model: Field required')
  if (model === undefined) return
  const tokens = { input: inputTokens(body), output: ex.controls.chunks }
  const calls = body.tools !== undefined ? forcedToolCalls(body, true) : []
  if (calls.length > 0 || ex.controls.reasoning > 0 || ex.controls.cachedTokens > 0) {
    if (body.stream !== true) {
      sendJson(ex, 200, richMessage(ex, model, tokens, calls))
      return
    }
    const events = richEvents(ex, model, tokens, calls)
    ex.res.writeHead(200, SSE_HEADERS)
    return pace(ex, events.length, (i) => events[i])
  }
  if (body.stream !== true) {
    sendJson(ex, 200, JSON.stringify({
      id: messageId(ex),
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text: answerText(ex.controls) }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: fullUsage(tokens)
    }))
    return
  }
  const events = messageEvents(ex, model, tokens)
  ex.res.writeHead(200, SSE_HEADERS)
  return pace(ex, events.length, (i) => events[i])
}

/** POST /v1/messages/count_tokens */
export function countTokens (ex: Exchange): void {
  const body = requireJsonObject(ex)
  if (body === undefined) return
  sendJson(ex, 200, JSON.stringify({ input_tokens: inputTokens(body) }))
}
