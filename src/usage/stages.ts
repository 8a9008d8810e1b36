/**
 * The stream stages that read token usage off a response on its way to the client:
 * - a passive tap on JSON bodies (each chunk goes on at once; a bounded copy is parsed at the end);
 * - a passive tap on event streams (`SseTap`): only events that mention `usage` are parsed;
 * - for OpenAI streams where the gateway asked for usage on the client's behalf, a rewriting
 *   stage (`SseRewriteStream`) that also takes the usage-only chunk and the `"usage": null`
 *   fields out again, so the client gets exactly the stream it asked for.
 * None of them holds a byte back from the client longer than the event it belongs to.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { DROP_EVENT, SseRewriteStream, SseTap, type SseEventRewriter, type SseTapEvent } from '../lib/sse-transform.js'
import { UsageAccumulator, isObject, type UsageDialect } from './tokens.js'

/** What the gateway knows about one response's usage; lives on `request.usage`. */
export class ResponseUsage extends UsageAccumulator {
  /** the gateway added `stream_options.include_usage`: the client must not see its results */
  hideStreamUsage = false
  /** the response was an event stream */
  streamed = false

  constructor (dialect: UsageDialect) {
    super(dialect)
    this.onEvent = this.onEvent.bind(this)
  }

  /** SseTap callback: parses only events that can carry usage. */
  onEvent (event: SseTapEvent): void {
    const data = event.data
    if (data === null || !data.includes('"usage"')) return
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return // not JSON (or cut off by the end of the stream): nothing to count
    }
    this.observe(value)
  }
}

/**
 * Takes usage the client did not ask for back out of an OpenAI chat stream: the usage-only chunk
 * (`choices: []`) is dropped, and `usage` is deleted from every other chunk (OpenAI sends
 * `"usage": null` on each; some compatible servers put the numbers on the last choice chunk).
 */
export function hiddenUsageRewriter (usage: ResponseUsage): SseEventRewriter {
  return {
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

export interface StageLimits {
  maxJsonBytes: number
  maxEventSize: number
}

export function eventStreamStage (usage: ResponseUsage, limits: StageLimits, onError: (err: unknown) => void): Transform {
  usage.streamed = true
  if (usage.hideStreamUsage) return new SseRewriteStream(hiddenUsageRewriter(usage), { maxEventSize: limits.maxEventSize, onError })
  return new SseTap(usage.onEvent, limits.maxEventSize)
}

/**
 * A passive tap on a JSON body: every chunk is passed on as it arrives; a copy of up to
 * `maxBytes` is parsed once the body has ended. A larger body is counted as having no usage.
 */
export class JsonUsageTap extends Transform {
  readonly #usage: UsageAccumulator
  readonly #max: number
  #chunks: Buffer[] = []
  #size = 0

  constructor (usage: UsageAccumulator, maxBytes: number) {
    super()
    this.#usage = usage
    this.#max = maxBytes
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#size <= this.#max) {
      this.#size += chunk.length
      if (this.#size <= this.#max) this.#chunks.push(chunk)
      else this.#chunks = []
    }
    cb(null, chunk)
  }

  override _flush (cb: TransformCallback): void {
    const chunks = this.#chunks
    this.#chunks = []
    if (chunks.length > 0 && this.#size <= this.#max) {
      try {
        this.#usage.observe(JSON.parse((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8')))
      } catch {
        // not JSON after all: no usage to count
      }
    }
    cb()
  }
}
