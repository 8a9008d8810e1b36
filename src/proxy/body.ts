/**
 * Content-type parsers for proxied routes. JSON bodies are read (bounded by the body limit) so
 * plugins can look at `model`, `stream` and `messages`; the raw bytes are kept and forwarded
 * unchanged unless a plugin edits the object. Every other content type (multipart uploads, audio)
 * is left unread and streams from the client socket to the upstream.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidJsonError } from '../errors.js'
import { isPlainObject } from '../../config/paths.js'
import { ProxyBody } from './proxy-body.js'

export function registerProxyBodyParsers (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser(/^application\/(?:[\w.+-]+\+)?json\b/i, { parseAs: 'buffer' }, function parseJsonBody (request, body, done) {
    try {
      readJsonBody(request, body as Buffer)
      done(null, body)
    } catch (err) {
      done(err as Error, undefined)
    }
  })
  fastify.addContentTypeParser('*', function passThroughBody (_request, _payload, done) {
    done(null, undefined)
  })
}

/**
 * JSON is UTF-8 (RFC 8259 §8.1). A lenient decode would turn invalid bytes into U+FFFD: the
 * gateway would then judge (model, allowed models) a text the upstream never sees, and a plugin
 * that rewrites the body would silently replace the client's bytes. Invalid UTF-8 is a 400.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function readJsonBody (request: FastifyRequest, raw: Buffer): void {
  let parsed: unknown = null
  if (raw.length > 0) {
    try {
      parsed = JSON.parse(utf8.decode(raw))
    } catch {
      throw new InvalidJsonError()
    }
  }
  const body = ProxyBody.json(raw, isPlainObject(parsed) ? parsed : null)
  request.proxyBody = body
  // the model the body names is what the plan routes by (Azure deployments, allowed models)
  request.upstream.model = body.model
}
