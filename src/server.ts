/**
 * Builds the Fastify instance around the app plugin: logger, request ids, server timeouts.
 * Tests call buildServer() and listen on port 0; src/cli.ts adds argv, signals and listen.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { pino } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import app from './app.js'
import { loggerOptions } from './logging.js'
import { secretsOf } from '../config/secrets.js'
import { createPathRouter } from './routing/paths.js'

export interface BuildOptions {
  /** where log lines go (tests capture them); default stdout */
  logDestination?: NodeJS.WritableStream
}

/**
 * stdout, asynchronous and buffered: lines are written in batches of about 4 KiB (a dozen access
 * lines) instead of one asynchronous write each, which cost ~4 µs per request on the benchmark's
 * 2 cores (bench/RESULTS.md); a quiet gateway still writes its lines within 200 ms, and pino
 * flushes what is left when the process exits.
 */
const STDOUT_LOG = { dest: 1, sync: false, minLength: 4096, periodicFlush: 200 }

const REQUEST_ID = /^[\w.:@-]{1,128}$/

/** A client's x-request-id is kept when it is a sane token; anything else is replaced. */
function requestId (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

export async function buildServer (config: GatewayConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const options = loggerOptions({ level: config.log.level, secrets: secretsOf(config) })
  const logger = pino(options, opts.logDestination ?? pino.destination(STDOUT_LOG))
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
    http: { headersTimeout: config.server.headersTimeoutMs, requestTimeout: 0 },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 500 },
    // `/{target}/v1/…` and seed 003's `/release/…` are resolved before routing (src/routing/paths.ts)
    rewriteUrl: createPathRouter(config)
  })
  // callback form: no promise per request
  fastify.addHook('onRequest', function echoRequestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    done()
  })
  await fastify.register(app, { config })
  return fastify as unknown as FastifyInstance
}
