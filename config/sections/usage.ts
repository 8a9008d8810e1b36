/**
 * Usage records (one per request, with token counts) and the totals behind `GET /admin/usage`.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const usageSchema = Type.Object({
  enabled: Type.Boolean({ default: true, description: 'write one usage record per request and keep totals' }),
  privacy: Type.Boolean({ default: false, description: 'leave the client IP out of usage records' }),
  streamUsage: Type.Boolean({ default: true, description: 'ask OpenAI-style upstreams for usage on streams (stream_options.include_usage) and hide the extra chunk from clients that did not ask' }),
  maxJsonBytes: Type.Integer({ default: 8 * 1024 * 1024, minimum: 1024, description: 'JSON responses above this size are not read for usage' }),
  bucketSeconds: Type.Integer({ default: 60, minimum: 1, maximum: 86_400, description: 'granularity of the usage totals' }),
  retentionHours: Type.Integer({ default: 24, minimum: 1, maximum: 24 * 90, description: 'how long usage totals are kept' }),
  maxGroups: Type.Integer({ default: 1000, minimum: 1, description: 'distinct (key, model, target) groups per bucket; more fold into "other"' }),
  maxMemoryBytes: Type.Integer({ default: 64 * 1024 * 1024, minimum: 1024 * 1024, description: 'estimated memory of the in-memory usage totals; beyond it the oldest buckets are dropped before their retention' })
}, { additionalProperties: false, default: {} })

export const usage: ConfigSection = {
  key: 'usage',
  schema: usageSchema,
  options: [
    { path: 'usage.enabled', env: ['GATEWAY_USAGE'], type: 'boolean', doc: 'usage records and totals on/off' },
    { path: 'usage.privacy', env: ['GATEWAY_PRIVACY_MODE'], flags: ['privacy'], type: 'boolean', bare: true, doc: 'leave the client IP out of usage records', seed: '000 (its "client IP privacy")' },
    { path: 'usage.streamUsage', env: ['GATEWAY_STREAM_USAGE'], type: 'boolean', doc: 'ask upstreams for stream usage and hide the extra usage chunk from clients that did not ask' },
    { path: 'usage.maxJsonBytes', env: ['GATEWAY_USAGE_MAX_JSON_BYTES'], type: 'integer', doc: 'largest JSON response read for token counts' },
    { path: 'usage.bucketSeconds', env: ['GATEWAY_USAGE_BUCKET_SECONDS'], type: 'integer', doc: 'granularity of usage totals in seconds' },
    { path: 'usage.retentionHours', env: ['GATEWAY_USAGE_RETENTION_HOURS'], type: 'integer', doc: 'hours of usage totals kept (memory or Redis)' },
    { path: 'usage.maxGroups', env: ['GATEWAY_USAGE_MAX_GROUPS'], type: 'integer', doc: 'distinct key/model/target groups per bucket' },
    { path: 'usage.maxMemoryBytes', env: ['GATEWAY_USAGE_MAX_MEMORY_BYTES'], type: 'integer', doc: 'estimated bytes of in-memory usage totals; the oldest buckets are dropped beyond it' }
  ]
}
