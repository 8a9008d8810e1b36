/**
 * What happened to a request: the attempt and deliver phases' record (`request.outcome`), written
 * by the forwarder (and by whatever refused the request first), read once when the request
 * settles: the usage record, the access line, the metrics.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { StreamEndWatch } from '../lib/stream-end.js'
import type { ResponseUsage } from '../usage/stages.js'
import type { UpstreamTarget } from '../upstream/target.js'
import type { AttemptRecord } from '../routing/failover.js'

export interface Outcome {
  /** performance.now() when the request arrived */
  readonly startedAt: number
  /** the upstream's status (0: no upstream answered) */
  status: number
  /** upstream attempts made (a failover on another key is a second) */
  attempts: number
  /**
   * the target of the current (in the end: the last) attempt; for a model group, the deployment's,
   * which the response side reads (its dialect, its secrets); null before the first attempt
   */
  target: UpstreamTarget | null
  /** every attempt of a model group request, in order (target, model, status or error class, duration); null otherwise */
  attemptLog: AttemptRecord[] | null
  /** name of the pool key of the last attempt (never the key), for logs and metrics */
  keyName: string | null
  /** ms from the request's start to the first upstream byte */
  ttfbMs: number | null
  /** short machine-readable class of the failure, for logs and metrics */
  errorClass: string | null
  /**
   * For an event stream, what the client was sent of it: a client that closes once the stream's
   * last event reached it left a complete stream (src/lib/stream-end.ts), not an aborted one.
   */
  streamEnd: StreamEndWatch | null
  /** the tokens the answer reported, read on its way to the client (plugins/usage.ts) */
  usage: ResponseUsage | null
  /** the request's usage record (plugins/usage.ts), which its access line becomes */
  record: object | null
}

export function newOutcome (startedAt: number): Outcome {
  return { startedAt, status: 0, attempts: 0, target: null, attemptLog: null, keyName: null, ttfbMs: null, errorClass: null, streamEnd: null, usage: null, record: null }
}

/**
 * The response was cut short: it closed before it finished, and it is not an event stream whose
 * last event had reached the client (a client may close at `[DONE]` before the body's end).
 */
export function cutShort (request: FastifyRequest, reply: FastifyReply): boolean {
  return !reply.raw.writableFinished && request.outcome?.streamEnd?.complete !== true
}
