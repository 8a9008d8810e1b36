/**
 * Servers the routing tests need besides the gateway and the mock: a small forward proxy (CONNECT
 * tunnels and absolute-form requests, like squid or v2ray's HTTP port), a "key gate" in front of
 * the mock that fails chosen upstream keys, and a gateway with a stand-in for client
 * authentication (the auth plugin sets `request.gw.client` in a later onRequest hook).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import type { FastifyRequest } from 'fastify'
import type { ClientIdentity } from '../../src/auth/client.js'
import { startGateway, type GatewayHandle, type GatewayInput } from '../helper.js'

async function listen (server: Server, t: TestContext, sockets: Set<Socket>): Promise<string> {
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

export interface ForwardProxy {
  url: string
  /** `CONNECT host:port` or `GET http://host:port/path`, in arrival order */
  seen: string[]
  /** Proxy-Authorization values received */
  auth: string[]
}

/** A forward proxy on 127.0.0.1: CONNECT tunnels and absolute-form HTTP requests. */
export async function startForwardProxy (t: TestContext): Promise<ForwardProxy> {
  const seen: string[] = []
  const auth: string[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`)
    if (typeof req.headers['proxy-authorization'] === 'string') auth.push(req.headers['proxy-authorization'])
    if (!/^http:\/\//.test(req.url ?? '')) { res.writeHead(400).end(); return }
    const target = new URL(req.url as string)
    const headers = { ...req.headers }
    delete headers['proxy-authorization']
    delete headers['proxy-connection']
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url ?? ''}`)
    if (typeof req.headers['proxy-authorization'] === 'string') auth.push(req.headers['proxy-authorization'])
    const [host, port] = (req.url ?? '').split(':')
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    sockets.add(upstream)
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
  })
  const url = await listen(server, t, sockets)
  return { url, seen, auth }
}

export interface KeyGate {
  url: string
  /** credential seen per request, in order (`Bearer k` / x-api-key / api-key value) */
  keys: string[]
}

/**
 * Sits in front of the mock: requests carrying a key listed in `status` get that status, keys in
 * `reset` get their connection destroyed before any byte; every other request goes to the mock.
 */
export async function startKeyGate (t: TestContext, mockUrl: string, rules: { status?: Record<string, number>, reset?: string[] }): Promise<KeyGate> {
  const keys: string[] = []
  const sockets = new Set<Socket>()
  const mock = new URL(mockUrl)
  const server = createServer((req, res) => {
    const h = req.headers
    const key = String(h['x-api-key'] ?? h['api-key'] ?? String(h.authorization ?? '').replace(/^Bearer /, ''))
    keys.push(key)
    if (rules.reset?.includes(key) === true) { req.socket.destroy(); return }
    const status = rules.status?.[key]
    if (status !== undefined) {
      req.resume()
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `gate ${status}`, type: 'gate', code: null } }))
      return
    }
    const upstream = httpRequest({ host: mock.hostname, port: mock.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  const url = await listen(server, t, sockets)
  return { url, keys }
}

/**
 * The real gateway like test/helper.ts's startGateway, with a stand-in for client authentication:
 * `client(request)` runs in an onRequest hook added after every plugin, where auth will run.
 */
export async function startGatewayWithClient (t: TestContext, input: GatewayInput, client: (request: FastifyRequest) => ClientIdentity | null): Promise<GatewayHandle> {
  return await startGateway(t, {
    ...input,
    prepare (app) {
      app.addHook('onRequest', async function standInAuth (request) { request.client = client(request) })
    }
  })
}
