/**
 * Failover. Across the deployments of a model group (`DeploymentFailover`, docs/fallback.md), and
 * across the keys of one target's pool.
 *
 * Key failover for one request: on an upstream 429, or a connection that failed before the
 * upstream answered, the request is sent once more with the next key of the target's pool. Only
 * then: nothing has reached the client yet, so a stream can be retried too. Never a second retry,
 * never for other statuses, and never when the body was streamed from the client (it is gone).
 * A 401 sets the key aside for the pool's cool-down; logs name keys, never show them.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import { credentialHeaders } from '../proxy/headers.js'
import type { KeyPool, PoolKey } from './key-pool.js'
import type { Deployment, ModelGroup, RetryRules } from './model-groups.js'
import { attemptOrder } from './deployment-picker.js'
import { attemptRequest, translationRefusal, type AttemptRequest } from '../upstream/attempt.js'
import { mayUse } from './require-target.js'
import { NoDeploymentError } from './errors.js'

/** Connection failures before any response: refused, reset, connect timeout. */
const RETRYABLE_FAILURES = new Set(['upstream_refused', 'upstream_reset', 'upstream_connect_timeout'])

export function isRetryableFailure (errorClass: string): boolean {
  return RETRYABLE_FAILURES.has(errorClass)
}

/** The next key after `failed`, with its credential written into the outgoing `headers`. */
export function switchKey (request: FastifyRequest, target: UpstreamTarget, pool: KeyPool, failed: PoolKey,
  headers: Record<string, string | string[]>, reason: string): PoolKey {
  const next = pool.pick(failed)
  Object.assign(headers, credentialHeaders(target.provider, next.key))
  request.outcome.keyName = next.name
  request.log.warn({ upstream: target.name, key: failed.name, nextKey: next.name, reason }, 'upstream key failed: retrying once on the next key')
  return next
}

/** A 401 sets the key aside; logged once per cool-down, by name. */
export function noteKeyRefused (request: FastifyRequest, target: UpstreamTarget, pool: KeyPool, key: PoolKey): void {
  if (pool.setAside(key)) {
    request.log.warn({ upstream: target.name, key: key.name, cooldownMs: pool.cooldownMs }, 'upstream refused a key (401): set aside')
  }
}

/** One attempt as the usage record lists it. */
export interface AttemptRecord {
  target: string
  model: string
  /** the upstream's status; absent when it never answered */
  status?: number
  /** why the attempt failed (a connection failure, a timeout, an error event), when it did */
  errorClass?: string
  durationMs: number
}

/** What a failed attempt was, in the terms of a group's `retryOn`. */
function retryKind (errorClass: string, status: number): keyof RetryRules | null {
  if (errorClass === 'upstream_stream_error') return 'errorEvent'
  if (status === 429) return 'tooMany'
  if (status >= 500) return 'serverError'
  if (errorClass.endsWith('_timeout')) return 'timeout'
  if (errorClass === 'upstream_refused' || errorClass === 'upstream_reset' || errorClass === 'upstream_dns') return 'connect'
  return null
}

/**
 * The attempts of one request to a model group: its deployments in the picker's order, skipping
 * those the client may not use (allowed targets, upstream credentials) or that cannot take the
 * request (src/upstream/attempt.ts), at most `maxAttempts`; each attempt recorded
 * (`request.outcome.attemptLog`) and reported to the deployments' health.
 */
export class DeploymentFailover {
  readonly #request: FastifyRequest
  #group: ModelGroup
  #order: readonly Deployment[]
  #index = 0
  #made = 0
  #current: Deployment | null = null
  #startedAt = 0
  /** the deployment whose answer went to the client, until its stream broke */
  #answered: Deployment | null = null
  /** a context-window fallback group was taken already (only once) */
  #widened = false

  constructor (request: FastifyRequest, group: ModelGroup) {
    this.#request = request
    this.#group = group
    this.#order = attemptOrder(group, group.health)
    request.outcome.attemptLog = []
  }

  get group (): ModelGroup {
    return this.#group
  }

  /**
   * The next attempt, or null when no deployment is left or `maxAttempts` were made;
   * `continuation`: the text a broken stream had sent, which the attempt continues
   */
  next (continuation: string | null = null): AttemptRequest | null {
    if (this.#made >= this.#group.maxAttempts) return null
    while (this.#index < this.#order.length) {
      const d = this.#order[this.#index++]
      if (!mayUse(this.#request, d.target)) continue
      const attempt = attemptRequest(this.#request, d, continuation)
      if (attempt === null) continue
      if (this.#made > 0) this.#group.health.events?.failover(this.#group.name)
      this.#made++
      this.#current = d
      this.#startedAt = performance.now()
      this.#group.health.started(d.id)
      return attempt
    }
    return null
  }

  /** The refusal when no deployment could take the request at all. */
  noneUsable (): Error {
    // a field no deployment's dialect can carry: that 400 says more than "none usable"
    const refusal = translationRefusal(this.#request)
    if (refusal !== null) return refusal
    this.#request.outcome.errorClass = 'no_usable_deployment'
    return new NoDeploymentError()
  }

  /** Whether a failure (a connection failure or timeout, or an answer with `status`) may go to the next deployment. */
  retryable (errorClass: string, status: number): boolean {
    const kind = retryKind(errorClass, status)
    return kind !== null && this.#group.retry[kind]
  }

  /**
   * The current attempt failed with `errorClass` (and `status` when the upstream answered): recorded,
   * counted towards its cooldown when it is a failure the group retries on.
   */
  failed (errorClass: string, status: number, retryAfter: number): void {
    const d = this.#current
    if (d === null) return
    this.#current = null
    this.#log(d, status, errorClass)
    const health = this.#group.health
    if (retryKind(errorClass, status) === null) {
      health.ended(d.id, d.target.name, errorClass)
      return
    }
    const until = health.failed(d.id, d.target.name, errorClass, this.#group, retryAfter)
    if (until > 0) this.#request.log.warn({ group: this.#group.name, deployment: d.id, until: new Date(until).toISOString() }, 'deployment cooling down: out of rotation')
  }

  /** The current attempt's answer (its headers arrived now) goes to the client: no next attempt (null). */
  answered (status: number): null {
    const d = this.#current
    if (d === null) return null
    this.#current = null
    this.#log(d, status, null)
    this.#answered = d
    // this attempt's own time to the first byte, not the request's (earlier attempts took theirs)
    this.#group.health.succeeded(d.id, d.target.name, performance.now() - this.#startedAt)
    return null
  }

  /**
   * The answer that went to the client broke midway (stream continuation): its record says so,
   * and it counts as a failure of its deployment.
   */
  brokeMidStream (errorClass: string): void {
    const d = this.#answered
    if (d === null) return
    this.#answered = null
    const entry = this.#request.outcome.attemptLog?.findLast(a => a.target === d.target.name && a.model === d.model)
    if (entry !== undefined) entry.errorClass = errorClass
    this.#group.health.failedLater(d.id, d.target.name, errorClass, this.#group, 0)
  }

  /** The client left during the current attempt. */
  abandoned (): void {
    const d = this.#current
    if (d === null) return
    this.#current = null
    this.#log(d, 0, 'client_abort')
    this.#group.health.ended(d.id, d.target.name, 'client_abort')
  }

  /** The upstream said the context is too long: the group's `contextWindowFallback` takes over (once). */
  widen (): boolean {
    const wider = this.#group.contextWindowFallback
    if (wider === null || this.#widened) return false
    this.#widened = true
    this.#request.log.info({ group: this.#group.name, next: wider.name }, 'context window exceeded: trying the context-window fallback group')
    this.#group = wider
    this.#order = attemptOrder(wider, wider.health)
    this.#index = 0
    this.#made = 0
    return true
  }

  /** Attempts made, the first included, and where the last went, on a refusal (an answer gets them in respond()). */
  headers (reply: FastifyReply, target: UpstreamTarget): void {
    reply.header('x-gateway-target', target.name)
    reply.header('x-gateway-attempts', String(this.#request.outcome.attemptLog?.length ?? 0))
  }

  #log (d: Deployment, status: number, errorClass: string | null): void {
    const entry: AttemptRecord = { target: d.target.name, model: d.model, durationMs: Math.round((performance.now() - this.#startedAt) * 10) / 10 }
    if (status !== 0) entry.status = status
    if (errorClass !== null) entry.errorClass = errorClass
    this.#request.outcome.attemptLog?.push(entry)
  }
}
