/**
 * Which request headers go upstream and which response headers come back.
 */
import type { FastifyReply } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Provider } from '../upstream/target.js'
import type { SecretFilter } from '../lib/secret-filter.js'

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones undici sets itself. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'expect', 'http2-settings'
])

/**
 * Headers that reveal the client's address. Removed so the upstream learns nothing about the
 * client (seed 000 promised this and still leaked the peer address); the gateway adds none.
 */
const CLIENT_ADDRESS = new Set([
  'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-server',
  'forwarded', 'x-real-ip', 'via', 'cf-connecting-ip', 'true-client-ip', 'x-client-ip',
  'fastly-client-ip', 'x-cluster-client-ip', 'x-original-forwarded-for', 'cf-ipcountry', 'cf-ray',
  'x-envoy-external-address', 'x-appengine-user-ip'
])

/** Every header a client may carry a key in; replaced by the upstream key when one is configured. */
export const CLIENT_CREDENTIALS = ['authorization', 'x-api-key', 'api-key']

/** Gateway control headers: meant for the gateway, never forwarded. */
const GATEWAY_CONTROL = new Set(['x-target-host'])

export interface UpstreamHeaderOptions {
  provider: Provider
  /** upstream key; null → the client's own credentials pass through */
  key: string | null
  requestId: string
  /** extra request headers that must not be forwarded (e.g. a custom client-auth header) */
  drop?: ReadonlySet<string>
  /** the client body changed, so content-length is recomputed by undici */
  contentLength?: number
}

export function upstreamRequestHeaders (incoming: IncomingHttpHeaders, opts: UpstreamHeaderOptions): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in incoming) {
    const value = incoming[name]
    if (value === undefined) continue
    if (HOP_BY_HOP.has(name) || CLIENT_ADDRESS.has(name) || GATEWAY_CONTROL.has(name)) continue
    if (opts.drop?.has(name) === true) continue
    if (opts.key !== null && CLIENT_CREDENTIALS.includes(name)) continue
    out[name] = value
  }
  // headers named in Connection are hop-by-hop for this request only
  const connection = incoming.connection
  if (typeof connection === 'string') for (const n of connection.toLowerCase().split(',')) delete out[n.trim()]
  if (opts.key !== null) Object.assign(out, credentialHeaders(opts.provider, opts.key))
  if (opts.contentLength !== undefined) out['content-length'] = String(opts.contentLength)
  else if (incoming['content-length'] !== undefined) out['content-length'] = incoming['content-length']
  out['x-request-id'] = opts.requestId
  return out
}

/** Provider decides the upstream auth header. */
export function credentialHeaders (provider: Provider, key: string): Record<string, string> {
  switch (provider) {
    case 'anthropic': return { 'x-api-key': key }
    case 'azure': return { 'api-key': key }
    default: return { authorization: `Bearer ${key}` }
  }
}

const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'trailer', 'upgrade'])

/**
 * Response headers to pass to the client; the upstream's request id is kept under its own name.
 * The upstream's CORS headers never pass: the gateway's policy (plugins/cors.ts) is the only one,
 * and with it off an upstream that answers every origin must not open the gateway to every page.
 * With `secrets`, no configured secret passes in any value (an upstream echoing the key it got).
 */
export function clientResponseHeaders (headers: Record<string, string | string[] | undefined>, secrets: SecretFilter | null = null): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    let value = headers[name]
    if (value === undefined || RESPONSE_DROP.has(name) || name.startsWith('access-control-')) continue
    if (secrets !== null) value = typeof value === 'string' ? secrets.redact(value) : value.map(v => secrets.redact(v))
    if (name === 'x-request-id') { out['x-upstream-request-id'] = value; continue }
    out[name] = value
  }
  return out
}

/**
 * Puts an upstream's response headers on the reply. The gateway's own headers (request id, CORS,
 * rate limits: set by hooks before the request was forwarded) have the last word over the
 * upstream's of the same name.
 */
export function addUpstreamHeaders (reply: FastifyReply, headers: Record<string, string | string[]>): void {
  for (const name in headers) if (!reply.hasHeader(name)) reply.header(name, headers[name])
}

/**
 * On an upstream's 429 its own limit headers (`x-ratelimit-*`, `retry-after`, `retry-after-ms`)
 * tell the client when to retry: the gateway's copies under those names are taken off the reply,
 * so the upstream's pass. The gateway's own limit stays under its own names
 * (`x-gateway-ratelimit-*`, plugins/rate-limit.ts).
 */
export function yieldLimitHeaders (reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) {
    if (name.startsWith('x-ratelimit-') || name === 'retry-after' || name === 'retry-after-ms') reply.removeHeader(name)
  }
}

export function isEventStream (contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream')
}
