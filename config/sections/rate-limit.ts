import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const rateLimitSchema = Type.Object({
  enabled: Type.Boolean({ default: true }),
  max: Type.Integer({ default: 100, minimum: 1, description: 'requests per window, per client key or else per address' }),
  windowMs: Type.Integer({ default: 60_000, minimum: 1, description: 'fixed window length' }),
  failClosed: Type.Boolean({ default: false, description: 'with Redis unreachable, refuse (503) instead of letting requests through' }),
  maxConcurrent: Type.Integer({ default: 64, minimum: 0, description: 'requests in flight at once per client key, or else per address, in each gateway process (429 above); 0 = no cap' }),
  ipv6Subnet: Type.Integer({ default: 64, minimum: 1, maximum: 128, description: 'IPv6 clients are counted per network of this size (rate limit, refused keys, concurrency, automatic blacklist)' }),
  maxTracked: Type.Integer({ default: 10_000, minimum: 1, description: 'counters kept in memory without Redis (LRU bound)' })
}, { additionalProperties: false, default: {} })

export const rateLimit: ConfigSection = {
  key: 'rateLimit',
  schema: rateLimitSchema,
  options: [
    { path: 'rateLimit.enabled', env: ['GATEWAY_RATE_LIMIT_ENABLED'], type: 'boolean', doc: 'limit requests per client key / address' },
    { path: 'rateLimit.max', env: ['GATEWAY_RATE_LIMIT_REQUESTS', 'RATE_LIMIT_REQUESTS'], type: 'integer', doc: 'requests allowed per window', seed: '002' },
    { path: 'rateLimit.windowMs', env: ['GATEWAY_RATE_LIMIT_INTERVAL_MS', 'RATE_LIMIT_INTERVAL'], type: 'integer', doc: 'window length in ms', seed: '002' },
    { path: 'rateLimit.maxConcurrent', env: ['GATEWAY_RATE_LIMIT_MAX_CONCURRENT'], type: 'integer', doc: 'requests in flight at once per client key (or per address without one), per gateway process; more get 429 concurrency_limit (0 = no cap). Keep it well below upstream.connections' },
    { path: 'rateLimit.failClosed', env: ['GATEWAY_RATE_LIMIT_FAIL_CLOSED'], type: 'boolean', doc: 'refuse requests (503) while Redis is unreachable instead of allowing them' },
    { path: 'rateLimit.ipv6Subnet', env: ['GATEWAY_RATE_LIMIT_IPV6_SUBNET'], type: 'integer', doc: 'prefix length IPv6 clients are grouped by (rate limit, refused keys, concurrency, automatic blacklist)' },
    { path: 'rateLimit.maxTracked', env: ['GATEWAY_RATE_LIMIT_MAX_TRACKED'], type: 'integer', doc: 'bound on in-memory counters (without Redis)' }
  ]
}
