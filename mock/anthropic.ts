import { requireJsonObject, requireModel, type Exchange } from './exchange.js'
import { pace } from './pacer.js'
import { SSE_HEADERS, sendJson } from './respond.js'
import { answerDeltas, answerText } from './text.js'

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

/** POST /v1/messages */
export function messages (ex: Exchange): Promise<void> | undefined {
  const body = requireJsonObject(ex)
  if (body === undefined) return
  const model = requireModel(ex, body, 'model: Field required')
  if (model === undefined) return
  const tokens = { input: inputTokens(body), output: ex.controls.chunks }
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
