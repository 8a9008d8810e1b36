/**
 * Dialling the upstream realtime WebSocket: URL, headers and the `ws` client options.
 */
import type { Agent, ClientRequest, IncomingHttpHeaders } from 'node:http'
import type { LookupFunction, Socket } from 'node:net'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { WebSocket } from 'ws'
import type { UpstreamTarget } from '../upstream/target.js'
import type { ClientIdentity } from '../auth/client.js'
import { addTargetHeaders } from '../routing/credentials.js'
import { joinUpstreamPath } from '../routing/paths.js'
import { CLIENT_CREDENTIALS, credentialHeaders, upstreamRequestHeaders } from '../proxy/headers.js'

/**
 * Handshake headers the client's upgrade carries for the gateway only: `ws` writes its own
 * WebSocket handshake, and the browser's Origin means nothing to a server-to-server dial.
 */
const HANDSHAKE_HEADERS: ReadonlySet<string> = new Set([
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'origin'
])

export interface UpstreamCredentials {
  /** the upstream key (target key, or the client's mapped key) */
  key: string | null
  /**
   * No upstream key and no gateway client authentication: the client's own credentials are its
   * upstream credentials and pass through, as on HTTP routes. A browser client's sub-protocol key
   * is then sent as a header, never as a sub-protocol.
   */
  passThrough: boolean
  protocolKey: string | null
  /** who the client is: which of the target's configured headers it gets (configuredHeadersFor) */
  client: ClientIdentity | null
}

/** The target's URL with the scheme switched to ws(s) and the client's path and query kept. */
export function realtimeUrl (target: UpstreamTarget, pathAndQuery: string): string {
  const origin = target.origin.replace(/^http(s?):/i, (_m, s: string) => `ws${s}:`)
  return origin + joinUpstreamPath(target.basePath, pathAndQuery)
}

/**
 * The same header rules as HTTP requests (src/proxy/headers.ts: hop-by-hop and client-address
 * headers dropped, the upstream key replacing client credentials, OpenAI-Beta and the rest
 * passed), minus the handshake's own headers. A header the client did not send is simply not
 * sent (an `undefined` value makes ws throw).
 */
export function realtimeHeaders (incoming: IncomingHttpHeaders, target: UpstreamTarget, creds: UpstreamCredentials, requestId: string): Record<string, string | string[]> {
  const dropCredentials = creds.key === null && !creds.passThrough
  const drop = dropCredentials ? new Set([...HANDSHAKE_HEADERS, ...CLIENT_CREDENTIALS]) : HANDSHAKE_HEADERS
  const out = upstreamRequestHeaders(incoming, { provider: target.provider, key: creds.key, requestId, drop })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(out, target, creds.client)
  if (creds.passThrough && creds.protocolKey !== null && !CLIENT_CREDENTIALS.some(name => name in out)) {
    Object.assign(out, credentialHeaders(target.provider, creds.protocolKey))
  }
  return out
}

export interface DialOptions {
  url: string
  protocols: string[]
  headers: Record<string, string | string[]>
  maxPayload: number
  /** extra trusted CAs (root store included) for a self-signed upstream; undefined → the default store */
  ca?: string[]
  /**
   * The one place an outbound proxy plugs in: an http(s) Agent that tunnels the connection
   * (e.g. an HTTPS CONNECT proxy agent). undefined → direct connection.
   */
  agent?: Agent
  /** the target's DNS lookup (the pinned one of a checked X-Target-Host host); undefined → the system's */
  lookup?: LookupFunction
}

/** Starts the upstream handshake; TLS is verified (ws/https default), redirects are not followed. */
export function dialUpstream (opts: DialOptions): WebSocket {
  return new WebSocket(opts.url, opts.protocols, {
    headers: opts.headers,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
    followRedirects: false,
    rejectUnauthorized: true,
    ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
    ...(opts.agent !== undefined ? { agent: opts.agent } : {}),
    ...(opts.lookup !== undefined ? { lookup: opts.lookup } : {})
  })
}

/**
 * A CONNECT-tunnelling agent for a pinned host (a checked `X-Target-Host`): the tunnel goes to the
 * address `lookup` checked, never to the name, so the proxy does not resolve it; TLS still uses
 * the host's name (SNI and the certificate check). The HTTP side does the same through undici
 * (src/routing/outbound.ts).
 */
export class PinnedProxyAgent extends HttpsProxyAgent<string> {
  readonly #lookup: LookupFunction

  constructor (proxyUrl: string, lookup: LookupFunction) {
    super(proxyUrl, { keepAlive: false })
    this.#lookup = lookup
  }

  override async connect (req: ClientRequest, opts: Parameters<HttpsProxyAgent<string>['connect']>[1]): Promise<Socket> {
    const host = opts.host ?? ''
    const address = await new Promise<string>((resolve, reject) => {
      this.#lookup(host, {}, (err, found) => { if (err !== null) reject(err); else resolve(found as string) })
    })
    // https-proxy-agent takes the TLS name from `servername` (else from a non-IP host)
    const named = opts as typeof opts & { servername?: string }
    return await super.connect(req, { ...opts, host: address, servername: named.servername ?? host } as typeof opts)
  }
}
