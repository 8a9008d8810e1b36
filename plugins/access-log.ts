/**
 * One access line per request (method, path without query, status, duration, upstream, model,
 * stream flag), also for responses cut short (`cutShort: true`), on stdout and, with BASE_PATH,
 * in the access log file, with the request's usage record merged in (one line per request, see
 * `gw.logFields`); and with `log.requests` / `log.responses` (or level debug) redacted,
 * truncated dumps of headers and bodies. An event stream is logged once it ends, as its event
 * count and assembled text, not chunk by chunk. Keys never reach these lines: credential headers
 * are masked here and every serialised line passes the logger's secret filter (src/logging.ts).
 */
import fp from 'fastify-plugin'
import { Transform } from 'node:stream'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { pathOnly, redactHeaders } from '../src/logging.js'
import type { ResponseStart } from '../src/proxy/state.js'
import { SseTap, type SseTapEvent } from '../src/lib/sse-transform.js'
import { eventText } from '../src/lib/stream-text.js'
import { routeConfigOf } from './request-state.js'
import { cutShort, onAbandoned } from '../src/lib/abandoned.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** this request's access line is written */
    accessLogged: boolean
  }
}

export interface AccessLogOptions {
  log: GatewayConfig['log']
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more bytes]`
}

/** A passive tap: copies up to `max` bytes for the debug log, passes every chunk on unchanged. */
function bodyTap (request: FastifyRequest, max: number, level: 'info' | 'debug'): Transform {
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
      request.log[level]({ responseBytes: total, body: truncate(text, max) }, 'response body')
      cb()
    }
  })
}

/**
 * A passive tap on an event stream for the debug log: counts events and joins the text deltas
 * (up to `max` characters), and logs both once when the stream ends or its client goes away.
 */
function streamTap (request: FastifyRequest, max: number, level: 'info' | 'debug'): Transform {
  let events = 0
  let text = ''
  let textLength = 0
  const tap = new SseTap((event: SseTapEvent) => {
    events++
    if (event.data === null || event.data === '[DONE]' || event.data.charCodeAt(0) !== 123 /* { */) return
    let piece: string
    try {
      piece = eventText(JSON.parse(event.data))
    } catch {
      return
    }
    textLength += piece.length
    if (text.length < max) text += piece.length <= max - text.length ? piece : piece.slice(0, max - text.length)
  })
  tap.once('close', () => {
    const more = textLength - text.length
    request.log[level]({ events, textLength, text: more > 0 ? `${text}… [${more} more characters]` : text, complete: tap.writableFinished }, 'response stream')
  })
  return tap
}

const accessLog: FastifyPluginAsync<AccessLogOptions> = async (fastify, { log }) => {
  const accessFile = fastify.hasDecorator('logFiles') ? fastify.logFiles?.access ?? null : null
  const debug = log.level === 'debug'
  const logRequests = log.requests || debug
  const logResponses = log.responses || debug
  // asked for by name (seed 004's log_requests / log_responses): logged at info, seen at the default level
  const requestLevel = log.requests ? 'info' : 'debug'
  const responseLevel = log.responses ? 'info' : 'debug'

  if (logRequests || logResponses) {
    fastify.addHook('preHandler', async function debugRequest (request) {
      if (logRequests) {
        const body = request.gw.rawBody !== null ? truncate(request.gw.rawBody.toString('utf8'), log.bodyMaxBytes) : undefined
        request.log[requestLevel]({ method: request.method, path: pathOnly(request.url), headers: redactHeaders(request.headers), body }, 'request')
      }
      if (logResponses) {
        request.gw.responseHooks.push((start: ResponseStart) => {
          request.log[responseLevel]({ status: start.statusCode, headers: redactHeaders(start.headers) }, 'response headers')
          return start.isEventStream ? streamTap(request, log.bodyMaxBytes, responseLevel) : bodyTap(request, log.bodyMaxBytes, responseLevel)
        })
      }
    })
  }

  fastify.decorateRequest('accessLogged', false)

  function writeAccessLine (request: FastifyRequest, reply: FastifyReply, cutShort: boolean): void {
    // a response can both fail ('error') and close: one line
    if (request.accessLogged) return
    request.accessLogged = true
    if (routeConfigOf(request)?.public === true && reply.statusCode < 400 && !cutShort) return
    const gw = request.gw
    const record = gw?.logFields as Record<string, unknown> | null | undefined
    let line: Record<string, unknown>
    if (record !== null && record !== undefined) {
      // the usage record has every field of the access line (the same status and duration
      // rules) but the target's name under `upstream`: it becomes the line, no second object
      line = record
      line.upstream = gw.target?.name
      if (cutShort) line.cutShort = true
    } else {
      line = {
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
        errorClass: gw?.errorClass ?? (cutShort ? 'client_abort' : undefined)
      }
      if (cutShort) line.cutShort = true
    }
    request.log.info(line, 'request completed')
    accessFile?.info({ reqId: request.id, ...line }, 'request completed')
  }

  // callback form: nothing to wait for, so no promise per request
  fastify.addHook('onResponse', function accessLine (request, reply, done) {
    writeAccessLine(request, reply, false)
    done()
  })

  // Fastify runs onResponse hooks on the response's 'finish' or 'error' only. A response cut short
  // (the client left mid-stream, or the upstream failed mid-body and the client's connection was
  // destroyed so it cannot take a truncated body for a whole one) only closes: without this the
  // request would leave no line at all. WebSocket sessions have their own line (realtime). The
  // one shared 'close' listener (src/lib/abandoned.ts) runs the usage plugin's handler first, so
  // the record is on this line too.
  onAbandoned(fastify, (request, reply) => writeAccessLine(request, reply, cutShort(request, reply)))
}

export default fp(accessLog, { name: 'gateway-access-log', fastify: '5.x', dependencies: ['gateway-request-state'] })
