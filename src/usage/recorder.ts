/**
 * Turns a finished request into its usage record and sends the record everywhere it goes: stdout
 * (on the request's access line for HTTP requests; a `usage` line for realtime sessions), the usage file under BASE_PATH/logs, the totals store behind
 * `/admin/usage`, and the token counter of the metrics.
 *
 * The realtime relay, whose WebSocket sessions have no HTTP response to wait for, uses
 * `realtimeSession(request)`: feed it each parsed server event, call `end()` when the session
 * closes, and it writes one record for the session with the tokens of every `response.done`.
 */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { pathOnly } from '../logging.js'
import { cutShort } from '../proxy/outcome.js'
import { azureDeployment } from '../metrics/routes.js'
import type { UsageStore } from './store.js'
import { pricedAs, requestCost, type PriceLookup } from './cost.js'
import type { AttemptRecord } from '../routing/failover.js'
import { NO_TOKENS, addCounts, realtimeEventCounts, type TokenCounts } from './tokens.js'

/** One request, as written to stdout and the usage file (the time is added by the logger). */
export interface UsageRecord extends TokenCounts {
  requestId: string
  /** client key name (never the key); null when no client key identified the caller */
  client: string | null
  /** client address; left out in privacy mode */
  ip?: string
  target: string | null
  method: string
  /** path without the query string (keys can travel in queries) */
  path: string
  model: string | null
  stream: boolean
  status: number
  durationMs: number
  /** time to the upstream's response headers */
  ttfbMs: number | null
  /** upstream requests made (a retry on the pool's next key is a second); 0: none was made */
  attempts: number
  /** name of the pool key the answer came with (never the key); null when no pool key was used */
  upstreamKey: string | null
  /** a model group request: the model the last attempt asked its deployment for */
  upstreamModel?: string
  /**
   * a model group request that took more than one attempt: every attempt in order (target, model,
   * status or error class, duration); one attempt is the record's own target, upstreamModel, status
   */
  attemptLog?: AttemptRecord[]
  errorClass: string | null
  /** the client went away first: the tokens are those seen until then */
  aborted: boolean
  /** what the tokens cost in USD at the price table's rates; null when the model is not in the table */
  costUsd: number | null
}

export interface RecorderOptions {
  log: FastifyBaseLogger
  file: Logger | null
  store: UsageStore
  metrics: GatewayMetrics | null
  privacy: boolean
  prices: PriceLookup
}

function round (ms: number): number {
  return Math.round(ms * 10) / 10
}

export class UsageRecorder {
  readonly #opts: RecorderOptions

  constructor (opts: RecorderOptions) {
    this.#opts = opts
  }

  /** The record of an HTTP request that ended (aborted: its client went away first). */
  fromRequest (request: FastifyRequest, reply: FastifyReply, aborted: boolean): UsageRecord {
    const outcome = request.outcome
    const incomplete = aborted && cutShort(request, reply)
    const counts = request.outcome.usage?.counts() ?? NO_TOKENS
    return this.#build(request, {
      status: incomplete && !reply.raw.headersSent ? 499 : reply.statusCode,
      durationMs: reply.elapsedTime,
      ttfbMs: outcome.ttfbMs,
      stream: request.proxyBody?.wantsStream === true || request.outcome.usage?.streamed === true,
      errorClass: outcome.errorClass ?? (incomplete ? 'client_abort' : null),
      aborted: incomplete,
      counts
    })
  }

  #cost (request: FastifyRequest, counts: TokenCounts): number | null {
    const { model, provider } = pricedAs(request)
    return requestCost(this.#opts.prices, model, provider, counts)
  }

  #build (request: FastifyRequest, end: { status: number, durationMs: number, ttfbMs: number | null, stream: boolean, errorClass: string | null, aborted: boolean, counts: TokenCounts }): UsageRecord {
    const plan = request.upstream
    const c = end.counts
    const path = pathOnly(plan.apiPath)
    // an Azure-style call names its model by the deployment in its path, not always in its body
    const model = plan.model ?? azureDeployment(path)
    const record: UsageRecord = {
      requestId: request.id,
      client: request.client?.name ?? null,
      // the target that answered: a model group's deployment, not the group's first
      target: (request.outcome.target ?? plan.target)?.name ?? null,
      method: request.method,
      path,
      model,
      stream: end.stream,
      status: end.status,
      durationMs: round(end.durationMs),
      ttfbMs: end.ttfbMs === null ? null : round(end.ttfbMs),
      attempts: request.outcome.attempts,
      upstreamKey: request.outcome.keyName,
      promptTokens: c.promptTokens,
      completionTokens: c.completionTokens,
      totalTokens: c.totalTokens,
      cacheReadTokens: c.cacheReadTokens,
      cacheCreationTokens: c.cacheCreationTokens,
      reasoningTokens: c.reasoningTokens,
      cacheCreation1hTokens: c.cacheCreation1hTokens,
      audioInputTokens: c.audioInputTokens,
      audioOutputTokens: c.audioOutputTokens,
      errorClass: end.errorClass,
      aborted: end.aborted,
      costUsd: this.#cost(request, c)
    }
    if (!this.#opts.privacy) record.ip = request.ip
    const attemptLog = request.outcome.attemptLog
    if (attemptLog !== null && attemptLog.length > 0) {
      const last = attemptLog[attemptLog.length - 1]
      record.upstreamModel = last.model
      // (a nested list costs the log line a slow serialisation: only when it says more)
      if (attemptLog.length > 1 || last.errorClass !== undefined) record.attemptLog = attemptLog
    }
    return record
  }

  /**
   * Writes one record to every destination. Never throws into the request. `stdout: false` when
   * the record rides on the request's access line instead (`request.outcome.record`).
   */
  record (record: UsageRecord, stdout = true): void {
    const o = this.#opts
    try {
      if (stdout) o.log.info(record, 'usage')
      o.file?.info(record)
      o.store.add({
        time: Date.now(),
        client: record.client,
        model: record.model,
        target: record.target,
        counts: record,
        error: record.status >= 400 || record.errorClass !== null,
        costUsd: record.costUsd
      })
      if (record.totalTokens !== null || record.promptTokens !== null) o.metrics?.countTokens(record.client, record.model, record)
      o.metrics?.countCost(record.client, record.target, record.model, record.costUsd)
    } catch (err) {
      o.log.warn({ err, requestId: record.requestId }, 'usage record could not be written')
    }
  }

  /** Usage of one realtime WebSocket session; see the module comment. */
  realtimeSession (request: FastifyRequest): RealtimeUsage {
    return new RealtimeUsage(this, request)
  }

  /** @internal the record of a realtime session */
  sessionRecord (request: FastifyRequest, startedAt: number, counts: TokenCounts, end: { status: number, errorClass: string | null, aborted: boolean }): UsageRecord {
    return this.#build(request, {
      status: end.status,
      durationMs: performance.now() - startedAt,
      ttfbMs: request.outcome.ttfbMs,
      stream: true,
      errorClass: end.errorClass,
      aborted: end.aborted,
      counts
    })
  }
}

/**
 * Tokens of a realtime session: each `response.done` is a separate response, so their usages
 * add up (unlike the running totals inside one streamed response).
 */
export class RealtimeUsage {
  readonly #recorder: UsageRecorder
  readonly #request: FastifyRequest
  readonly #startedAt: number
  #counts: TokenCounts = NO_TOKENS
  #ended = false

  constructor (recorder: UsageRecorder, request: FastifyRequest) {
    this.#recorder = recorder
    this.#request = request
    this.#startedAt = request.outcome.startedAt
  }

  /** A parsed server event from the upstream; only `response.done` counts. */
  event (message: unknown): void {
    const counts = realtimeEventCounts(message)
    if (counts !== null) this.#counts = addCounts(this.#counts, counts)
  }

  /** Counts of responses already added up (the relay's session totals). */
  add (counts: TokenCounts): void {
    this.#counts = addCounts(this.#counts, counts)
  }

  get counts (): TokenCounts {
    return this.#counts
  }

  /** Writes the session's record once; later calls do nothing. */
  end (opts: { status?: number, errorClass?: string | null, aborted?: boolean } = {}): void {
    if (this.#ended) return
    this.#ended = true
    this.#recorder.record(this.#recorder.sessionRecord(this.#request, this.#startedAt, this.#counts, {
      status: opts.status ?? 101,
      errorClass: opts.errorClass ?? this.#request.outcome.errorClass,
      aborted: opts.aborted ?? false
    }))
  }
}
