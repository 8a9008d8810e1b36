/**
 * Embedded mock upstream: an OpenAI- and Anthropic-compatible fake LLM
 * server for tests, benchmarks and the demo.
 *
 * Endpoints: POST /v1/chat/completions, /v1/embeddings, /v1/messages,
 * /v1/messages/count_tokens, /v1/audio/speech; multipart POST /v1/files,
 * /v1/audio/transcriptions, /v1/audio/translations, /v1/images/edits,
 * /v1/images/variations, /v1/uploads/{id}/parts; GET /v1/models,
 * /v1/models/{id}, /v1/files/{id}/content, /healthz; the /v1/realtime
 * WebSocket; Azure's /openai/deployments/{deployment}/chat/completions,
 * /embeddings, /audio/transcriptions, /audio/translations and /images/edits.
 * Anything else is a 404 in OpenAI's error shape.
 *
 * Per-request behaviour comes from optional request headers, so one running
 * mock serves every test:
 * - x-mock-chunks / x-mock-delay-ms: stream length and pacing.
 * - x-mock-status (+ x-mock-retry-after): answer with that error status.
 * - x-mock-hold: <token>: hold the last stream chunk until release(token).
 * - x-mock-context-id, x-mock-split-tag, x-mock-split-network: tag the answer
 *   and make it hard to parse (tag across deltas, events across packets).
 * - x-mock-usage: cumulative: several running usage totals in Anthropic streams.
 * - x-mock-reasoning: N reasoning deltas before the answer (Chat's `reasoning_content`,
 *   Anthropic's thinking block); x-mock-cached-tokens: N prompt tokens read from the cache.
 * - A request whose tool choice forces a call (Chat `required` or a named function, Anthropic
 *   `any` or `tool`) is answered with tool calls, their arguments streamed in three pieces.
 * - x-mock-fault: one of FAULT_KINDS.
 * - x-mock-bytes: size of binary downloads and speech.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { consumeBody, MalformedBodyError } from './body.js'
import { readControls, type ControlDefaults } from './controls.js'
import type { Exchange, MockState } from './exchange.js'
import { applyFault } from './faults.js'
import { HoldRegistry } from './pacer.js'
import { RealtimeEndpoint } from './realtime.js'
import { errorBody, sendError, writeJson } from './respond.js'
import { matchRoute } from './routes.js'
import type { MockHandler, MockOptions, MockRequest, MockStream, MockUpstream, MockWsConnection } from './types.js'

export type * from './types.js'
export { mockPayload } from './payload.js'
export { mockEmbedding } from './openai.js'
export { FAULT_KINDS, type FaultKind } from './controls.js'

export const DEFAULT_MODELS: readonly string[] = ['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-latest', 'text-embedding-3-small']

const EMPTY_SHA256 = createHash('sha256').digest('hex')

function pathOf (url: string): string {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** Lower-cased header record; repeated headers joined like HTTP would fold them. */
function headerRecord (headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

function urlHost (host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

class MockServer implements MockUpstream, MockState {
  url = ''
  port = 0
  readonly requests: MockRequest[] = []
  readonly streams: MockStream[] = []
  readonly wsConnections: MockWsConnection[] = []

  readonly defaults: ControlDefaults
  readonly models: readonly string[]
  readonly created = Math.floor(Date.now() / 1000)
  readonly holds = new HoldRegistry()

  readonly #options: MockOptions
  readonly #record: boolean
  readonly #server: Server
  readonly #realtime = new RealtimeEndpoint(this.wsConnections)
  readonly #sockets = new Set<Socket>()
  readonly #overrides = new Map<string, MockHandler>()
  /** Requests per path; kept even when recording is off so count() always works. */
  readonly #pathCounts = new Map<string, number>()
  #nextId = 1
  #closing?: Promise<void>

  constructor (options: MockOptions) {
    this.#options = options
    this.defaults = { chunks: options.chunks ?? 20, delayMs: options.delayMs ?? 0 }
    this.models = options.models ?? DEFAULT_MODELS
    this.#record = options.record ?? true
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => this.#onRequest(req, res)
    this.#server = options.tls === undefined ? createServer(onRequest) : createHttpsServer(options.tls, onRequest)
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head))
  }

  async listen (): Promise<void> {
    const host = this.#options.host ?? '127.0.0.1'
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#options.port ?? 0, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    this.port = (this.#server.address() as AddressInfo).port
    this.url = `${this.#options.tls === undefined ? 'http' : 'https'}://${urlHost(host)}:${this.port}`
  }

  count (pathPrefix?: string): number {
    let total = 0
    for (const [path, n] of this.#pathCounts) {
      if (pathPrefix === undefined || path.startsWith(pathPrefix)) total += n
    }
    return total
  }

  release (token: string): void {
    this.holds.release(token)
  }

  reset (): void {
    this.requests.length = 0
    this.streams.length = 0
    this.wsConnections.length = 0
    this.#pathCounts.clear()
    this.holds.clear()
  }

  override (path: string, handler: MockHandler | null): void {
    if (handler === null) this.#overrides.delete(path)
    else this.#overrides.set(path, handler)
  }

  close (): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#realtime.close()
      this.#server.close(() => resolve())
      // Held, hanging and keep-alive connections would otherwise keep close() waiting.
      for (const socket of this.#sockets) socket.destroy()
    })
    return this.#closing
  }

  trackStream (stream: MockStream): void {
    if (this.#record) this.streams.push(stream)
  }

  /** Creates (and, when recording, stores) the record of a request whose body is still to come. */
  #recordRequest (req: IncomingMessage): MockRequest {
    const url = req.url ?? '/'
    const path = pathOf(url)
    this.#pathCounts.set(path, (this.#pathCounts.get(path) ?? 0) + 1)
    const record: MockRequest = {
      id: this.#nextId++,
      method: req.method ?? 'GET',
      url,
      path,
      headers: this.#record ? headerRecord(req.headers) : {},
      bodyBytes: 0,
      bodySha256: EMPTY_SHA256,
      closed: false
    }
    if (this.#record) this.requests.push(record)
    return record
  }

  #onRequest (req: IncomingMessage, res: ServerResponse): void {
    this.#handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      const status = err instanceof MalformedBodyError ? 400 : 500
      const message = err instanceof Error ? err.message : String(err)
      writeJson(res, status, errorBody(status, message, false))
    })
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record = this.#recordRequest(req)
    res.once('close', () => { record.closed = true })
    const controls = readControls(req.headers, this.defaults)
    if (controls.fault === 'reset-before-headers') {
      req.socket.destroy()
      return
    }
    const override = this.#overrides.get(record.path)
    const match = override === undefined ? matchRoute(record.method, record.path) : undefined
    const body = await consumeBody(req, record, match?.route.body ?? 'raw')
    const requestId = req.headers['x-request-id']
    if (typeof requestId === 'string') res.setHeader('x-request-id', requestId)
    // Overrides own the whole answer: x-mock-* headers are theirs to interpret.
    if (override !== undefined) return await override(req, res, record)

    const ex: Exchange = { req, res, record, controls, state: this, path: record.path, params: match?.params ?? [], body }
    if (applyFault(ex)) return
    if (controls.status !== undefined) return sendError(ex, controls.status)
    if (match === undefined) return sendError(ex, 404, `Invalid URL (${record.method} ${record.path})`)
    if (match.route.modelFromPath === true) ex.defaultModel = match.params[0]
    await match.route.handler(ex)
  }

  /** WebSocket upgrades are requests too: recorded and counted before the realtime endpoint takes over. */
  #onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const record = this.#recordRequest(req)
    socket.once('close', () => { record.closed = true })
    this.#realtime.handleUpgrade(req, socket, head, {
      path: record.path,
      url: record.url,
      headers: this.#record ? record.headers : headerRecord(req.headers),
      status: readControls(req.headers, this.defaults).status
    })
  }
}

/** Starts a mock upstream; it is listening when the promise resolves. */
export async function startMockUpstream (opts: MockOptions = {}): Promise<MockUpstream> {
  const server = new MockServer(opts)
  await server.listen()
  return server
}
