import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { setPath } from '../paths.js'

export const serverSchema = Type.Object({
  host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'listen address' }),
  port: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  bodyLimit: Type.Integer({ default: 32 * 1024 * 1024, minimum: 1024, description: 'request body limit in bytes' }),
  shutdownGraceMs: Type.Integer({ default: 30_000, minimum: 0 }),
  headersTimeoutMs: Type.Integer({ default: 30_000, minimum: 1000, description: 'time a client has to send its request headers (slowloris guard)' }),
  bodyIdleTimeoutMs: Type.Integer({ default: 30_000, minimum: 0, description: 'longest silence while a client sends its request body; 0 = none' }),
  bodyMinBytesPerSecond: Type.Integer({ default: 1024, minimum: 0, description: 'slowest average pace of a request body after its first bodyIdleTimeoutMs (headersTimeoutMs when that is 0); slower is refused with 408; 0 = none' }),
  responseStallTimeoutMs: Type.Integer({ default: 60_000, minimum: 0, description: 'longest time a client may leave sent answer bytes unread before its connection is closed; 0 = none' }),
  keepAliveTimeoutMs: Type.Integer({ default: 72_000, minimum: 1000 }),
  idleGcMs: Type.Integer({ default: 60000, minimum: 0, description: 'quiet time after a burst of requests before one garbage collection gives memory back; 0 = never' })
}, { additionalProperties: false, default: {} })

/** Go-style listen address (`:9001`, `0.0.0.0:9001`, `[::1]:9001`) as used by seed 003. */
function applyListenAddress (value: unknown, raw: Record<string, unknown>): void {
  const text = String(value)
  const idx = text.lastIndexOf(':')
  if (idx === -1) throw new Error(`expected host:port or :port, got "${text}"`)
  const host = text.slice(0, idx).replace(/^\[|\]$/g, '')
  const port = Number(text.slice(idx + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`expected a port 0-65535 in "${text}"`)
  setPath(raw, 'server.host', host === '' ? '0.0.0.0' : host)
  setPath(raw, 'server.port', port)
}

export const server: ConfigSection = {
  key: 'server',
  schema: serverSchema,
  options: [
    { path: 'server.host', env: ['GATEWAY_HOST'], flags: ['host', 'l'], type: 'string', doc: 'listen address (use 0.0.0.0 in containers)', seed: '000 -l' },
    { path: 'server.port', env: ['GATEWAY_PORT', 'PROXY_PORT'], flags: ['port', 'p'], type: 'integer', doc: 'listen port', seed: '000 -p, 001/002 PROXY_PORT' },
    { path: 'server.listen', env: ['OPENAI_PROXY_LISTEN'], flags: ['listen'], type: 'string', doc: 'listen address as host:port or :port', seed: '003', apply: applyListenAddress },
    { path: 'server.bodyLimit', env: ['GATEWAY_BODY_LIMIT'], flags: ['body-limit'], type: 'integer', doc: 'largest accepted request body in bytes (413 above)' },
    { path: 'server.shutdownGraceMs', env: ['GATEWAY_SHUTDOWN_GRACE_MS'], flags: ['shutdown-grace-ms'], type: 'integer', doc: 'how long in-flight requests may finish after SIGTERM' },
    { path: 'server.headersTimeoutMs', env: ['GATEWAY_HEADERS_TIMEOUT_MS'], type: 'integer', doc: 'time a client has to send its request headers' },
    { path: 'server.bodyIdleTimeoutMs', env: ['GATEWAY_BODY_IDLE_TIMEOUT_MS'], type: 'integer', doc: 'longest silence while a client sends its request body (0 = none)' },
    { path: 'server.bodyMinBytesPerSecond', env: ['GATEWAY_BODY_MIN_BYTES_PER_SECOND'], type: 'integer', doc: 'slowest average pace of a request body once its first bodyIdleTimeoutMs are over; a trickle below it is refused with 408 (0 = none)' },
    { path: 'server.responseStallTimeoutMs', env: ['GATEWAY_RESPONSE_STALL_TIMEOUT_MS'], type: 'integer', doc: 'longest time a client may leave an answer unread (its connection full) before the connection is closed and the upstream released (0 = none)' },
    { path: 'server.keepAliveTimeoutMs', env: ['GATEWAY_KEEP_ALIVE_TIMEOUT_MS'], type: 'integer', doc: 'idle keep-alive timeout for client connections' },
    { path: 'server.idleGcMs', env: ['GATEWAY_IDLE_GC_MS'], type: 'integer', doc: 'quiet time after a burst (1,000+ requests) before one garbage collection returns memory (0 = never)' }
  ]
}
