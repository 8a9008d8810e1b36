/**
 * The forwarder as @fastify/reply-from would build it, for docs/adr/0001-forwarder.md: one
 * encapsulated registration per target (its own undici Agent, which is how a target gets its own
 * first-byte and idle timeouts), the raw JSON bytes forwarded as they came, the client's key
 * swapped for the upstream's, each answer through one pass-through Transform in `onResponse`
 * (where the gateway's event-level stages would sit), and `onError` mapped to an SDK-shaped
 * error. No hooks, no logger: set beside the Fastify floor (bench/fastify-floor.ts), it shows what
 * reply-from itself costs per request. Prints {"reply-from":"http://127.0.0.1:PORT"} once listening.
 *
 *   PIPE_UPSTREAM_URL=http://127.0.0.1:1234 [RF_STAGE=none] node --import tsx bench/reply-from.ts
 *
 * RF_STAGE=none: `reply.send(res.stream)`, no Transform (reply-from alone).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { pipeline, Transform, type TransformCallback } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from'
import { Agent } from 'undici'
import { copyHeaders } from './pipe-headers.js'

interface Target { prefix: string, base: string, firstByteMs: number, idleMs: number, key: string }

const TARGETS: Target[] = [
  { prefix: '', base: process.env.PIPE_UPSTREAM_URL ?? 'http://127.0.0.1:1', firstByteMs: 300_000, idleMs: 300_000, key: 'sk-bench-upstream-0123456789abcdef' }
]
const STAGE = process.env.RF_STAGE !== 'none'

/** The least a stage costs: one stream hop per chunk, the chunk passed on untouched. */
function passThroughStage (): Transform {
  return new Transform({
    transform (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) { done(null, chunk) }
  })
}

/** reply-from's errors carry a status (504 for timeouts, 503, 502, 500); the client gets the SDK's shape. */
const upstreamError: NonNullable<FastifyReplyFromHooks['onError']> = (reply, { error }) => {
  const status = (error as Error & { statusCode?: number }).statusCode === 504 ? 504 : 502
  reply.code(status).send({ error: { message: status === 504 ? 'upstream timed out' : 'upstream unreachable', type: 'upstream_error' } })
}

/** The upstream's hop-by-hop headers dropped, as the floor does; the body's length kept. */
function keepEndToEnd (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = copyHeaders(headers)
  if (headers['content-length'] !== undefined) out['content-length'] = headers['content-length']
  return out
}

function targetScope (target: Target) {
  return async function (scope: FastifyInstance): Promise<void> {
    const agent = new Agent({ connections: 1100, keepAliveTimeout: 30_000, headersTimeout: target.firstByteMs, bodyTimeout: target.idleMs })
    await scope.register(replyFrom, { base: target.base, undici: agent, disableRequestLogging: true })
    // the raw body is forwarded byte for byte, and parsed once (as the gateway and the floor do)
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        JSON.parse((body as Buffer).toString('utf8'))
        done(null, body)
      } catch (err) {
        done(err as Error)
      }
    })
    scope.all('/*', (request, reply) => {
      const body = request.body as Buffer | undefined
      return reply.from(request.url.slice(target.prefix.length), {
        // a Buffer given as request.body would be JSON.stringify'd; given as `body` it is sent as is
        ...(body === undefined ? {} : { body, contentType: request.headers['content-type'] }),
        rewriteRequestHeaders: (_req, headers) => ({ ...headers, authorization: `Bearer ${target.key}` }),
        // reply-from copies every upstream header, the upstream's keep-alive and connection too
        rewriteHeaders: keepEndToEnd,
        onResponse: STAGE
          ? (_req, rep, res) => { rep.send(pipeline(res.stream, passThroughStage(), () => {})) }
          : undefined,
        onError: upstreamError
      })
    })
  }
}

const app = Fastify({ logger: false, keepAliveTimeout: 72_000, bodyLimit: 8 * 1024 * 1024 })
for (const target of TARGETS) await app.register(targetScope(target), { prefix: target.prefix })
const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ 'reply-from': address }) + '\n')
const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
