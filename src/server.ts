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
import { loggerOptions } from './logging.js'
import { openLogOutputs } from './log-outputs.js'
import { secretsOf } from '../config/secrets.js'
import { createPathRouter } from './routing/paths.js'
import { HttpVersionError, errorBody, shapeError } from './errors.js'

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
  const length = req.headers['content-length']
  if (req.complete || (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0'))) return
  const socket = req.socket
  // fastify.inject's stand-in socket has no timers: nothing to guard there
  if (typeof socket?.setTimeout !== 'function') return
  const onTimeout = (): void => {
    if (req.complete) return
    if (req.isPaused() || req.readableLength > 0) {
      socket.setTimeout(ms)
      return
    }
    if (request.gw !== null) request.gw.errorClass = 'client_body_timeout'
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

export async function buildServer (config: GatewayConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const secrets = secretsOf(config)
  const options = loggerOptions({ level: config.log.level, secrets })
  const outputs = openLogOutputs(config, secrets, opts.logDestination)
  const logger = pino(options, outputs.main)
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
    // `/{target}/v1/…` and seed 003's `/release/…` are resolved before routing (src/routing/paths.ts)
    rewriteUrl: createPathRouter(config),
    clientErrorHandler: rejectMalformedRequest,
    // malformed percent-encoding (`%ff`) and over-long route parameters are refused by the router
    // before any hook runs: answered in the same JSON shape as every other gateway error
    frameworkErrors: function routerRefusal (err, request, reply: FastifyReply) {
      const shaped = shapeError(err)
      request.log.debug({ code: err.code, status: shaped.status }, 'request refused by the router')
      reply.code(shaped.status).send(errorBody(request.url, shaped))
    }
  })
  const bodyIdleMs = config.server.bodyIdleTimeoutMs
  // callback form: no promise per request (a throw still reaches the error handler)
  fastify.addHook('onRequest', function echoRequestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    if (bodyIdleMs > 0) watchBodyIdle(request, reply.raw, bodyIdleMs)
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
