import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

const MiB = 1024 * 1024

export const realtimeSchema = Type.Object({
  openTimeoutMs: Type.Integer({ default: 10_000, minimum: 1, description: 'time the upstream has to accept the WebSocket; then the client is closed with 1013' }),
  idleTimeoutMs: Type.Integer({ default: 300_000, minimum: 0, description: 'close a session with no message either way for this long; 0 = never' }),
  maxSessionMs: Type.Integer({ default: 3_600_000, minimum: 0, description: 'longest session; 0 = unlimited' }),
  keepaliveIntervalMs: Type.Integer({ default: 30_000, minimum: 0, description: 'ping both peers this often; a peer that missed the previous pong is dropped; 0 = off' }),
  maxPayload: Type.Integer({ default: 16 * MiB, minimum: 1024, description: 'largest message accepted from the client and from the upstream (1009 above)' }),
  queueMaxMessages: Type.Integer({ default: 256, minimum: 1, description: 'client messages held while the upstream opens (1008 above)' }),
  queueMaxBytes: Type.Integer({ default: 16 * MiB, minimum: 1024, description: 'bytes of client messages held while the upstream opens (1009 above)' })
}, { additionalProperties: false, default: {} })

export const realtime: ConfigSection = {
  key: 'realtime',
  schema: realtimeSchema,
  options: [
    { path: 'realtime.openTimeoutMs', env: ['GATEWAY_REALTIME_OPEN_TIMEOUT_MS'], type: 'integer', doc: 'upstream WebSocket open timeout (client closed with 1013)' },
    { path: 'realtime.idleTimeoutMs', env: ['GATEWAY_REALTIME_IDLE_TIMEOUT_MS'], type: 'integer', doc: 'close a realtime session idle this long (0 = never)' },
    { path: 'realtime.maxSessionMs', env: ['GATEWAY_REALTIME_MAX_SESSION_MS'], type: 'integer', doc: 'longest realtime session (0 = unlimited)' },
    { path: 'realtime.keepaliveIntervalMs', env: ['GATEWAY_REALTIME_KEEPALIVE_MS'], type: 'integer', doc: 'WebSocket ping interval towards both peers (0 = off)' },
    { path: 'realtime.maxPayload', env: ['GATEWAY_REALTIME_MAX_PAYLOAD'], type: 'integer', doc: 'largest realtime message in bytes, both directions' },
    { path: 'realtime.queueMaxMessages', env: ['GATEWAY_REALTIME_QUEUE_MAX_MESSAGES'], type: 'integer', doc: 'client messages queued before the upstream opens' },
    { path: 'realtime.queueMaxBytes', env: ['GATEWAY_REALTIME_QUEUE_MAX_BYTES'], type: 'integer', doc: 'bytes queued before the upstream opens' }
  ]
}
