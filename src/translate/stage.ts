/**
 * The answer side of a translated request as one synchronous response stage (a `ChunkStage`):
 * an event stream through `SseEventSplitter` with one JSON parse per upstream event, handed to the
 * direction's stream translator; a JSON answer held (bounded) and translated once it ended; an
 * error answer of any status rewritten in the client's error shape.
 */
import type { ChunkStage } from '../proxy/chunk-stages.js'
import { SseEventSplitter, parseSseFields } from '../lib/sse-transform.js'
import type { AnswerTranslator, Direction, StreamTranslator } from './types.js'
import { KEEP_ALIVE } from './shared.js'

export interface StageLimits {
  maxJsonBytes: number
  maxEventSize: number
}

/** Events of the upstream's stream in, the client's SSE text out. */
export function streamStage (translator: StreamTranslator, maxEventSize: number): ChunkStage {
  let out = ''
  const take = (): string => {
    const text = out
    out = ''
    return text
  }
  const onData = (name: string | undefined, data: string | null): void => {
    if (data === null) return
    if (data === '[DONE]') {
      out += translator.done()
      return
    }
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return // not JSON: nothing a client of another dialect could read
    }
    out += translator.event(name, value)
  }
  // an event over the bound carries nothing a client of another dialect could read: it is not
  // passed on (up to its blank line). A comment between events (a keep-alive) is one in every
  // dialect: the client gets one, so a long wait stays alive on its side too
  let oversize = false
  const events = new SseEventSplitter({
    event: (lines, terminated) => {
      oversize = false
      if (!terminated) return
      const fields = parseSseFields(lines)
      onData(fields.event, fields.data)
    },
    dataLine: (data) => {
      oversize = false
      onData(undefined, data)
    },
    raw: (text) => {
      if (oversize) {
        if (text === '\n' || text === '\r\n' || text === '\r') oversize = false
        return
      }
      if (text.charCodeAt(0) === 58) out += KEEP_ALIVE
    },
    oversize: () => { oversize = true }
  }, maxEventSize)
  return {
    write (chunk) {
      events.write(chunk)
      return take()
    },
    end () {
      events.end()
      out += translator.end()
      return take()
    }
  }
}

/** A whole body, held up to `maxBytes`, then `finish(text)` (null when it was larger). */
function heldStage (maxBytes: number, finish: (text: string | null) => string): ChunkStage {
  let chunks: Buffer[] = []
  let size = 0
  return {
    write (chunk) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      size += buf.length
      if (size <= maxBytes) chunks.push(buf)
      else chunks = []
      return ''
    },
    end () {
      const text = size <= maxBytes ? Buffer.concat(chunks).toString('utf8') : null
      chunks = []
      return finish(text)
    }
  }
}

function parsed (text: string | null): unknown {
  if (text === null) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * The stage for one answer of a translated request; null for a 2xx answer that is neither JSON
 * nor an event stream (nothing to translate). `headers` are the upstream's, edited for the client.
 */
export function answerStage (
  direction: Direction,
  answer: AnswerTranslator,
  start: { statusCode: number, headers: Record<string, string | string[] | undefined>, isEventStream: boolean },
  limits: StageLimits
): ChunkStage | null {
  const { statusCode, headers } = start
  if (statusCode < 200 || statusCode >= 300) {
    headers['content-type'] = 'application/json'
    return heldStage(limits.maxJsonBytes, (text) => JSON.stringify(direction.error(statusCode, parsed(text))))
  }
  if (start.isEventStream) return streamStage(answer.stream(), limits.maxEventSize)
  const type = headers['content-type']
  if (typeof type !== 'string' || !type.toLowerCase().includes('json')) return null
  return heldStage(limits.maxJsonBytes, (text) => {
    const value = parsed(text)
    if (text === null || typeof value !== 'object' || value === null) {
      return JSON.stringify(direction.error(502, { error: { message: 'The upstream answer could not be translated' } }))
    }
    return JSON.stringify(answer.json(value))
  })
}
