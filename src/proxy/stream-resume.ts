/**
 * Stream continuation (`modelGroups.<name>.streamResume`, docs/fallback.md): a streamed chat
 * completion that breaks after the client received part of it (a reset, an idle timeout, an
 * in-band error event) continues on the group's next deployment, which gets the same request with
 * the text received so far as an assistant message and an instruction to continue. What it repeats
 * of that text is cut, and its events join the same client stream: one answer, one usage chunk
 * (the attempts' usage summed), one `[DONE]`.
 *
 * `ResumingStream.out` is an exchange like any other for the deliver phase: the upstream events
 * are fed into it (pause, resume and abort reach whichever upstream is current), so every
 * response stage sees the one stream the client gets.
 *
 * Only OpenAI's chat completion stream is read (`data:` events with `choices[0].delta`). A stream
 * whose answer had started a tool call cannot be continued: it ends with the error event as without
 * continuation, and so does one whose group has no deployment left.
 */
import { StringDecoder } from 'node:string_decoder'
import type { FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { DISCARD, UpstreamExchange, type ExchangeSink, type UpstreamAnswer } from './exchange.js'
import { classifyUpstreamError } from './upstream-errors.js'
import { isEventStream } from './headers.js'
import type { DeploymentFailover } from '../routing/failover.js'
import type { AttemptRequest } from '../upstream/attempt.js'

/** Sends one continuation attempt (its headers, credential, timeouts) into `exchange`. */
export type Dispatch = (attempt: AttemptRequest, exchange: UpstreamExchange) => void

/** How much of a continuation's start is held to find what it repeats. */
const OVERLAP_WINDOW = 256
/** A shorter match is taken for a coincidence, not a repeat. */
const MIN_OVERLAP = 8

/** Whether this answer may be continued if it breaks: a `200` event stream of a chat completion asked for as a stream. */
export function mayResume (request: FastifyRequest, failover: DeploymentFailover, res: UpstreamAnswer): boolean {
  const json = request.proxyBody?.json
  // (a translated answer is another dialect's stream: no continuation joins it)
  return failover.group.streamResume && request.upstream.translation === null && res.statusCode === 200 && isEventStream(res.headers['content-type']) &&
    /^\/v1\/chat\/completions(?:\?|$)/.test(request.upstream.apiPath) && json?.stream === true &&
    (json.n === undefined || json.n === 1) && Array.isArray(json.messages)
}

/** The longest start of `next` (at least MIN_OVERLAP long) that `prev` ends with: what a continuation repeated. */
export function overlapLength (prev: string, next: string): number {
  for (let k = Math.min(prev.length, next.length); k >= MIN_OVERLAP; k--) {
    if (prev.endsWith(next.slice(0, k))) return k
  }
  return 0
}

type Usage = Record<string, unknown>

function addUsage (sum: Usage | null, usage: Usage): Usage {
  if (sum === null) return { ...usage }
  for (const [name, value] of Object.entries(usage)) {
    if (typeof value === 'number' && typeof sum[name] === 'number') sum[name] = (sum[name] as number) + value
    else if (sum[name] === undefined) sum[name] = value
  }
  return sum
}

interface ChunkJson {
  id?: unknown
  model?: unknown
  created?: unknown
  error?: unknown
  usage?: unknown
  choices?: Array<{ delta?: { content?: unknown, role?: unknown, tool_calls?: unknown }, finish_reason?: unknown }>
}

function dataOf (event: string): string | null {
  let data: string | null = null
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue
    const value = line.slice(line.charCodeAt(5) === 32 ? 6 : 5)
    data = data === null ? value : `${data}\n${value}`
  }
  return data
}

function parse (data: string): ChunkJson | null {
  try {
    const value: unknown = JSON.parse(data)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as ChunkJson : null
  } catch {
    return null
  }
}

export class ResumingStream {
  /** what the deliver phase reads */
  readonly out: UpstreamExchange
  readonly #request: FastifyRequest
  readonly #failover: DeploymentFailover
  readonly #dispatch: Dispatch
  #current: UpstreamExchange
  #decoder = new StringDecoder('utf8')
  #pending = ''
  /** the answer's text the client received */
  #text = ''
  #continuing = false
  /** a continuation's text held until what it repeats is known; null once decided */
  #held: string | null = null
  #usage: Usage | null = null
  #id: unknown = null
  #model: unknown = null
  #created: unknown = 0
  #tools = false
  #finished = false
  #ended = false
  #paused = false
  readonly #controller: Dispatcher.DispatchController

  constructor (request: FastifyRequest, failover: DeploymentFailover, first: UpstreamExchange, res: UpstreamAnswer, dispatch: Dispatch, onFault: (err: unknown) => void) {
    this.#request = request
    this.#failover = failover
    this.#dispatch = dispatch
    this.#current = first
    this.out = new UpstreamExchange(onFault)
    this.#controller = {
      aborted: false,
      paused: false,
      reason: null,
      abort: (reason: Error) => {
        this.#ended = true
        this.#current.abort()
        this.out.onResponseError(this.#controller, reason)
      },
      pause: () => { this.#paused = true },
      resume: () => {
        this.#paused = false
        this.#current.resume()
      }
    }
    this.out.onRequestStart(this.#controller)
    this.out.onResponseStart(this.#controller, res.statusCode, res.headers)
    first.attach(this.#sink(first))
  }

  #sink (exchange: UpstreamExchange): ExchangeSink {
    return {
      data: (chunk) => {
        if (exchange !== this.#current || this.#ended) return true
        this.#feed(this.#decoder.write(chunk))
        return !this.#paused
      },
      end: () => {
        if (exchange !== this.#current || this.#ended) return
        this.#feed(this.#decoder.end())
        if (this.#ended) return
        // a stream that ended before its last event broke too
        if (this.#finished) this.#finish()
        else this.#broke('upstream_reset', new Error('the upstream stream ended early'), null)
      },
      error: (err) => {
        if (exchange !== this.#current || this.#ended) return
        if (err.name === 'AbortError') {
          this.#ended = true
          this.out.onResponseError(this.#controller, err)
          return
        }
        this.#broke(classifyUpstreamError(err).errorClass, err, null)
      }
    }
  }

  #emit (text: string): void {
    if (text.length > 0 && !this.#ended) this.out.onResponseData(this.#controller, Buffer.from(text))
  }

  #feed (text: string): void {
    this.#pending += text
    for (;;) {
      if (this.#ended) return
      const match = /\r?\n\r?\n/.exec(this.#pending)
      if (match === null) return
      const event = this.#pending.slice(0, match.index + match[0].length)
      this.#pending = this.#pending.slice(match.index + match[0].length)
      this.#event(event)
    }
  }

  #event (event: string): void {
    const data = dataOf(event)
    if (data === null) {
      // a comment or a keep-alive: passed on as it came
      if (!this.#continuing) this.#emit(event)
      return
    }
    if (data.trim() === '[DONE]') {
      this.#finished = true
      this.#finish()
      return
    }
    const chunk = parse(data)
    if (chunk === null) {
      this.#emit(event)
      return
    }
    if (chunk.error !== undefined) {
      this.#broke('upstream_stream_error', null, event)
      return
    }
    if (chunk.usage != null && typeof chunk.usage === 'object' && (chunk.choices === undefined || chunk.choices.length === 0)) {
      // held: the one usage chunk, summed, goes out at the end
      this.#usage = addUsage(this.#usage, chunk.usage as Usage)
      return
    }
    const choice = chunk.choices?.[0]
    const content = typeof choice?.delta?.content === 'string' ? choice.delta.content : ''
    if (choice?.delta?.tool_calls !== undefined) this.#tools = true
    if (choice?.finish_reason != null) this.#finished = true
    if (chunk.usage != null && typeof chunk.usage === 'object') this.#usage = addUsage(this.#usage, chunk.usage as Usage)
    if (!this.#continuing) {
      this.#id ??= chunk.id
      this.#model ??= chunk.model
      if (this.#created === 0) this.#created = chunk.created ?? 0
      this.#text += content
      this.#emit(event)
      return
    }
    this.#continued(chunk, content, choice?.finish_reason != null)
  }

  /** A continuation's chunk: its repeat of the text cut, and named as the first stream's chunks are. */
  #continued (chunk: ChunkJson, content: string, finishing: boolean): void {
    let text = content
    if (this.#held !== null) {
      this.#held += content
      if (this.#held.length < OVERLAP_WINDOW && !finishing) return
      text = this.#release()
    }
    const choice = chunk.choices?.[0]
    // the continuation's opening role chunk: the client had the first one
    if (text === '' && !finishing && choice?.delta?.tool_calls === undefined) return
    const delta = { ...choice?.delta, content: text }
    delete delta.role
    this.#text += text
    this.#emit(`data: ${JSON.stringify({ ...chunk, id: this.#id, model: this.#model, created: this.#created, choices: [{ ...choice, delta }] })}\n\n`)
  }

  /** The held start of a continuation, without what it repeated. */
  #release (): string {
    const held = this.#held ?? ''
    this.#held = null
    return held.slice(overlapLength(this.#text, held))
  }

  #finish (): void {
    if (this.#ended) return
    if (this.#held !== null) {
      const rest = this.#release()
      if (rest !== '') this.#emitContent(rest)
    }
    if (this.#usage !== null) {
      this.#emit(`data: ${JSON.stringify({ id: this.#id, object: 'chat.completion.chunk', created: this.#created, model: this.#model, choices: [], usage: this.#usage })}\n\n`)
    }
    this.#emit('data: [DONE]\n\n')
    this.#ended = true
    this.out.onResponseEnd()
  }

  #emitContent (text: string): void {
    this.#text += text
    this.#emit(`data: ${JSON.stringify({ id: this.#id, object: 'chat.completion.chunk', created: this.#created, model: this.#model, choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`)
  }

  /**
   * The current upstream broke (`err`, or an in-band error `event`): the next deployment continues,
   * or the stream ends as it would have without continuation.
   */
  #broke (errorClass: string, err: Error | null, event: string | null): void {
    if (this.#finished) {
      this.#finish()
      return
    }
    this.#failover.brokeMidStream(errorClass)
    const next = this.#tools ? null : this.#failover.next(this.#text)
    if (next === null) {
      this.#giveUp(err, event)
      return
    }
    this.#request.log.warn({ group: this.#failover.group.name, errorClass, next: next.target.name, receivedChars: this.#text.length }, 'stream broke midway: continuing on the next deployment')
    this.#continuing = true
    this.#held = ''
    this.#pending = ''
    this.#decoder = new StringDecoder('utf8')
    const exchange = new UpstreamExchange()
    this.#current = exchange
    try {
      this.#dispatch(next, exchange)
    } catch (thrown) {
      this.#giveUp(thrown instanceof Error ? thrown : new Error('the continuation could not be sent'), null)
      return
    }
    exchange.answer.then((res) => {
      if (exchange !== this.#current || this.#ended) return
      if (res.statusCode !== 200 || !isEventStream(res.headers['content-type'])) {
        exchange.abort()
        exchange.attach(DISCARD)
        this.#failover.failed(res.statusCode === 429 ? 'upstream_429' : res.statusCode >= 500 ? 'upstream_5xx' : 'upstream_4xx', res.statusCode, 0)
        this.#broke('upstream_bad_response', new Error(`continuation answered ${res.statusCode}`), null)
        return
      }
      this.#failover.answered(200)
      exchange.attach(this.#sink(exchange))
    }, (failure: unknown) => {
      if (exchange !== this.#current || this.#ended) return
      const error = failure instanceof Error ? failure : new Error('continuation failed')
      const errorClassOf = classifyUpstreamError(error).errorClass
      this.#failover.failed(errorClassOf, 0, 0)
      this.#broke(errorClassOf, error, null)
    }).catch((thrown: unknown) => {
      // nothing an upstream answers may take the process down: the stream ends with its error
      this.#request.log.error({ err: thrown }, 'stream continuation failed')
      if (!this.#ended) this.#giveUp(new Error('the stream continuation failed'), null)
    })
  }

  /** No continuation: what the client has gets the ending it would have had (the error event). */
  #giveUp (err: Error | null, event: string | null): void {
    if (this.#held !== null) {
      const rest = this.#release()
      if (rest !== '') this.#emitContent(rest)
    }
    if (event !== null) this.#emit(event)
    this.#ended = true
    if (event !== null) this.out.onResponseEnd()
    else this.out.onResponseError(this.#controller, err ?? new Error('the upstream stream broke'))
  }
}
