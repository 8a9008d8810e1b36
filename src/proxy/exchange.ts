/**
 * One upstream exchange on undici's `dispatch()`, with our own handler instead of `request()`.
 *
 * `request()` wraps every response in a body Readable and needs an AbortSignal (an
 * AbortController per request) to be cancelled; the forwarder then pipes that Readable into the
 * client's response through Fastify's `reply.send(stream)` (two end-of-stream watchers and a pipe).
 * Here the handler hands each chunk straight to a sink: the client's response itself (the relay
 * in forward.ts), a Readable only where a Transform stage needs one, or nothing (a failover
 * retry discards the answer). Measured on the Fastify floor, the same proxy costs 43 µs per
 * small request and 77 µs per 20-chunk stream this way, against 51 and 100 µs with `request()`
 * and a pipe (bench/RESULTS.md, round 4).
 *
 * Events that arrive before a sink is attached (the body can follow the headers in the same
 * socket read, before the awaiting code runs) are queued and replayed on `attach()`.
 */
import { Readable } from 'node:stream'
import { util, type Dispatcher } from 'undici'

export interface UpstreamAnswer {
  statusCode: number
  /** lower-cased names; repeated headers as arrays */
  headers: Record<string, string | string[] | undefined>
}

export interface ExchangeSink {
  /** a body chunk; false asks the upstream to pause until `exchange.resume()` */
  data: (chunk: Buffer) => boolean
  end: () => void
  /** the body failed after the headers (reset, stall, our own abort) */
  error: (err: Error) => void
}

type Queued = { kind: 'data', chunk: Buffer } | { kind: 'end' } | { kind: 'error', err: Error }

export class UpstreamExchange implements Dispatcher.DispatchHandler {
  /** settles with the status and headers, or rejects with the failure before them */
  readonly answer: Promise<UpstreamAnswer>
  #resolve!: (answer: UpstreamAnswer) => void
  #reject!: (err: Error) => void
  #answered = false
  #abort: ((err?: Error) => void) | null = null
  #abortWanted = false
  #resumeUpstream: (() => void) | null = null
  #sink: ExchangeSink | null = null
  #queue: Queued[] | null = null
  #done = false

  constructor () {
    this.answer = new Promise<UpstreamAnswer>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  /**
   * An exchange that already ended with `body`: an answer held and checked before it is relayed
   * (src/proxy/answer-check.ts) goes to the client the way every other answer does.
   */
  static replay (body: Buffer): UpstreamExchange {
    const exchange = new UpstreamExchange()
    if (body.length > 0) exchange.onData(body)
    exchange.onComplete()
    return exchange
  }

  /** Cancels the exchange (the client went away); safe at any point, also before it connected. */
  abort (): void {
    if (this.#done) return
    if (this.#abort !== null) this.#abort()
    else this.#abortWanted = true
  }

  /** Continues a body paused by a sink's `false`. */
  resume (): void {
    const resume = this.#resumeUpstream
    if (resume !== null) resume()
  }

  /** Where the body goes from now on; what arrived already is handed over first. */
  attach (sink: ExchangeSink): void {
    this.#sink = sink
    const queue = this.#queue
    if (queue === null) return
    this.#queue = null
    // a full sink cannot pause what already arrived; it pauses the upstream at the next chunk
    for (const event of queue) {
      if (event.kind === 'data') sink.data(event.chunk)
      else if (event.kind === 'end') sink.end()
      else sink.error(event.err)
    }
  }

  // ---- undici's handler interface (the classic one: no wrapper object per request) ----------

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
    if (this.#abortWanted) abort()
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.#resumeUpstream = resume
    this.#answered = true
    this.#resolve({ statusCode, headers: util.parseHeaders(rawHeaders) as Record<string, string | string[] | undefined> })
    return true
  }

  onData (chunk: Buffer): boolean {
    const sink = this.#sink
    if (sink === null) {
      (this.#queue ??= []).push({ kind: 'data', chunk })
      return true
    }
    return sink.data(chunk)
  }

  onComplete (): void {
    this.#done = true
    if (this.#sink === null) (this.#queue ??= []).push({ kind: 'end' })
    else this.#sink.end()
  }

  onError (err: Error): void {
    this.#done = true
    if (!this.#answered) {
      this.#answered = true
      this.#reject(err)
      return
    }
    if (this.#sink === null) (this.#queue ??= []).push({ kind: 'error', err })
    else this.#sink.error(err)
  }
}

/** A sink that throws the answer away (the failover retry does not read it). */
export const DISCARD: ExchangeSink = { data: () => true, end: () => {}, error: () => {} }

/**
 * The body as a Readable, for a chain with Transform stages (a decoder, a debug tap) and
 * Fastify's `reply.send(stream)`: backpressure through `resume()`, a failure as an 'error'
 * event, and destroying it aborts the exchange.
 */
export function bodyReadable (exchange: UpstreamExchange): Readable {
  const body = new Readable({
    read () { exchange.resume() },
    destroy (err, cb) {
      exchange.abort()
      cb(err)
    }
  })
  exchange.attach({
    data: (chunk) => body.push(chunk),
    end: () => { body.push(null) },
    error: (err) => { body.destroy(err) }
  })
  return body
}
