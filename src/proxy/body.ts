/**
 * Content-type parsers for proxied routes. JSON bodies are read (bounded by the body limit) so
 * plugins can look at `model`, `stream` and `messages`; the raw bytes are kept and forwarded
 * unchanged unless a plugin edits the object. Every other content type (multipart uploads, audio)
 * is left unread and streams from the client socket to the upstream.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidJsonError } from '../errors.js'
import { isPlainObject } from '../../config/paths.js'

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
  const gw = request.gw
  gw.rawBody = raw
  if (raw.length === 0) return
  let parsed: unknown
  try {
    parsed = JSON.parse(utf8.decode(raw))
  } catch {
    throw new InvalidJsonError()
  }
  if (!isPlainObject(parsed)) return
  gw.json = parsed
  if (typeof parsed.model === 'string') gw.model = parsed.model
  gw.stream = parsed.stream === true
}

/**
 * `raw` (a JSON object, already parsed once) with `members` added before its closing brace: the
 * last `}` of a valid JSON object text is its own, only whitespace may follow it.
 */
export function addJsonMembers (raw: Buffer, members: string): Buffer {
  const end = raw.lastIndexOf(125 /* } */)
  let before = end - 1
  while (before >= 0 && (raw[before] === 32 || raw[before] === 10 || raw[before] === 13 || raw[before] === 9)) before--
  const empty = before >= 0 && raw[before] === 123 /* { */
  return Buffer.concat([raw.subarray(0, end), Buffer.from(empty ? members : `,${members}`), raw.subarray(end)])
}
