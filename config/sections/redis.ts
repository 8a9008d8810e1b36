import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const redisSchema = Type.Object({
  url: Type.String({ default: '', description: 'redis:// or rediss:// URL; empty → all shared state stays in memory' }),
  keyPrefix: Type.String({ default: 'llm-gateway:', description: 'prefix of every key and channel, so gateways can share a Redis with others' }),
  commandTimeoutMs: Type.Integer({ default: 1000, minimum: 10, description: 'a Redis command slower than this counts as a failure' }),
  coolDownMs: Type.Integer({ default: 5000, minimum: 10, description: 'after a Redis failure or timeout, requests stop waiting on Redis until a PING, sent this often, is answered' }),
  syncIntervalMs: Type.Integer({ default: 30_000, minimum: 100, description: 'full re-read of the shared blacklist, besides pub/sub updates' })
}, { additionalProperties: false, default: {} })

export const redis: ConfigSection = {
  key: 'redis',
  schema: redisSchema,
  options: [
    { path: 'redis.url', env: ['GATEWAY_REDIS_URL', 'REDIS_URL'], type: 'string', secret: true, doc: 'Redis shared by all replicas (rate limits, error counters, blacklist); empty = in memory' },
    { path: 'redis.keyPrefix', env: ['GATEWAY_REDIS_KEY_PREFIX'], type: 'string', doc: 'prefix for Redis keys and channels' },
    { path: 'redis.commandTimeoutMs', env: ['GATEWAY_REDIS_COMMAND_TIMEOUT_MS'], type: 'integer', doc: 'Redis command timeout in ms' },
    { path: 'redis.coolDownMs', env: ['GATEWAY_REDIS_COOL_DOWN_MS'], type: 'integer', doc: 'after a Redis failure or timeout, requests skip Redis (as if it were down) until a PING sent every this many ms is answered' },
    { path: 'redis.syncIntervalMs', env: ['GATEWAY_REDIS_SYNC_INTERVAL_MS'], type: 'integer', doc: 'period of the full blacklist re-read from Redis' }
  ]
}
