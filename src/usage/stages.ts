/**
 * Reading token usage off a response on its way to the client.
 *
 * Passive by default: a tap (a synchronous `ChunkStage`, the last one before the client) sees
 * each chunk exactly as the client gets it (after any rewriting or decoding stage) and never
 * delays, copies into the path, or changes a byte. JSON bodies are collected (bounded) and parsed
 * once they ended; event streams go through `SseEventSplitter` and only events that can carry
 * usage are parsed.
 *
 * One case rewrites: an OpenAI stream where the gateway asked for usage on the client's behalf.
 * There an `SseRewriter` stage takes the usage-only chunk and the `"usage": null` fields out
 * again, so the client gets exactly the stream it asked for, and records the usage it removed.
 */
import type { ChunkStage } from '../proxy/chunk-stages.js'
import { DROP_EVENT, SseEventSplitter, SseRewriter, parseSseFields, type SseEventRewriter, type SseLine } from '../lib/sse-transform.js'
import { UsageAccumulator, isObject, type UsageDialect } from './tokens.js'

export interface UsageLimits {
  maxJsonBytes: number
  maxEventSize: number
}

/**
 * True when the data text can hold a usage object: it names `usage`, and not only as
 * `"usage":null` (OpenAI sends that on every chunk of a stream with include_usage).
 */
export function mayCarryUsage (data: string): boolean {
  const at = usageKeyAt(data, 0)
  if (at === -1) return false
  let i = at + 7
  while (i < data.length && (data.charCodeAt(i) === 58 /* : */ || data.charCodeAt(i) === 32)) i++
  return data.charCodeAt(i) !== 110 /* n */ || usageKeyAt(data, at + 7) !== -1
}

/**
 * Where `"usage"` first occurs in `text` at or after `from`, or -1. Searched as `usage"` and the
 * quote before it checked: JSON is full of quotes, so a search led by one stops at nearly every
 * character, while a `u` is rare.
 */
export function usageKeyAt (text: string, from: number): number {
  for (let i = text.indexOf('usage"', from + 1); i !== -1; i = text.indexOf('usage"', i + 6)) {
    if (text.charCodeAt(i - 1) === 34 /* " */) return i - 1
  }
  return -1
}

/** What the gateway knows about one response's usage; lives on `request.outcome.usage`. */
export class ResponseUsage extends UsageAccumulator {
  /** the gateway added `stream_options.include_usage`: the client must not see its results */
  hideStreamUsage = false
  /** the response was an event stream */
  streamed = false

  /** Parses an event's data when it can carry usage. */
  onEventData (data: string | null): void {
    if (data === null || !mayCarryUsage(data)) return
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return // not JSON (or cut off by the end of the stream): nothing to count
    }
    this.observe(value)
  }

  /** A tap on an event stream (a `ChunkStage` that passes every chunk on as it is). */
  eventTap (maxEventSize: number): ChunkStage {
    this.streamed = true
    const events = new SseEventSplitter({
      event: (lines: SseLine[]) => this.onEventData(parseSseFields(lines).data),
      dataLine: (data: string) => this.onEventData(data),
      raw: () => {}
    }, maxEventSize)
    return {
      passive: true,
      write (chunk) {
        events.write(chunk)
        return chunk
      },
      end () {
        events.end()
        return ''
      }
    }
  }

  /** A tap on a JSON body: collected (up to `maxBytes`) and parsed once it ended; passed on as it is. */
  jsonTap (maxBytes: number): ChunkStage {
    let chunks: Buffer[] = []
    let size = 0
    return {
      passive: true,
      write (chunk) {
        if (size > maxBytes) return chunk
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
        size += buf.length
        if (size <= maxBytes) chunks.push(buf)
        else chunks = []
        return chunk
      },
      end: () => {
        if (chunks.length > 0) {
          try {
            this.observe(JSON.parse((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8')))
          } catch {
            // not JSON after all: no usage to count
          }
          chunks = []
        }
        return ''
      }
    }
  }
}

const USAGE_NULL = ',"usage":null}'

/**
 * Takes usage the client did not ask for back out of an OpenAI chat stream: the usage-only chunk
 * (`choices: []`) is dropped, and `usage` is deleted from every other chunk (OpenAI sends
 * `"usage": null` on each; some compatible servers put the numbers on the last choice chunk).
 * The common `…,"usage":null}` ending is cut without parsing.
 */
export function hiddenUsageRewriter (usage: ResponseUsage): SseEventRewriter {
  return {
    data (text) {
      if (text.endsWith(USAGE_NULL) && usageKeyAt(text, 0) === text.length - USAGE_NULL.length + 1) {
        return text.slice(0, -USAGE_NULL.length) + '}'
      }
      return undefined
    },
    event (value: unknown) {
      if (!isObject(value) || !('usage' in value)) return undefined
      const found = value.usage
      if (isObject(found)) usage.add(found)
      if (isObject(found) && Array.isArray(value.choices) && value.choices.length === 0) return DROP_EVENT
      delete value.usage
      return value
    }
  }
}

/** A synchronous stage (`ChunkStage`): the forwarder runs it in the stream's own hop. */
export function hiddenUsageStage (usage: ResponseUsage, limits: UsageLimits, onError: (err: unknown) => void): SseRewriter {
  usage.streamed = true
  return new SseRewriter(hiddenUsageRewriter(usage), { maxEventSize: limits.maxEventSize, onError })
}

export type { UsageDialect }
