/**
 * Per-request state shared by the gateway's plugins: who the client is, which upstream the
 * request goes to, the parsed JSON body, and the hooks that want to see the response. It is one
 * typed decorator (`request.gw`) instead of ad-hoc properties, so every plugin reads and writes
 * the same declared shape (STYLE.md §2.3).
 */
import fp from 'fastify-plugin'
import type { FastifyContextConfig, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Readable, Transform } from 'node:stream'
import type { UpstreamTarget } from './upstreams.js'
import type { RealtimeSessionHook } from '../src/realtime/summary.js'
import type { ChunkStage } from '../src/proxy/chunk-stages.js'
import type { StreamEndWatch } from '../src/lib/stream-end.js'

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

export interface ResponseStart {
  request: FastifyRequest
  /** headers are not sent yet: a stage that learns the final body length may still set it */
  reply: FastifyReply
  statusCode: number
  /** upstream response headers, lower-cased; a hook may edit them (e.g. drop content-length) */
  headers: Record<string, string | string[] | undefined>
  isEventStream: boolean
}

/**
 * Called once the upstream answered, before anything is sent to the client. Returns a stage to
 * insert between the upstream body and the client (a transform, a passive tap, or a synchronous
 * `ChunkStage` that the forwarder runs without a stream of its own), or null to leave the body
 * alone. With no hook returning a stage the body is piped untouched.
 */
export type ResponseHook = (start: ResponseStart) => Transform | ChunkStage | null

export interface GatewayState {
  startedAt: number
  client: ClientIdentity | null
  target: UpstreamTarget | null
  /** path (and query) to request from the target, relative to its base path */
  upstreamPath: string
  /** raw JSON request body as received; forwarded byte for byte unless `bodyChanged` */
  rawBody: Buffer | null
  json: Record<string, unknown> | null
  bodyChanged: boolean
  /**
   * Members to add to the top-level JSON object of `rawBody` (`"name":value`, comma-joined), when
   * nothing else changed the body: spliced in before its closing brace instead of serialising a
   * large body again. `json` has them too.
   */
  bodyAdditions: string | null
  /**
   * Streamed (unparsed) request body to send upstream instead of the raw socket, e.g. the counting
   * pass-through of plugins/upload-limits.ts; null → the socket is piped as is.
   */
  bodyStream: Readable | null
  /**
   * An upstream path chosen by the model, for a body whose model is a form field (a multipart
   * upload to an Azure deployment operation): the URL to map again once the field is read
   * (plugins/routing.ts sets it), and the field's value as the form streams in
   * (plugins/upload-limits.ts; the forwarder waits for it before it calls the upstream).
   */
  formModel: { url: string, value: Promise<string | null> | null } | null
  model: string | null
  stream: boolean
  responseHooks: ResponseHook[]
  /** called with the summary of a realtime (WebSocket) session when it closes */
  realtimeHooks: RealtimeSessionHook[]
  upstreamStatus: number
  /** name of the pool key the request went upstream with (never the key), for logs and metrics */
  upstreamKeyName: string | null
  /** ms from request start to the first upstream byte */
  ttfbMs: number | null
  /** short machine-readable class of the failure, for logs and metrics */
  errorClass: string | null
  /** the route's config (`public`, `admin`), read once: see routeConfigOf */
  route: FastifyContextConfig | null
  /** the matched route's URL pattern (undefined: no route matched), read with `route` */
  routeUrl: string | undefined
  /**
   * Fields another plugin adds to this request's access line (the usage record): one line per
   * request on stdout instead of one per plugin. Set before the line is written (onResponse, or
   * the 'close' of an abandoned response).
   */
  logFields: object | null
  /**
   * For an event stream, what the client was sent of it: a client that closes once the stream's
   * last event reached it left a complete stream (src/lib/stream-end.ts), not an aborted one.
   */
  streamEnd: StreamEndWatch | null
}

declare module 'fastify' {
  interface FastifyRequest {
    gw: GatewayState
  }
  interface FastifyContextConfig {
    /** public routes (health, ping) skip client authentication and rate limits */
    public?: boolean
  }
}

export function newState (): GatewayState {
  return {
    startedAt: performance.now(),
    client: null,
    target: null,
    upstreamPath: '',
    rawBody: null,
    json: null,
    bodyChanged: false,
    bodyAdditions: null,
    bodyStream: null,
    formModel: null,
    model: null,
    stream: false,
    responseHooks: [],
    realtimeHooks: [],
    upstreamStatus: 0,
    upstreamKeyName: null,
    ttfbMs: null,
    errorClass: null,
    route: null,
    routeUrl: undefined,
    logFields: null,
    streamEnd: null
  }
}

/**
 * The matched route's config. Fastify's `request.routeOptions` getter builds a fresh twelve-field
 * object on every read, and half a dozen hooks ask on every request: it is read once, in
 * initRequestState, and kept on `request.gw`.
 */
export function routeConfigOf (request: FastifyRequest): FastifyContextConfig | undefined {
  return request.gw?.route ?? request.routeOptions.config
}

/**
 * The client key a request was authenticated with, or null for a caller without one: plain
 * pass-through mode, or an unknown caller let through by `auth.passThroughUnknown`. Those share
 * no key's scope; the rate limit and context ids scope them by address or credential instead.
 */
export function keyedClient (request: FastifyRequest): ClientIdentity | null {
  const client = request.gw?.client ?? null
  return client !== null && client.passThrough !== true ? client : null
}

const requestState: FastifyPluginAsync = async (fastify) => {
  fastify.decorateRequest('gw', null as unknown as GatewayState)
  // callback form, not async: an async hook costs a promise and a microtask on every request
  fastify.addHook('onRequest', function initRequestState (request, _reply, done) {
    const gw = newState()
    const options = request.routeOptions
    gw.route = options.config ?? null
    gw.routeUrl = options.url
    request.gw = gw
    done()
  })
}

export default fp(requestState, { name: 'gateway-request-state', fastify: '5.x' })
