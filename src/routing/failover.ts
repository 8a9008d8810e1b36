/**
 * Key failover for one request: on an upstream 429, or a connection that failed before the
 * upstream answered, the request is sent once more with the next key of the target's pool. Only
 * then: nothing has reached the client yet, so a stream can be retried too. Never a second retry,
 * never for other statuses, and never when the body was streamed from the client (it is gone).
 * A 401 sets the key aside for the pool's cool-down; logs name keys, never show them.
 */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import { credentialHeaders } from '../proxy/headers.js'
import type { KeyPool, PoolKey } from './key-pool.js'

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
