/**
 * One realtime session: the client's socket (already accepted) relayed to and from an upstream
 * socket, message by message, in order, text and binary frames kept as they are.
 *
 * - Client messages that arrive before the upstream opened are queued, bounded in count (1008
 *   above) and bytes (1009 above), and flushed in order on open.
 * - The upstream has `openTimeoutMs` to open (then 1013); a refused or failed handshake closes the
 *   client with 1011 (1013 when the upstream said 429/503), the reason saying why.
 * - Backpressure: bytes handed to a socket and not yet flushed are counted per direction; above
 *   HIGH_WATER the sending side is paused until they drop below LOW_WATER.
 * - Close codes and reasons are relayed both ways, reserved codes lifted (close-codes.ts).
 * - Keepalive pings to both peers; a peer that did not answer the previous ping is dropped.
 *   Idle timeout and maximum session length close both sides with 1000 and a reason.
 * - No listener or timer of the relay throws into ws or the event loop (src/lib/guarded.ts): a
 *   throw ends this one session, the client told by a realtime `error` event (the shape the SDKs
 *   read) and a 1011 close, with one log line.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { WebSocket, type RawData } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { guarded, thrownSummary } from '../lib/guarded.js'
import { closeReason, liftCloseCode } from './close-codes.js'
import { UsageCounter } from './usage.js'
import type { ClosedBy, RelayResult } from './summary.js'
import type { TokenCounts } from '../usage/tokens.js'

export interface RelayLimits {
  openTimeoutMs: number
  /** 0 = no idle timeout */
  idleTimeoutMs: number
  /** 0 = unlimited */
  maxSessionMs: number
  /** 0 = no pings */
  keepaliveIntervalMs: number
  queueMaxMessages: number
  queueMaxBytes: number
}

export type { RelayResult }

export interface RelayOptions {
  limits: RelayLimits
  /** starts the upstream handshake (may throw on a malformed URL or header) */
  dial: () => WebSocket
  log: FastifyBaseLogger
  onDone: (result: RelayResult) => void
  /**
   * Budgets of the session (plugins/budgets.ts): each response's usage is charged when its
   * `response.done` arrives; false back: the budget is gone, and the session ends (no new
   * response can be made on it).
   */
  budget?: ((counts: TokenCounts) => Promise<boolean>) | null
}

const HIGH_WATER = 1024 * 1024
const LOW_WATER = 256 * 1024

interface Queued { data: Buffer, binary: boolean }
interface CloseDecision { code: number, reason: string, closedBy: ClosedBy }

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

/** What a `ws` protocol error on one side means as a close code and reason. */
function protocolError (err: Error, side: 'client' | 'upstream'): { code: number, reason: string } {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return { code: 1009, reason: `${side} message too big` }
  if (code === 'WS_ERR_INVALID_UTF8') return { code: 1007, reason: `${side} sent invalid UTF-8` }
  return { code: 1002, reason: `${side} protocol error` }
}

type Guard = <A extends unknown[]>(listener: (...args: A) => void) => (...args: A) => void

/** What the client is told when its budget ran out during the session, before its close. */
export function budgetGoneEvent (): string {
  return JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', code: 'budget_exceeded', message: 'Budget exceeded: no new response can be created on this session' } })
}

/** What the client is told when the relay itself failed: a realtime `error` event, as the SDKs read it. */
export function relayFailureEvent (): string {
  return JSON.stringify({
    type: 'error',
    event_id: `event_gw_${randomUUID().replaceAll('-', '')}`,
    error: { type: 'server_error', code: 'gateway_error', message: 'The gateway failed to relay this session', param: null, event_id: null }
  })
}

/**
 * Sends from one socket to the other and pauses the source while too many bytes wait in the
 * destination's buffers (a slow reader on one side must not grow the gateway's memory).
 */
class Pump {
  #pending = 0
  #paused = false
  readonly #from: () => WebSocket | null
  readonly #to: () => WebSocket | null
  readonly #guard: Guard

  constructor (from: () => WebSocket | null, to: () => WebSocket | null, guard: Guard) {
    this.#from = from
    this.#to = to
    this.#guard = guard
  }

  send (data: Buffer, binary: boolean): void {
    const to = this.#to()
    if (to === null || to.readyState !== WebSocket.OPEN) return
    const size = data.length
    this.#pending += size
    to.send(data, { binary }, this.#guard(() => {
      this.#pending -= size
      if (this.#paused && this.#pending <= LOW_WATER) {
        this.#paused = false
        this.#from()?.resume()
      }
    }))
    if (!this.#paused && this.#pending > HIGH_WATER) {
      this.#paused = true
      this.#from()?.pause()
    }
  }
}

export class RealtimeRelay {
  readonly #client: WebSocket
  readonly #opts: RelayOptions
  readonly #limits: RelayLimits
  readonly #startedAt = performance.now()
  readonly #usage = new UsageCounter()
  #upstream: WebSocket | null = null
  #opened = false
  /** client messages waiting for the upstream; null once flushed */
  #queue: Queued[] | null = []
  #queuedBytes = 0
  /** why the upstream never opened, for the client's close frame */
  #failure: { code: number, reason: string } | null = null
  /** a protocol error on the open upstream socket (ws then drops it) */
  #upstreamError: { code: number, reason: string } | null = null
  #end: CloseDecision | null = null
  #clientClosed = false
  #upstreamClosed = false
  #done = false
  #clientAlive = true
  #upstreamAlive = true
  readonly #counts = { messagesFromClient: 0, messagesToClient: 0, bytesFromClient: 0, bytesToClient: 0 }
  readonly #timers: NodeJS.Timeout[] = []
  #idleTimer: NodeJS.Timeout | null = null
  /** a listener threw: the session is being ended for it (logged once) */
  #faulted = false
  readonly #guard: Guard = (listener) => guarded(listener, (err) => this.#failed(err))
  readonly #toUpstream = new Pump(() => this.#client, () => this.#upstream, this.#guard)
  readonly #toClient = new Pump(() => this.#upstream, () => this.#client, this.#guard)

  constructor (client: WebSocket, opts: RelayOptions) {
    this.#client = client
    this.#opts = opts
    this.#limits = opts.limits
  }

  /** Wires both sockets; the client's listeners are attached before anything can be missed. */
  start (): void {
    const client = this.#client
    const guard = this.#guard
    client.on('message', guard((data: RawData, isBinary: boolean) => this.#fromClient(toBuffer(data), isBinary)))
    client.on('pong', guard(() => { this.#clientAlive = true }))
    client.on('error', guard((err: Error) => {
      const { code, reason } = protocolError(err, 'client')
      this.#decide(code, reason, 'gateway')
      this.#opts.log.debug({ err }, 'realtime client socket error')
    }))
    client.once('close', guard((code: number, reason: Buffer) => this.#onClientClose(code, reason.toString())))
    this.#startTimers()

    let upstream: WebSocket
    try {
      upstream = this.#opts.dial()
    } catch (err) {
      this.#opts.log.warn({ err }, 'realtime upstream dial failed')
      this.#closeClient(1011, 'upstream unreachable', 'gateway')
      return
    }
    this.#upstream = upstream
    upstream.on('open', guard(() => this.#onUpstreamOpen()))
    upstream.on('message', guard((data: RawData, isBinary: boolean) => this.#fromUpstream(toBuffer(data), isBinary)))
    upstream.on('pong', guard(() => { this.#upstreamAlive = true }))
    upstream.on('unexpected-response', guard((_req: unknown, res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      this.#failure ??= { code: status === 429 || status === 503 ? 1013 : 1011, reason: `upstream refused the connection (${status})` }
      res.resume()
      upstream.terminate()
    }))
    upstream.on('error', guard((err: Error) => {
      if (this.#opened) {
        this.#upstreamError ??= protocolError(err, 'upstream')
        this.#opts.log.debug({ err }, 'realtime upstream socket error')
        return
      }
      this.#failure ??= { code: 1011, reason: 'upstream unreachable' }
      this.#opts.log.warn({ cause: (err as NodeJS.ErrnoException).code ?? err.message }, 'realtime upstream did not open')
    }))
    upstream.once('close', guard((code: number, reason: Buffer) => this.#onUpstreamClose(code, reason.toString())))
  }

  /**
   * A listener or timer threw (a gateway fault): this session ends, the client told why by an
   * `error` event and a 1011 close; one log line. Both close listeners still run and finish it.
   */
  #failed (err: unknown): void {
    if (this.#faulted) return
    this.#faulted = true
    this.#opts.log.error({ cause: thrownSummary(err) }, 'realtime relay failed')
    this.#decide(1011, 'gateway error', 'gateway')
    const client = this.#client
    if (client.readyState === WebSocket.OPEN) client.send(relayFailureEvent())
    this.shutdown(1011, 'gateway error', 1011)
    // a session whose sockets had both closed already (the throw came from its close listener)
    this.#finish()
  }

  /** Closes both sides from the gateway (shutdown, limits); the client gets `code`. */
  shutdown (code: number, reason: string, upstreamCode = 1000): void {
    this.#closeClient(code, reason, 'gateway')
    this.#closeUpstream(upstreamCode, reason)
  }

  #startTimers (): void {
    const { openTimeoutMs, idleTimeoutMs, maxSessionMs, keepaliveIntervalMs } = this.#limits
    const guard = this.#guard
    this.#timers.push(setTimeout(guard(() => {
      if (this.#opened || this.#upstream === null) return
      this.#failure ??= { code: 1013, reason: `upstream did not open within ${openTimeoutMs} ms` }
      this.#upstream.terminate()
    }), openTimeoutMs))
    if (idleTimeoutMs > 0) {
      this.#idleTimer = setTimeout(guard(() => this.shutdown(1000, `session idle for ${idleTimeoutMs} ms`)), idleTimeoutMs)
      this.#timers.push(this.#idleTimer)
    }
    if (maxSessionMs > 0) {
      this.#timers.push(setTimeout(guard(() => this.shutdown(1000, 'maximum session length reached')), maxSessionMs))
    }
    if (keepaliveIntervalMs > 0) this.#timers.push(setInterval(guard(() => this.#keepalive()), keepaliveIntervalMs))
    for (const timer of this.#timers) timer.unref()
  }

  #keepalive (): void {
    const client = this.#client
    if (client.readyState === WebSocket.OPEN) {
      if (!this.#clientAlive) {
        this.#decide(1006, 'client did not answer ping', 'gateway')
        client.terminate()
        return
      }
      this.#clientAlive = false
      client.ping()
    }
    const upstream = this.#upstream
    if (upstream !== null && upstream.readyState === WebSocket.OPEN) {
      if (!this.#upstreamAlive) {
        this.#closeClient(1011, 'upstream did not answer ping', 'gateway')
        upstream.terminate()
        return
      }
      this.#upstreamAlive = false
      upstream.ping()
    }
  }

  #touch (): void {
    this.#idleTimer?.refresh()
  }

  #fromClient (data: Buffer, binary: boolean): void {
    this.#counts.messagesFromClient++
    this.#counts.bytesFromClient += data.length
    this.#clientAlive = true
    this.#touch()
    if (this.#opened) {
      this.#toUpstream.send(data, binary)
      return
    }
    const queue = this.#queue
    if (queue === null || this.#end !== null) return // upstream gone or session ending: dropped
    queue.push({ data, binary })
    this.#queuedBytes += data.length
    if (queue.length > this.#limits.queueMaxMessages) {
      this.shutdown(1008, `more than ${this.#limits.queueMaxMessages} messages before the upstream opened`)
    } else if (this.#queuedBytes > this.#limits.queueMaxBytes) {
      this.shutdown(1009, `more than ${this.#limits.queueMaxBytes} bytes before the upstream opened`)
    }
  }

  #fromUpstream (data: Buffer, binary: boolean): void {
    this.#counts.messagesToClient++
    this.#counts.bytesToClient += data.length
    this.#upstreamAlive = true
    this.#touch()
    const done = binary ? null : this.#usage.observe(data)
    this.#toClient.send(data, binary)
    if (done !== null && this.#opts.budget != null) this.#charge(this.#opts.budget, done)
  }

  #charge (budget: (counts: TokenCounts) => Promise<boolean>, counts: TokenCounts): void {
    budget(counts).then(this.#guard((left: boolean) => {
      if (left || this.#end !== null) return
      const client = this.#client
      if (client.readyState === WebSocket.OPEN) client.send(budgetGoneEvent())
      this.shutdown(1008, 'budget exceeded')
    }), (err: unknown) => this.#opts.log.warn({ cause: (err as Error)?.message }, 'realtime budget charge failed'))
  }

  #onUpstreamOpen (): void {
    this.#opened = true
    const queue = this.#queue ?? []
    this.#queue = null
    this.#queuedBytes = 0
    if (this.#client.readyState !== WebSocket.OPEN) {
      this.#closeUpstream(1001, 'client went away')
      return
    }
    for (const message of queue) this.#toUpstream.send(message.data, message.binary)
  }

  #onClientClose (code: number, reason: string): void {
    this.#clientClosed = true
    // a close the gateway decided (protocol error, limit, keepalive) is what the upstream hears
    const end = this.#decide(code, reason, 'client')
    this.#closeUpstream(liftCloseCode(end.code, 'to-upstream'), closeReason(end.reason, end.code === 1006 ? 'client went away' : ''))
    this.#finish()
  }

  #onUpstreamClose (code: number, reason: string): void {
    this.#upstreamClosed = true
    if (!this.#opened) {
      const failure = this.#failure ?? { code: 1011, reason: 'upstream unreachable' }
      this.#closeClient(failure.code, failure.reason, 'gateway')
    } else if (this.#upstreamError !== null && code === 1006) {
      // ws dropped the upstream for a protocol error (e.g. a message over maxPayload)
      this.#closeClient(this.#upstreamError.code, this.#upstreamError.reason, 'gateway')
    } else {
      this.#closeClient(liftCloseCode(code, 'to-client'), closeReason(reason, code === 1006 ? 'upstream connection lost' : ''), 'upstream')
    }
    this.#finish()
  }

  /** The first decision wins: it is what the session's log line reports. */
  #decide (code: number, reason: string, closedBy: ClosedBy): CloseDecision {
    this.#end ??= { code, reason, closedBy }
    return this.#end
  }

  #closeClient (code: number, reason: string, closedBy: ClosedBy): void {
    const client = this.#client
    if (client.readyState !== WebSocket.OPEN) return
    this.#decide(code, reason, closedBy)
    client.close(code, reason)
  }

  #closeUpstream (code: number, reason: string): void {
    const upstream = this.#upstream
    if (upstream === null) return
    if (upstream.readyState === WebSocket.CONNECTING) upstream.terminate()
    else if (upstream.readyState === WebSocket.OPEN) upstream.close(code, reason)
  }

  #finish (): void {
    if (this.#done || !this.#clientClosed || (this.#upstream !== null && !this.#upstreamClosed)) return
    this.#done = true
    for (const timer of this.#timers) clearTimeout(timer)
    const end = this.#end ?? { code: 1005, reason: '', closedBy: 'client' }
    this.#opts.onDone({
      upstreamOpened: this.#opened,
      ...this.#counts,
      closeCode: end.code,
      closeReason: end.reason,
      closedBy: end.closedBy,
      usage: this.#usage.usage
    })
  }

  get durationMs (): number {
    return performance.now() - this.#startedAt
  }
}
