import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { errorBody } from './respond.js'
import type { MockWsConnection } from './types.js'

export const REALTIME_PATH = '/v1/realtime'

/** Browsers smuggle the API key in a sub-protocol; it must never be chosen. */
const KEY_PROTOCOL_PREFIX = 'openai-insecure-api-key.'

export interface UpgradeInfo {
  path: string
  url: string
  headers: Record<string, string>
  /** `x-mock-status` of the upgrade request, if any. */
  status?: number
}

/** 'realtime' when offered, else the first offer that is not an API key. */
export function pickProtocol (offered: Set<string>): string | false {
  if (offered.has('realtime')) return 'realtime'
  for (const protocol of offered) {
    if (!protocol.startsWith(KEY_PROTOCOL_PREFIX)) return protocol
  }
  return false
}

/** Answers an upgrade with a plain HTTP error and closes the connection. */
function refuse (socket: Duplex, status: number, message: string): void {
  const body = errorBody(status, message, false)
  socket.once('finish', () => socket.destroy())
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'connection: close\r\ncontent-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

function parseMessage (text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

type Send = (event: Record<string, unknown>) => void

/** Scripted answer to `response.create`: two text deltas, then usage. */
function respond (send: Send, responseId: string): void {
  const response = { id: responseId, object: 'realtime.response' }
  send({ type: 'response.created', response: { ...response, status: 'in_progress', output: [], usage: null } })
  for (const delta of ['Hello', ' from the mock']) {
    send({ type: 'response.output_text.delta', response_id: responseId, item_id: `item_${responseId}`, output_index: 0, content_index: 0, delta })
  }
  send({
    type: 'response.done',
    response: { ...response, status: 'completed', output: [], usage: { total_tokens: 30, input_tokens: 10, output_tokens: 20 } }
  })
}

function closeAsAsked (ws: WebSocket, message: { code?: unknown, reason?: unknown }): void {
  const code = typeof message.code === 'number' ? message.code : 1000
  const reason = typeof message.reason === 'string' ? message.reason : ''
  try {
    ws.close(code, reason)
  } catch {
    // Codes a server may not send (1005, 1006, out of range) end as a policy violation instead.
    ws.close(1008, 'invalid close code requested')
  }
}

/**
 * One realtime session: the scripted server side of OpenAI's Realtime API,
 * reduced to what a gateway has to relay.
 */
function serveSession (ws: WebSocket, connection: MockWsConnection, sessionId: string, model: string): void {
  let events = 0
  const send: Send = (event) => ws.send(JSON.stringify({ event_id: `event_${sessionId}_${++events}`, ...event }))
  send({ type: 'session.created', session: { id: sessionId, object: 'realtime.session', model } })
  ws.on('message', (data, isBinary) => {
    connection.messages++
    if (isBinary) return ws.send(toBuffer(data), { binary: true })
    const message = parseMessage(toBuffer(data).toString('utf8'))
    const type = typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined
    if (type === 'response.create') respond(send, `resp_${sessionId}_${events}`)
    else if (type === 'mock.close') closeAsAsked(ws, message as { code?: unknown, reason?: unknown })
    else if (type === 'mock.terminate') ws.terminate()
    else send({ type: 'mock.echo', data: message })
  })
  ws.on('close', (code, reason) => {
    connection.closeCode = code
    connection.closeReason = reason.toString()
  })
  // A peer that vanishes mid-frame must not take the process down.
  ws.on('error', () => ws.terminate())
}

/** The `/v1/realtime` WebSocket endpoint, fed from the HTTP server's upgrade event. */
export class RealtimeEndpoint {
  readonly #wss = new WebSocketServer({ noServer: true, handleProtocols: pickProtocol, perMessageDeflate: false })
  readonly #connections: MockWsConnection[]
  #sessions = 0

  constructor (connections: MockWsConnection[]) {
    this.#connections = connections
  }

  handleUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer, info: UpgradeInfo): void {
    socket.on('error', () => socket.destroy())
    if (info.path !== REALTIME_PATH) return refuse(socket, 404, `Invalid URL (GET ${info.path})`)
    if (info.status !== undefined) return refuse(socket, info.status, `Mock error ${info.status}`)
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: MockWsConnection = { path: info.path, url: info.url, headers: info.headers, protocol: ws.protocol, messages: 0 }
      this.#connections.push(connection)
      const model = new URL(info.url, 'ws://mock').searchParams.get('model') ?? ''
      serveSession(ws, connection, `sess_mock${++this.#sessions}`, model)
    })
  }

  /** Drops every client at once; close() is no time for closing handshakes. */
  close (): void {
    for (const ws of this.#wss.clients) ws.terminate()
    this.#wss.close()
  }
}
