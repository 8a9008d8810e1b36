/**
 * An upstream the gateway forwards to, as the routing and the forwarder see it: where it is, how
 * it is reached (dispatcher, proxy, pinned lookup), its keys and header rules. Built from the
 * config by plugins/upstreams.ts; plain data here so that src/ needs no plugin to name it.
 */
import type { LookupFunction } from 'node:net'
import type { Dispatcher } from 'undici'
import type { KeyPool } from '../routing/key-pool.js'
import type { AzureRouting, PathRewrite } from '../routing/paths.js'
import type { SecretFilter } from '../lib/secret-filter.js'
import type { Dialect } from '../translate/types.js'

export type Provider = 'openai' | 'anthropic' | 'azure' | 'openai-compatible'

export interface UpstreamTarget {
  name: string
  /** scheme://host[:port] */
  origin: string
  /** host[:port] as written in URLs, lower-case (what X-Target-Host is compared with) */
  authority: string
  /** path prefix from the configured URL, without trailing slash ('' for none) */
  basePath: string
  provider: Provider
  /** the API dialects it offers; a client speaking another is translated (src/translate/) */
  dialects: readonly Dialect[]
  /** upstream keys; empty → client credentials pass through */
  keys: string[]
  /** the same keys as a pool (round robin, weights, 401 cool-down); null when there are none */
  pool: KeyPool | null
  /** configured extra request headers; they replace the client's of the same name */
  headers: Record<string, string> | null
  /** provider defaults, sent only when the client did not send the header */
  defaultHeaders: Record<string, string> | null
  rewrites: readonly PathRewrite[] | null
  azure: AzureRouting | null
  /** Host prefixes that select this target (seed 002's `openai.api.`) */
  hostPrefixes: readonly string[]
  dispatcher: Dispatcher
  /** the outbound proxy this target is reached through, null = direct */
  proxyUrl: string | null
  /**
   * The DNS lookup every connection to this target must use (the pinned, SSRF-checked lookup of a
   * checked `X-Target-Host` host), also for the realtime dial; through a proxy the tunnel goes to
   * the address it returns; null = the system's (or the proxy's)
   */
  lookup: LookupFunction | null
  /** extra trusted CA file (PEM) for this target, '' for none: also used by the realtime dial */
  caFile: string
  firstByteTimeoutMs: number
  idleTimeoutMs: number
  /**
   * Every configured secret, removed from this target's answers (headers, error bodies) before a
   * client sees them (src/proxy/answer-check.ts); null when none is configured
   */
  secrets: SecretFilter | null
}

export interface Upstreams {
  /** the `upstream` section */
  default: UpstreamTarget
  /** every target by name, `default` first, in config order */
  byName: Map<string, UpstreamTarget>
  /**
   * A target for a host named by `X-Target-Host` that is no configured target: no keys (the
   * client's credentials pass through). `checked` hosts passed the SSRF check and are connected
   * through the pinned lookup; exact allowlist entries are trusted as configured.
   */
  forHost: (authority: string, checked: boolean) => UpstreamTarget
}
