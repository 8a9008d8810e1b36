/** The authenticated caller; `name` is what logs and metrics show, never the key itself. */
export interface ClientIdentity {
  name: string
  /**
   * upstream keys for this client by target name (key mapping), overriding those targets' own;
   * a client with a mapping reaches no other target (src/routing/credentials.ts)
   */
  upstreamKeys?: ReadonlyMap<string, string>
  /** target names this client may use; undefined → all */
  allowedTargets?: string[]
  /** model names this client may request (checked against the JSON `model` field); undefined → all */
  allowedModels?: string[]
  /** per-client rate limit overriding the global one */
  rateLimit?: { max: number, timeWindowMs: number }
  /** requests in flight at once, overriding rateLimit.maxConcurrent */
  maxConcurrent?: number
  /**
   * a caller with an unknown or missing key let through by `auth.passThroughUnknown`: its own
   * credentials go upstream, never a configured upstream key. Such callers share the name, not a
   * scope: limits and conversations are theirs per address or credential, as without auth
   */
  passThrough?: boolean
}

/**
 * The client key a request was authenticated with, or null for a caller without one: plain
 * pass-through mode, or an unknown caller let through by `auth.passThroughUnknown`. Those share
 * no key's scope; the rate limit and context ids scope them by address or credential instead.
 */
export function keyedClient (client: ClientIdentity | null): ClientIdentity | null {
  return client !== null && client.passThrough !== true ? client : null
}
