/**
 * Builds the Fastify instance around the app plugin: logger, request ids, server timeouts.
 * Tests call buildServer() and listen on port 0; src/cli.ts adds argv, signals and listen.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { pino } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import app from './app.js'
import { loggerOptions, serializePlainFields } from './logging.js'
import { openLogOutputs } from './log-outputs.js'
import { secretsOf } from '../config/secrets.js'
import { createStageStripper } from './routing/paths.js'
import { StallSweep } from './lib/stall-sweep.js'
import { BodyTooSlowError, HttpVersionError, errorBody, shapeError } from './errors.js'

export interface BuildOptions {
  /** where log lines go (tests capture them); default stdout */
  logDestination?: NodeJS.WritableStream
}

const REQUEST_ID = /^[\w.:@-]{1,128}$/

/** A client's x-request-id is kept when it is a sane token; anything else is replaced. */
function requestId (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

/**
 * What Node's HTTP parser refuses never reaches Fastify's routes: smuggling forms (conflicting or
 * duplicate Content-Length, Transfer-Encoding with Content-Length, obs-fold), CR/LF or control
 * bytes in headers or the URL, oversized headers (431), and slow header senders (408). Fastify's
 * default answer has its own body shape; this one is the OpenAI error shape the SDKs read, always
 * with `Connection: close`: after a framing error the rest of the bytes cannot be trusted, so the
 * connection is never reused (no second request can be smuggled behind the first).
 */
const CLIENT_ERRORS: Record<string, { status: number, message: string, code: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'The request headers were not received in time', code: 'request_timeout' },
  HPE_HEADER_OVERFLOW: { status: 431, message: 'The request headers are too large', code: 'headers_too_large' }
}

function rejectMalformedRequest (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset peer has nobody left to answer
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const known = CLIENT_ERRORS[err.code ?? '']
  const status = known?.status ?? 400
  const body = JSON.stringify({ error: { message: known?.message ?? 'The request is not valid HTTP/1.1', type: 'invalid_request_error', code: known?.code ?? 'bad_request' } })
  // the parser's code (HPE_…) says which rule was broken; the raw bytes are not logged
  this.log.debug({ code: err.code, status }, 'malformed request refused by the HTTP parser')
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  }
  socket.destroySoon()
}

/** Whether a request announces a body (a length other than 0, or chunked). */
function announcesBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * Slow bodies: with no request timeout (an upload may take long, and streams are not requests),
 * a client that sends headers and then trickles, or stops sending, its body would hold its socket
 * (and, for a streamed upload, an upstream connection) for ever. While a body is being received
 * the socket gets an idle timeout; silence longer than that closes the connection. A pause the
 * gateway causes itself (backpressure: the upstream reads an upload slowly, so the request stream
 * is paused or holds unread data) is not the client's silence and re-arms the timer. Once the body
 * has arrived the timeout is removed: answers, streams included, may be silent for as long as the
 * upstream takes.
 */
function watchBodyIdle (request: FastifyRequest, res: ServerResponse, ms: number): void {
  const req = request.raw
  if (req.complete || !announcesBody(req)) return
  const socket = req.socket
  // fastify.inject's stand-in socket has no timers: nothing to guard there
  if (typeof socket?.setTimeout !== 'function') return
  const onTimeout = (): void => {
    if (req.complete) return
    if (req.isPaused() || req.readableLength > 0) {
      socket.setTimeout(ms)
      return
    }
    if (request.outcome != null) request.outcome.errorClass = 'client_body_timeout'
    request.log.info({ idleMs: ms }, 'request body stalled: connection closed')
    socket.destroy()
  }
  // a listener on the request keeps Node from destroying the socket on its own
  req.on('timeout', onTimeout)
  req.once('end', () => {
    req.off('timeout', onTimeout)
    // an answer that went out first (a refusal) left the socket to Node's keep-alive timer
    if (!res.writableEnded) socket.setTimeout(0)
  })
  socket.setTimeout(ms)
}

/**
 * A body trickled in (a byte every few seconds) is never silent long enough for the idle timeout,
 * and would hold its request, and for a streamed upload an upstream connection, for as long as
 * the client likes. After a grace period the body must keep an average pace: by `graceMs` plus
 * one second per `minRate` bytes received, it must be complete. Time the gateway itself holds the
 * body back (backpressure from a slow upstream) is not counted against the client: measuring
 * starts again. A body too slow is refused with 408.
 */
function watchBodyRate (request: FastifyRequest, res: ServerResponse, minRate: number, graceMs: number): void {
  const req = request.raw
  if (req.complete || !announcesBody(req)) return
  const socket = req.socket
  if (typeof socket?.setTimeout !== 'function') return
  // bytes read from the socket, not from the request stream: counting needs no data listener,
  // which would put the body in flowing mode before its reader is there
  let since = Date.now()
  let base = socket.bytesRead
  let timer: NodeJS.Timeout | null = null
  const check = (): void => {
    timer = null
    if (req.complete || socket.destroyed) return
    const now = Date.now()
    if (req.isPaused() || req.readableLength > 0) {
      since = now
      base = socket.bytesRead
      schedule(graceMs)
      return
    }
    const due = since + graceMs + (socket.bytesRead - base) * 1000 / minRate
    if (now < due) schedule(due - now)
    else refuseSlowBody(request, res, minRate)
  }
  const schedule = (ms: number): void => {
    timer = setTimeout(check, Math.ceil(ms))
    timer.unref()
  }
  const stop = (): void => { if (timer !== null) clearTimeout(timer) }
  req.once('end', stop)
  res.once('close', stop)
  schedule(graceMs)
}

/**
 * The body watchers are for bodies still arriving. Most bodies come in the same socket read as
 * their headers, and are complete once that read has been handled: such a request is looked at
 * again on the next turn of the event loop (one check for all the requests of that turn) and its
 * body is watched only when it is still on its way. Until then nothing can be silent or slow for
 * long: a turn of the loop is far shorter than the shortest timeout.
 */
function bodyWatch (watch: BodyWatcher): BodyWatcher {
  let waiting: Array<{ request: FastifyRequest, res: ServerResponse }> = []
  const check = (): void => {
    const turn = waiting
    waiting = []
    for (const { request, res } of turn) {
      if (!request.raw.complete && !res.writableEnded) watch(request, res)
    }
  }
  return (request, res) => {
    if (request.raw.complete || !announcesBody(request.raw)) return
    if (waiting.length === 0) setImmediate(check)
    waiting.push({ request, res })
  }
}

type BodyWatcher = (request: FastifyRequest, res: ServerResponse) => void

/**
 * Refuses a body that came too slowly with 408, through whatever is reading it so that the answer
 * still goes out on the socket: the upload pass-through (the upstream call fails with the error,
 * which the forwarder rethrows), or Fastify's body parser (it listens for the request's 'error'
 * and fails the parse with it; destroying the request would close the socket with it). Nobody
 * reading, or an answer already started: the connection is closed.
 */
function refuseSlowBody (request: FastifyRequest, res: ServerResponse, minRate: number): void {
  const req = request.raw
  if (request.outcome != null) request.outcome.errorClass = 'client_body_too_slow'
  request.log.info({ minBytesPerSecond: minRate }, 'request body too slow: refused')
  const err = new BodyTooSlowError(minRate)
  if (res.headersSent) req.socket.destroy()
  else if (request.proxyBody?.source != null) request.proxyBody.source.destroy(err)
  else if (req.listenerCount('data') > 0 && req.listenerCount('error') > 0) req.emit('error', err)
  else req.socket.destroy()
}

/**
 * An answer the client does not read: once its socket is full the gateway stops reading the
 * upstream (backpressure), and the upstream connection waits with it, for ever if the client
 * never reads; undici's body timeout does not run while it is paused. When sent bytes have waited
 * for the client for `ms` without moving, the connection is closed (and the upstream request with
 * it); when nothing is waiting, the upstream is just quiet (a long stream thinking) and the
 * answer is not stalled. One sweep watches every answer (src/lib/stall-sweep.ts).
 */
function watchResponseStall (sweep: StallSweep, request: FastifyRequest, res: ServerResponse, ms: number): void {
  const socket = request.raw.socket
  if (typeof socket?.setTimeout !== 'function' || request.raw.headers.upgrade !== undefined) return
  sweep.watch(res, socket, () => {
    if (request.outcome != null) request.outcome.errorClass = 'client_stalled'
    request.log.info({ stallMs: ms, unsentBytes: socket.writableLength }, 'answer left unread: connection closed')
    socket.destroy()
  })
}

export async function buildServer (config: GatewayConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const secrets = secretsOf(config)
  const options = loggerOptions({ level: config.log.level, secrets })
  const outputs = openLogOutputs(config, secrets, opts.logDestination)
  const logger = pino(options, outputs.main)
  serializePlainFields(logger)
  for (const problem of outputs.problems.splice(0)) logger.warn(problem)
  outputs.onFailure = (message) => logger.warn(message)
  const fastify = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // the access-log plugin writes one line per request instead of Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestId,
    requestIdHeader: false,
    bodyLimit: config.server.bodyLimit,
    // X-Forwarded-For is believed only from configured proxies; none → the socket address
    trustProxy: config.clientIp.trustedProxies.length > 0 ? [...config.clientIp.trustedProxies] : false,
    // a silent stream is healthy: no socket idle timeout; slow header senders are cut instead
    connectionTimeout: 0,
    requestTimeout: 0,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    http: {
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: 0,
      // Node checks the headers timeout only this often (default 30 s): without it a slowloris
      // client given 1 s would keep its socket for up to 31 s
      connectionsCheckingInterval: Math.min(1000, config.server.headersTimeoutMs)
    },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 500 },
    // seed 003's `/release/…` stage is removed before routing (src/routing/paths.ts)
    rewriteUrl: createStageStripper(config),
    clientErrorHandler: rejectMalformedRequest,
    // malformed percent-encoding (`%ff`) and over-long route parameters are refused by the router
    // before any hook runs: answered in the same JSON shape as every other gateway error
    frameworkErrors: function routerRefusal (err, request, reply: FastifyReply) {
      const shaped = shapeError(err)
      request.log.debug({ code: err.code, status: shaped.status }, 'request refused by the router')
      reply.code(shaped.status).send(errorBody(request.url, shaped))
    }
  })
  const { bodyIdleTimeoutMs: bodyIdleMs, bodyMinBytesPerSecond: bodyMinRate, responseStallTimeoutMs: stallMs } = config.server
  // the minimum pace applies after the body was given as long as a silence may last
  const bodyGraceMs = bodyIdleMs > 0 ? bodyIdleMs : config.server.headersTimeoutMs
  const watchBody = bodyIdleMs > 0 || bodyMinRate > 0
    ? bodyWatch((request, res) => {
      if (bodyIdleMs > 0) watchBodyIdle(request, res, bodyIdleMs)
      if (bodyMinRate > 0) watchBodyRate(request, res, bodyMinRate, bodyGraceMs)
    })
    : null
  const stalls = stallMs > 0 ? new StallSweep(stallMs) : null
  if (stalls !== null) fastify.addHook('onClose', async () => { stalls.close() })
  // callback form: no promise per request (a throw still reaches the error handler)
  fastify.addHook('onRequest', function echoRequestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    if (watchBody !== null) watchBody(request, reply.raw)
    if (stalls !== null) watchResponseStall(stalls, request, reply.raw, stallMs)
    // Node's parser takes a request line without a version as HTTP/0.9, and still reads the lines
    // after it as headers (`GET /x\nInjected: 1 HTTP/1.1`): no real client sends that
    if (request.raw.httpVersionMajor !== 1) {
      reply.header('connection', 'close')
      throw new HttpVersionError()
    }
    done()
  })
  fastify.decorate('logFiles', outputs.files)
  // onClose hooks run last-added first: added before the app's, this one closes the files last
  fastify.addHook('onClose', async () => { await outputs.close() })
  await fastify.register(app, { config })
  return fastify as unknown as FastifyInstance
}
