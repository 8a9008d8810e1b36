/**
 * Small helpers for WebSocket tests: a client that records everything it receives, bounded
 * waiting, and upstreams the mock cannot play (one that holds the handshake, one that never
 * answers it).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TestContext } from 'node:test'
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws'

export interface Received { data: Buffer, binary: boolean }
export interface Closed { code: number, reason: string }

/** Polls `check` until it is true; fails after `ms` (a bound, not a timing assertion). */
export async function waitFor (check: () => boolean, what: string, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** A ws client that records messages and its close, from the very first frame. */
export class Probe {
  readonly ws: WebSocket
  readonly messages: Received[] = []
  closed: Closed | null = null
  /** HTTP status when the upgrade was refused */
  refusedWith: number | null = null
  refusedBody = ''
  readonly opened: Promise<void>

  constructor (url: string, protocols: string[] = [], options: ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, options)
    this.ws.on('message', (data, binary) => this.messages.push({ data: data as Buffer, binary }))
    this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() } })
    this.ws.on('error', () => {})
    this.ws.on('unexpected-response', (_req, res) => {
      this.refusedWith = res.statusCode ?? 0
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { this.refusedBody += chunk })
      res.on('end', () => { this.closed = { code: 1006, reason: 'refused' } })
    })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('close', () => reject(new Error(`closed before open (${this.refusedWith ?? 'no status'})`)))
    })
    this.opened.catch(() => {})
  }

  json (i: number): Record<string, unknown> {
    const m = this.messages[i]
    if (m === undefined) throw new Error(`no message ${i}`)
    return JSON.parse(m.data.toString('utf8')) as Record<string, unknown>
  }

  types (): unknown[] {
    return this.messages.filter(m => !m.binary).map(m => (JSON.parse(m.data.toString('utf8')) as { type?: unknown }).type)
  }

  async received (n: number): Promise<void> {
    await waitFor(() => this.messages.length >= n, `${n} messages (have ${this.messages.length})`)
  }

  async waitClosed (): Promise<Closed> {
    await waitFor(() => this.closed !== null, 'the socket to close')
    return this.closed as unknown as Closed
  }

  send (value: unknown): void {
    this.ws.send(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value))
  }
}

export function wsUrl (httpUrl: string, path = '/v1/realtime?model=gpt-4o-realtime-preview'): string {
  return httpUrl.replace(/^http/, 'ws') + path
}

export interface HeldUpstream {
  url: string
  /** sockets accepted (after release) */
  sockets: WebSocket[]
  /** messages each accepted socket received, in order */
  received: Received[][]
  /** upgrade requests seen (held or not) */
  upgrades: IncomingMessage[]
  release: () => void
}

/**
 * An upstream whose WebSocket handshake waits for release(): everything the client sends until
 * then must be queued by the gateway.
 */
export async function startHeldUpstream (t: TestContext): Promise<HeldUpstream> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (p) => p.has('realtime') ? 'realtime' : false })
  const held: Array<() => void> = []
  let released = false
  const state: HeldUpstream = {
    url: '',
    sockets: [],
    received: [],
    upgrades: [],
    release: () => {
      released = true
      for (const go of held.splice(0)) go()
    }
  }
  const server: Server = createServer((_req, res) => { res.writeHead(404).end() })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    state.upgrades.push(req)
    socket.on('error', () => {})
    const accept = (): void => {
      if (socket.destroyed) return
      wss.handleUpgrade(req, socket, head, (ws) => {
        const inbox: Received[] = []
        state.sockets.push(ws)
        state.received.push(inbox)
        ws.on('message', (data, binary) => inbox.push({ data: data as Buffer, binary }))
        ws.on('error', () => {})
      })
    }
    if (released) accept()
    else held.push(accept)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.after(async () => {
    for (const ws of wss.clients) ws.terminate()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  return state
}

/** A TCP server that accepts connections and never says a word: the handshake never completes. */
export async function startSilentServer (t: TestContext): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A port with nothing listening on it. */
export async function closedPortUrl (): Promise<string> {
  const server = createNetServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise(resolve => server.close(resolve))
  return `http://127.0.0.1:${port}`
}
