/**
 * Which upstream credential a request carries to its target: the one decision, used by the
 * routing check (a refusal before any body is read or any socket upgraded), the forwarder, the
 * realtime dial and the model list cache alike.
 *
 * A configured key goes only to the target it is configured for:
 * - a client's mapped `upstreamKey` to the targets it names (a bare key: the default target). A
 *   client with a mapping is refused (403) on any other target, an `X-Target-Host` host that is
 *   no configured target included: its own credential is its gateway key, which is no upstream's
 *   business either;
 * - a target's key pool (`keys`) and `headers` to that target only (they live on the target, and
 *   an `X-Target-Host` host that is no configured target has none), and never with an unknown
 *   caller let through by `auth.passThroughUnknown`: header values are secrets like keys;
 * - everyone else (no mapping, no pool, or such an unknown caller) passes the client's own
 *   credentials.
 */
import type { FastifyRequest } from 'fastify'
import type { ClientIdentity } from '../auth/client.js'
import type { UpstreamTarget } from '../upstream/target.js'
import type { KeyPool } from './key-pool.js'
import { UpstreamKeyScopeError } from './errors.js'

export type UpstreamCredential =
  | { kind: 'mapped', key: string }
  | { kind: 'pool', pool: KeyPool }
  | { kind: 'own' }
  /** a client whose mapped keys are all for other targets */
  | { kind: 'refused' }

const OWN: UpstreamCredential = Object.freeze({ kind: 'own' })
const REFUSED: UpstreamCredential = Object.freeze({ kind: 'refused' })

export function upstreamCredential (client: ClientIdentity | null, target: UpstreamTarget): UpstreamCredential {
  if (client?.passThrough === true) return OWN
  const mapped = client?.upstreamKeys
  if (mapped !== undefined) {
    // by name: an X-Target-Host host that is no configured target is named `x-target-host`, a
    // name no target may take, so no mapping ever names it
    const key = mapped.get(target.name)
    return key !== undefined ? { kind: 'mapped', key } : REFUSED
  }
  if (target.pool !== null && target.pool.size > 0) return { kind: 'pool', pool: target.pool }
  return OWN
}

/** The target's configured `headers` for this client: none for an unknown caller (its own credentials only). */
export function configuredHeadersFor (client: ClientIdentity | null, target: UpstreamTarget): Readonly<Record<string, string>> | null {
  return client?.passThrough === true ? null : target.headers
}

/** The request's credential for `target`; a 403 when its client's mapped keys are for other targets. */
export function requireCredential (request: FastifyRequest, target: UpstreamTarget): Exclude<UpstreamCredential, { kind: 'refused' }> {
  const credential = upstreamCredential(request.client, target)
  if (credential.kind === 'refused') {
    request.outcome.errorClass = 'upstream_key_not_for_target'
    throw new UpstreamKeyScopeError()
  }
  return credential
}

/**
 * What the upstream sees the request as, for keying caches without side effects: the mapped key,
 * the caller's own credentials (no upstream key), or the target's pool as a whole (all its keys
 * belong to one account, so they share one model list). Unlike upstreamKeyFor, picks no key.
 * Decided by src/routing/credentials.ts; a 403 for a client whose mapped keys are for other targets.
 */
export function upstreamIdentityFor (request: FastifyRequest, target: UpstreamTarget): { kind: 'key' | 'pool' | 'own', key: string | null } {
  const credential = requireCredential(request, target)
  if (credential.kind === 'mapped') return { kind: 'key', key: credential.key }
  return { kind: credential.kind, key: null }
}

/**
 * The key a request goes upstream with: the client's mapped key for this target, else the next
 * key of the target's pool, else none (the caller's own credentials pass; an unknown caller let
 * through by auth.passThroughUnknown never gets the gateway's key).
 */
export function upstreamKeyFor (request: FastifyRequest, target: UpstreamTarget): string | null {
  const credential = requireCredential(request, target)
  return credential.kind === 'mapped' ? credential.key : credential.kind === 'pool' ? credential.pool.pick().key : null
}

/**
 * Configured target headers replace the client's (for the clients that get them:
 * configuredHeadersFor); provider defaults only fill what is missing.
 */
export function addTargetHeaders (headers: Record<string, string | string[]>, target: UpstreamTarget, client: ClientIdentity | null): void {
  const configured = configuredHeadersFor(client, target)
  if (configured !== null) Object.assign(headers, configured)
  if (target.defaultHeaders !== null) {
    for (const name in target.defaultHeaders) if (headers[name] === undefined) headers[name] = target.defaultHeaders[name]
  }
}
