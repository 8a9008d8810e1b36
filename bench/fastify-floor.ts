/**
 * The floor for a Fastify proxy: the bare pipe's work (read and parse a JSON body, forward over a
 * keep-alive undici Agent, stream the answer back, abort on client close) as one Fastify route
 * with Fastify's own JSON parser and `reply.send(stream)`, and nothing else: no hooks, no logger.
 * What the gateway spends beyond this is its own plugins' cost; what this spends beyond the bare
 * pipe is Fastify's. Prints {"floor":"http://127.0.0.1:PORT"} once listening.
 *
 *   PIPE_UPSTREAM_URL=http://127.0.0.1:1234 node --import tsx bench/fastify-floor.ts
 */
import Fastify from 'fastify'
import { Agent } from 'undici'
import { copyHeaders, isHopHeader } from './pipe-headers.js'

const upstream = new URL(process.env.PIPE_UPSTREAM_URL ?? 'http://127.0.0.1:1')
const agent = new Agent({ connections: 1100, keepAliveTimeout: 30_000 })
const RAW = process.env.FLOOR_RELAY === 'raw'
const DISPATCH = process.env.FLOOR_RELAY === 'dispatch'

const app = Fastify({ logger: false, keepAliveTimeout: 72_000, bodyLimit: 8 * 1024 * 1024 })
// the raw body is forwarded byte for byte, and parsed once (as the gateway and the pipe do)
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
  try {
    JSON.parse((body as Buffer).toString('utf8'))
    done(null, body)
  } catch (err) {
    done(err as Error)
  }
})
app.all('/*', async (request, reply) => {
  if (DISPATCH) return dispatchRelay(request.raw, reply, request.body as Buffer | undefined)
  const abort = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) abort.abort() })
  const headers = copyHeaders(request.headers)
  const body = request.body as Buffer | undefined
  if (body !== undefined) headers['content-length'] = String(body.length)
  const up = await agent.request({
    origin: upstream.origin, path: request.url, method: request.method as 'GET', headers, body: body ?? null, signal: abort.signal
  })
  const out = copyHeaders(up.headers)
  if (up.headers['content-length'] !== undefined) out['content-length'] = up.headers['content-length']
  if (RAW) {
    // FLOOR_RELAY=raw: the answer written by hand (reply.hijack), not through reply.send(stream)
    reply.hijack()
    reply.raw.writeHead(up.statusCode, out)
    up.body.once('error', () => reply.raw.destroy())
    up.body.pipe(reply.raw)
    return reply
  }
  reply.code(up.statusCode).headers(out)
  return reply.send(up.body)
})

/** FLOOR_RELAY=dispatch: undici's dispatch() with a handler that writes to the response itself. */
function dispatchRelay (req: import('node:http').IncomingMessage, reply: import('fastify').FastifyReply, body: Buffer | undefined): Promise<void> {
  const res = reply.raw
  const headers = copyHeaders(req.headers)
  if (body !== undefined) headers['content-length'] = String(body.length)
  reply.hijack()
  return new Promise((resolve) => {
    let abort: ((err?: Error) => void) | null = null
    let resume: (() => void) | null = null
    res.once('close', () => { if (!res.writableFinished) abort?.() })
    res.on('drain', () => resume?.())
    agent.dispatch({ origin: upstream.origin, path: req.url ?? '/', method: req.method as 'GET', headers, body: body ?? null }, {
      onConnect (a: (err?: Error) => void) { abort = a },
      onHeaders (statusCode: number, raw: Buffer[], r: () => void) {
        resume = r
        const out: Array<string> = []
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i].toString('latin1').toLowerCase()
          if (!isHopHeader(name) || name === 'content-length') out.push(name, raw[i + 1].toString('latin1'))
        }
        res.writeHead(statusCode, out)
        return true
      },
      onData (chunk: Buffer) { return res.write(chunk) },
      onComplete () { res.end(); resolve() },
      onError () { if (res.headersSent) res.destroy(); else res.writeHead(502).end(); resolve() }
    } as unknown as import('undici').Dispatcher.DispatchHandler)
  })
}

const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ floor: address }) + '\n')
const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
