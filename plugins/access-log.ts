/**
 * One access line per request (method, path without query, status, duration, upstream, model,
 * stream flag), also for responses cut short (`cutShort: true`), and with `log.requests` /
 * `log.responses` (or level debug) redacted, truncated dumps of headers and bodies. Keys never reach these lines: credential headers are masked here
 * and every serialised line passes the logger's secret filter (src/logging.ts).
 */
import fp from 'fastify-plugin'
import { Transform } from 'node:stream'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { pathOnly, redactHeaders } from '../src/logging.js'
import type { ResponseStart } from './request-state.js'

export interface AccessLogOptions {
  log: GatewayConfig['log']
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more bytes]`
}

/** A passive tap: copies up to `max` bytes for the debug log, passes every chunk on unchanged. */
function bodyTap (request: FastifyRequest, max: number): Transform {
  const seen: Buffer[] = []
  let size = 0
  let total = 0
  return new Transform({
    transform (chunk: Buffer, _enc, cb) {
      total += chunk.length
      if (size < max) { seen.push(chunk); size += chunk.length }
      cb(null, chunk)
    },
    flush (cb) {
      const text = Buffer.concat(seen).toString('utf8')
      request.log.debug({ responseBytes: total, body: truncate(text, max) }, 'response body')
      cb()
    }
  })
}

const accessLog: FastifyPluginAsync<AccessLogOptions> = async (fastify, { log }) => {
  const debug = log.level === 'debug'
  const logRequests = log.requests || debug
  const logResponses = log.responses || debug

  if (logRequests || logResponses) {
    fastify.addHook('preHandler', async function debugRequest (request) {
      if (logRequests) {
        const body = request.gw.rawBody !== null ? truncate(request.gw.rawBody.toString('utf8'), log.bodyMaxBytes) : undefined
        request.log.debug({ method: request.method, path: pathOnly(request.url), headers: redactHeaders(request.headers), body }, 'request')
      }
      if (logResponses) {
        request.gw.responseHooks.push((start: ResponseStart) => {
          request.log.debug({ status: start.statusCode, headers: redactHeaders(start.headers) }, 'response headers')
          return bodyTap(request, log.bodyMaxBytes)
        })
      }
    })
  }

  /** requests whose line is written: a response can both fail ('error') and close */
  const written = new WeakSet<FastifyRequest>()

  function writeAccessLine (request: FastifyRequest, reply: FastifyReply, cutShort: boolean): void {
    if (written.has(request)) return
    written.add(request)
    if (request.routeOptions.config?.public === true && reply.statusCode < 400 && !cutShort) return
    const gw = request.gw
    request.log.info({
      method: request.method,
      path: pathOnly(request.url),
      // nothing was answered: nginx's "client closed request" rather than a 200 never sent
      status: cutShort && !reply.raw.headersSent ? 499 : reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      upstream: gw?.target?.name,
      model: gw?.model ?? undefined,
      stream: gw?.json !== null ? gw?.stream : undefined,
      client: gw?.client?.name,
      // an upstream failure mid-body was classified before the socket was cut; else the client left
      errorClass: gw?.errorClass ?? (cutShort ? 'client_abort' : undefined),
      ...(cutShort ? { cutShort: true } : {})
    }, 'request completed')
  }

  fastify.addHook('onResponse', async function accessLine (request, reply) {
    writeAccessLine(request, reply, false)
  })

  // Fastify runs onResponse hooks on the response's 'finish' or 'error' only. A response cut short
  // (the client left mid-stream, or the upstream failed mid-body and the client's connection was
  // destroyed so it cannot take a truncated body for a whole one) only closes: without this the
  // request would leave no line at all. WebSocket sessions have their own line (realtime).
  fastify.addHook('onRequest', async function watchCutShort (request, reply) {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished && !request.ws) writeAccessLine(request, reply, true)
    })
  })
}

export default fp(accessLog, { name: 'gateway-access-log', fastify: '5.x', dependencies: ['gateway-request-state'] })
