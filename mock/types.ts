import type { IncomingMessage, ServerResponse } from 'node:http'

/** A file part of a multipart request, hashed while it streamed in. */
export interface MockFile {
  field: string
  filename: string
  mimeType: string
  bytes: number
  sha256: string
}

/** One HTTP request (or WebSocket upgrade) as the mock received it. */
export interface MockRequest {
  /** Sequential, starting at 1 for each mock. */
  id: number
  method: string
  /** Path plus query string, as sent. */
  url: string
  path: string
  /** Lower-cased header names; repeated headers are joined with ', '. */
  headers: Record<string, string>
  bodyBytes: number
  bodySha256: string
  /** UTF-8 body, only kept when it is at most 1 MiB and not multipart. */
  bodyText?: string
  /** Parsed body, when it was JSON. */
  json?: unknown
  files?: MockFile[]
  fields?: Record<string, string>
  /**
   * The exchange is over: the response was sent, or the connection carrying
   * it closed. A request the mock never answers (hang-before-headers) only
   * turns closed when the client drops the connection.
   */
  closed: boolean
}

/** Bookkeeping for one streamed or paced response. */
export interface MockStream {
  requestId: number
  chunksPlanned: number
  chunksSent: number
  /** The whole response was handed to the socket. */
  finished: boolean
  /** The client (or gateway) closed the connection before the end. */
  aborted: boolean
  /** performance.now() when the abort was noticed. */
  abortedAt?: number
  /** performance.now() of each chunk write. */
  chunkTimes: number[]
  /** Writes attempted after the abort; anything but 0 means the pacer failed to stop. */
  chunksAfterAbort: number
}

export interface MockWsConnection {
  path: string
  url: string
  headers: Record<string, string>
  /** Negotiated sub-protocol, '' when none. */
  protocol: string
  closeCode?: number
  closeReason?: string
  /** Messages received from the client. */
  messages: number
}

/**
 * Test-specific handler. It runs after the request body was consumed and
 * recorded (so `req` is already drained; `record` holds the body), and no
 * `x-mock-*` header is applied: the handler owns the whole answer.
 */
export type MockHandler = (req: IncomingMessage, res: ServerResponse, record: MockRequest) => void | Promise<void>

export interface MockTlsOptions {
  key: string | Buffer
  cert: string | Buffer
}

export interface MockOptions {
  /** Default '127.0.0.1'. */
  host?: string
  /** Default 0 (ephemeral). */
  port?: number
  /** Content tokens per streamed answer, default 20. */
  chunks?: number
  /** Pause between stream chunks, default 0. */
  delayMs?: number
  /** Model ids served by /v1/models. */
  models?: string[]
  /** Serve HTTPS with this key pair instead of plain HTTP. */
  tls?: MockTlsOptions
  /**
   * Keep `requests` and `streams` (default true). Benchmarks turn this off so
   * that memory stays flat; `count()` keeps working either way, and override
   * handlers then get records without headers.
   */
  record?: boolean
}

export interface MockUpstream {
  /** e.g. 'http://127.0.0.1:PORT', no trailing slash. */
  url: string
  port: number
  requests: MockRequest[]
  streams: MockStream[]
  wsConnections: MockWsConnection[]
  /** Requests whose path starts with `pathPrefix` (all when omitted). */
  count: (pathPrefix?: string) => number
  /** Lets streams sent with `x-mock-hold: <token>` finish (now or later). */
  release: (token: string) => void
  /** Clears requests, streams, WebSocket records, counters and released tokens. */
  reset: () => void
  /** Replaces the built-in behaviour of one exact path; `null` removes it. */
  override: (path: string, handler: MockHandler | null) => void
  /** Stops listening and destroys every open socket, WebSockets included. */
  close: () => Promise<void>
}
