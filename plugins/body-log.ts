/**
 * With `log.requests` / `log.responses` (or level debug), redacted, truncated dumps of API request
 * headers and bodies and of the answers: an event stream is logged once it ends, as its event
 * count and assembled text, not chunk by chunk. Registered last in the API scope (src/app.ts), so
 * its tap sees the answer as the client gets it, after every other stage. Keys never reach these
 * lines: credential headers are masked here and every serialised line passes the logger's secret
 * filter (src/logging.ts).
 */
import fp from 'fastify-plugin'
import { Transform } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { pathOnly, redactHeaders } from '../src/logging.js'
import type { ResponseStart } from '../src/proxy/stages.js'
import { SseTap, type SseTapEvent } from '../src/lib/sse-transform.js'
import { eventText } from '../src/lib/stream-text.js'

export interface BodyLogOptions {
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

const bodyLog: FastifyPluginAsync<BodyLogOptions> = async (fastify, { log }) => {
  const debug = log.level === 'debug'
  const logRequests = log.requests || debug
  const logResponses = log.responses || debug
  // asked for by name (seed 004's log_requests / log_responses): logged at info, seen at the default level
  const requestLevel = log.requests ? 'info' : 'debug'
  const responseLevel = log.responses ? 'info' : 'debug'

  if (logRequests) {
    fastify.addHook('preHandler', async function debugRequest (request) {
      const raw = request.proxyBody?.raw
      const body = raw != null ? truncate(raw.toString('utf8'), log.bodyMaxBytes) : undefined
      request.log[requestLevel]({ method: request.method, path: pathOnly(request.upstream.apiPath), headers: redactHeaders(request.headers), body }, 'request')
    })
  }
  if (logResponses) {
    // last of the near-client stages (this plugin is registered last): it sees what the client gets
    fastify.forwarder.addStage({
      name: 'body-log',
      position: 'near-client',
      make (start: ResponseStart) {
        const request = start.request
        request.log[responseLevel]({ status: start.statusCode, headers: redactHeaders(start.headers) }, 'response headers')
        return start.isEventStream ? streamTap(request, log.bodyMaxBytes, responseLevel) : bodyTap(request, log.bodyMaxBytes, responseLevel)
      }
    })
  }
}

export default fp(bodyLog, { name: 'gateway-body-log', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-forwarder'] })
