/**
 * One upstream exchange on undici's `dispatch()`, with our own handler instead of `request()`.
 *
 * `request()` wraps every response in a body Readable and needs an AbortSignal (an
 * AbortController per request) to be cancelled; the forwarder then pipes that Readable into the
 * client's response through Fastify's `reply.send(stream)` (two end-of-stream watchers and a pipe).
 * Here the handler hands each chunk straight to a sink: the client's response itself (the relay
 * in forward.ts), a Readable only where a Transform stage needs one, or nothing (a failover
 * retry discards the answer). On the Fastify floor the same proxy costs less this way, per
 * request and more so per stream, than with `request()` and a pipe (docs/performance.md, round 4).
 *
 * Events that arrive before a sink is attached (the body can follow the headers in the same
 * socket read, before the awaiting code runs) are queued and replayed on `attach()`.
 *
 * Nothing the upstream answers may throw out of these callbacks (they run inside undici's
 * socket handling): a sink that throws on a chunk fails this one exchange, as a `StreamFault`
 * handed to the sink's `error` (the forwarder ends the stream with an error event, or cuts a
 * plain body); a sink whose `error` throws too is reported to `onFault`, which ends the response.
 */
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'

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

/** A stage of the gateway failed on what the upstream sent; this exchange ends with it. */
export class StreamFault extends Error {
  readonly code = 'GW_STREAM_FAULT'

  constructor (cause: unknown) {
    super('a response stage failed on the upstream body', { cause })
    this.name = 'StreamFault'
  }
}

type Queued = { kind: 'data', chunk: Buffer } | { kind: 'end' } | { kind: 'error', err: Error }

export class UpstreamExchange implements Dispatcher.DispatchHandler {
  /** settles with the status and headers, or rejects with the failure before them */
  readonly answer: Promise<UpstreamAnswer>
  #resolve!: (answer: UpstreamAnswer) => void
  #reject!: (err: Error) => void
  #answered = false
  #controller: Dispatcher.DispatchController | null = null
  #abortWanted = false
  #sink: ExchangeSink | null = null
  #queue: Queued[] | null = null
  #done = false
  /** a sink failed: nothing more is delivered */
  #failed = false
  readonly #onFault: (err: unknown) => void
  /** a wait for the body's first event (`firstEvent`), before any sink is attached */
  #peek: { resolve: (text: string) => void, reject: (err: Error) => void, max: number } | null = null

  /** `onFault`: the last resort when a sink's own `error` threw (log it, end the response) */
  constructor (onFault: (err: unknown) => void = () => {}) {
    this.#onFault = onFault
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
    exchange.#answered = true
    if (body.length > 0) exchange.#take(body)
    exchange.#finish()
    return exchange
  }

  /** Cancels the exchange (the client went away); safe at any point, also before it connected. */
  abort (): void {
    if (this.#done) return
    if (this.#controller !== null) this.#controller.abort(abortError())
    else this.#abortWanted = true
  }

  /** Continues a body paused by a sink's `false`. */
  resume (): void {
    this.#controller?.resume()
  }

  /**
   * The body's start up to its first blank line (an event stream's first event), or all of it when
   * it ends first or passes `max` bytes; rejects when the body fails first. Reads nothing away:
   * what arrived stays queued for the sink attached next. Only before a sink is attached.
   */
  firstEvent (max: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#peek = { resolve, reject, max }
      this.#checkPeek()
    })
  }

  #checkPeek (): void {
    const peek = this.#peek
    if (peek === null) return
    const queue = this.#queue ?? []
    // the usual case: the first chunk holds the whole first event; only it becomes text
    const first = queue[0]
    if (first?.kind === 'data') {
      const end = firstBoundary(first.chunk)
      if (end !== -1) {
        this.#peek = null
        peek.resolve(first.chunk.toString('latin1', 0, end))
        return
      }
    }
    let text = ''
    let ended = false
    let failure: Error | null = null
    for (const event of queue) {
      if (event.kind === 'data') text += event.chunk.toString('latin1')
      else if (event.kind === 'end') ended = true
      else failure = event.err
    }
    const boundary = text.search(/\r?\n\r?\n/)
    if (boundary !== -1) peek.resolve(text.slice(0, boundary))
    else if (failure !== null) peek.reject(failure)
    else if (ended || text.length >= peek.max) peek.resolve(text)
    else return
    this.#peek = null
  }

  /** Where the body goes from now on; what arrived already is handed over first. */
  attach (sink: ExchangeSink): void {
    this.#sink = sink
    const queue = this.#queue
    if (queue === null) return
    this.#queue = null
    // a full sink cannot pause what already arrived; it pauses the upstream at the next chunk
    for (const event of queue) {
      if (this.#failed) return
      if (event.kind === 'data') this.#data(sink, event.chunk)
      else if (event.kind === 'end') this.#end(sink)
      else this.#error(sink, event.err)
    }
  }

  #data (sink: ExchangeSink, chunk: Buffer): boolean {
    try {
      return sink.data(chunk)
    } catch (err) {
      this.#fail(sink, err)
      return false
    }
  }

  #end (sink: ExchangeSink): void {
    try {
      sink.end()
    } catch (err) {
      this.#fail(sink, err)
    }
  }

  #error (sink: ExchangeSink, err: Error): void {
    try {
      sink.error(err)
    } catch (thrown) {
      this.#onFault(thrown)
    }
  }

  /** A sink threw: the upstream is cancelled and the sink told once, with a StreamFault. */
  #fail (sink: ExchangeSink, cause: unknown): void {
    if (this.#failed) return
    this.#failed = true
    const fault = new StreamFault(cause)
    const done = this.#done
    this.#done = true
    this.#error(sink, fault)
    if (!done) this.#controller?.abort(fault)
  }

  /** A chunk to the sink, or to the queue until one is attached; false: the sink is full. */
  #take (chunk: Buffer): boolean {
    if (this.#failed) return false
    const sink = this.#sink
    if (sink === null) {
      (this.#queue ??= []).push({ kind: 'data', chunk })
      if (this.#peek !== null) this.#checkPeek()
      return true
    }
    return this.#data(sink, chunk)
  }

  #finish (): void {
    if (this.#failed) return
    this.#done = true
    if (this.#sink === null) {
      (this.#queue ??= []).push({ kind: 'end' })
      if (this.#peek !== null) this.#checkPeek()
    } else this.#end(this.#sink)
  }

  // ---- undici's handler interface ------------------------------------------------------------

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#abortWanted) controller.abort(abortError())
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // an informational answer (103 Early Hints, 102 Processing, 100 Continue): the final one follows
    if (statusCode < 200) return
    this.#answered = true
    this.#resolve({ statusCode, headers })
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#take(chunk) && !this.#failed) controller.pause()
  }

  onResponseEnd (): void {
    this.#finish()
  }

  onResponseError (_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#failed) return
    this.#done = true
    if (!this.#answered) {
      this.#answered = true
      this.#reject(err)
      return
    }
    if (this.#sink === null) {
      (this.#queue ??= []).push({ kind: 'error', err })
      if (this.#peek !== null) this.#checkPeek()
    } else this.#error(this.#sink, err)
  }
}

/** Where the first blank line in `chunk` starts (`\n\n` or `\n\r\n`), or -1. */
function firstBoundary (chunk: Buffer): number {
  const lf = chunk.indexOf('\n\n')
  const crlf = chunk.indexOf('\n\r\n')
  if (lf === -1) return crlf
  return crlf === -1 || lf < crlf ? lf : crlf
}

/** What a cancelled exchange fails with: the name the forwarder knows as "the client went away". */
function abortError (): Error {
  const err = new Error('the request was aborted')
  err.name = 'AbortError'
  return err
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
