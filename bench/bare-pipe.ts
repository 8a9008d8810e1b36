/**
 * The floor for any Node proxy: node:http + undici in a few lines. It reads and parses a JSON
 * body (any LLM proxy must, to see `model` and `stream`), forwards the request over a keep-alive
 * undici Agent, pipes the answer back, and aborts the upstream when the client goes away. No
 * logging, no header hygiene, no error shaping: whatever the gateway spends beyond this is its
 * own cost. Prints {"pipe":"http://127.0.0.1:PORT"} once listening.
 *
 *   PIPE_UPSTREAM_URL=http://127.0.0.1:1234 node --import tsx bench/bare-pipe.ts
 */
import { createServer, type IncomingMessage } from 'node:http'
import { Agent } from 'undici'
import { copyHeaders } from './pipe-headers.js'

const upstream = new URL(process.env.PIPE_UPSTREAM_URL ?? 'http://127.0.0.1:1')
const agent = new Agent({ connections: 1100, keepAliveTimeout: 30_000 })

// lean on purpose (events, not an async iterator; the Agent's own request(), no URL parsing): a floor
function readJson (req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.once('error', reject)
    req.once('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      try { JSON.parse(body.toString('utf8')); resolve(body) } catch (err) { reject(err) }
    })
  })
}

const server = createServer((req, res) => {
  const abort = new AbortController()
  res.once('close', () => { if (!res.writableFinished) abort.abort() })
  const headers = copyHeaders(req.headers)
  const json = req.headers['content-type']?.startsWith('application/json') === true
  const forward = async (): Promise<void> => {
    const body = json ? await readJson(req) : (req.method === 'GET' ? null : req)
    if (req.headers['content-length'] !== undefined) headers['content-length'] = json ? String((body as Buffer).length) : req.headers['content-length']
    const up = await agent.request({
      origin: upstream.origin, path: req.url ?? '/', method: req.method as 'GET', headers, body, signal: abort.signal
    })
    const out = copyHeaders(up.headers)
    if (up.headers['content-length'] !== undefined) out['content-length'] = up.headers['content-length']
    res.writeHead(up.statusCode, out)
    // pipe(), as Fastify's reply.send(stream) does: pipeline() costs an AbortController per call
    up.body.once('error', () => res.destroy())
    up.body.pipe(res)
  }
  forward().catch(() => {
    if (res.headersSent) res.destroy()
    else res.writeHead(502).end()
  })
})

server.keepAliveTimeout = 72_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(JSON.stringify({ pipe: `http://127.0.0.1:${port}` }) + '\n')
})
const stop = (): void => { server.close(() => process.exit(0)); server.closeAllConnections() }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
