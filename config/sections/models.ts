/**
 * The `/v1/models` cache: how long an upstream's model list is reused, and how many lists
 * (one per upstream target, credential and API flavour) are kept.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const modelsSchema = Type.Object({
  cacheTtlMs: Type.Integer({ default: 86_400_000, minimum: 0, description: 'how long a model list is served from the cache; 0 turns caching off' }),
  cacheMaxEntries: Type.Integer({ default: 1000, minimum: 1, description: 'model lists kept at most (least recently used dropped first)' })
}, { additionalProperties: false, default: {} })

export const models: ConfigSection = {
  key: 'models',
  schema: modelsSchema,
  options: [
    { path: 'models.cacheTtlMs', env: ['GATEWAY_MODELS_CACHE_TTL_MS'], flags: ['models-cache-ttl-ms'], type: 'integer', doc: 'model list cache lifetime (0: no cache)' },
    { path: 'models.cacheMaxEntries', env: ['GATEWAY_MODELS_CACHE_MAX_ENTRIES'], type: 'integer', doc: 'model lists kept at most' }
  ]
}
