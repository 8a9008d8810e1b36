/**
 * How the gateway reaches an upstream: directly, or through an outbound HTTP proxy.
 *
 * The choice is made once per target at boot from the config (never from process.env here):
 * a target's own `proxy` wins ("direct" = none), else `HTTPS_PROXY` / `HTTP_PROXY` unless
 * `NO_PROXY` matches the host, with the same NO_PROXY rules as undici's EnvHttpProxyAgent.
 * `proxyUrlFor` exposes the same decision to the realtime WebSocket relay for its upstream dial.
 *
 * Through a proxy, https upstreams are tunnelled with CONNECT and their TLS is verified end to
 * end (a proxy in the middle is no reason to trust any certificate); http upstreams use the
 * absolute-form request line, as curl does. A host that must be pinned (a checked `X-Target-Host`)
 * is tunnelled to the address our own lookup checked, not to its name, so the proxy never
 * resolves it.
 */
import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import type { LookupFunction } from 'node:net'
import { Agent, ProxyAgent, interceptors, type Dispatcher } from 'undici'

export interface OutboundSettings {
  httpProxy: string
  httpsProxy: string
  noProxy: string
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 }

/** NO_PROXY: comma or space separated `host`, `.domain`, `*.domain`, `host:port`, or `*` for all. */
export function noProxyMatches (noProxy: string, hostname: string, port: number): boolean {
  const host = hostname.toLowerCase()
  for (const raw of noProxy.split(/[,\s]/)) {
    if (raw === '') continue
    if (raw === '*') return true
    const m = /^(.+):(\d+)$/.exec(raw)
    const entryHost = (m !== null ? m[1] : raw).replace(/^\*?\./, '').toLowerCase()
    if (m !== null && Number(m[2]) !== port) continue
    if (host === entryHost || host.endsWith(`.${entryHost}`)) return true
  }
  return false
}

/**
 * The proxy URL an upstream at `url` is reached through, or null for a direct connection.
 * @param targetProxy the target's own setting: '' = the outbound rules, 'direct', or a proxy URL
 */
export function resolveProxy (url: string, targetProxy: string, outbound: OutboundSettings): string | null {
  if (targetProxy === 'direct') return null
  if (targetProxy !== '') return targetProxy
  const u = new URL(url)
  const port = Number(u.port) || DEFAULT_PORTS[u.protocol] || 0
  const hostname = u.hostname.replace(/^\[|\]$/g, '')
  if (outbound.noProxy !== '' && noProxyMatches(outbound.noProxy, hostname, port)) return null
  const proxy = u.protocol === 'https:' ? (outbound.httpsProxy || outbound.httpProxy) : outbound.httpProxy
  return proxy === '' ? null : proxy
}

export interface DispatcherOptions {
  caFile: string
  connectTimeoutMs: number
  connections: number
  /** proxy URL, or null to connect directly */
  proxyUrl: string | null
  /**
   * custom DNS lookup (the pinned, SSRF-checked lookup of X-Target-Host): for direct connections,
   * and through a proxy for `pinnedHost`, whose tunnel then goes to the address it returns
   */
  lookup?: LookupFunction
  /** through a proxy: the one https host this dispatcher reaches, tunnelled to `lookup`'s address */
  pinnedHost?: string
}

function trustedCa (caFile: string): string[] | undefined {
  return caFile !== '' ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined
}

/** A keep-alive dispatcher for one target; upstream TLS is always verified. */
export function createDispatcher (opts: DispatcherOptions): Dispatcher {
  const ca = trustedCa(opts.caFile)
  const tls = { rejectUnauthorized: true, timeout: opts.connectTimeoutMs, ...(ca !== undefined ? { ca } : {}) }
  if (opts.proxyUrl === null) {
    return new Agent({
      connections: opts.connections,
      keepAliveTimeout: 30_000,
      connect: { ...tls, ...(opts.lookup !== undefined ? { lookup: opts.lookup } : {}) }
    })
  }
  const pinned = opts.lookup !== undefined && opts.pinnedHost !== undefined
  const proxy = new ProxyAgent({
    uri: opts.proxyUrl,
    // absolute-form for http:// upstreams; https:// upstreams are always tunnelled with CONNECT
    proxyTunnel: false,
    connections: opts.connections,
    keepAliveTimeout: 30_000,
    // tunnelled to an address, the TLS name (SNI, certificate check) is still the host's
    requestTls: pinned ? { ...tls, servername: opts.pinnedHost } : tls,
    proxyTls: { timeout: opts.connectTimeoutMs }
  })
  if (!pinned) return proxy
  // undici's DNS interceptor puts the looked-up address in the origin (so in the CONNECT line)
  // and keeps the name in the Host header
  return proxy.compose(interceptors.dns({ lookup: interceptorLookup(opts.lookup as LookupFunction) }))
}

type InterceptorLookup = NonNullable<NonNullable<Parameters<typeof interceptors.dns>[0]>['lookup']>

/** Our net-style lookup (every address, checked) in the shape undici's DNS interceptor calls. */
function interceptorLookup (lookup: LookupFunction): InterceptorLookup {
  return (origin, _options, callback) => {
    lookup(origin.hostname, { all: true }, (err, addresses) => {
      if (err !== null) callback(err, [])
      // no TTL from a lookup: the interceptor keeps the checked addresses for its maxTTL (10 s)
      else callback(null, (addresses as unknown as Array<{ address: string, family: number }>).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4, ttl: 10_000 })))
    })
  }
}
