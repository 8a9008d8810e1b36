/**
 * The per-request state the gateway's plugins share (`request.gw`, plugins/request-state.ts), and
 * the response hooks' view of an upstream answer: types only, so src/ can name them.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable, Transform } from 'node:stream'
import type { ClientIdentity } from '../auth/client.js'
import type { UpstreamTarget } from '../upstream/target.js'
import type { RealtimeSessionHook } from '../realtime/summary.js'
import type { ChunkStage } from './chunk-stages.js'
import type { StreamEndWatch } from '../lib/stream-end.js'

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
  /** the matched route's URL pattern (undefined: no route matched), read once per request */
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
