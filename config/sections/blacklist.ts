import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const blacklistSchema = Type.Object({
  enabled: Type.Boolean({ default: true }),
  threshold: Type.Integer({ default: 10, minimum: 1, description: 'errors within the window that blacklist an address' }),
  windowMs: Type.Integer({ default: 86_400_000, minimum: 1000, description: 'error counting window, from the first counted error' }),
  ttlMs: Type.Integer({ default: 0, minimum: 0, maximum: 3_153_600_000_000, description: 'how long an automatic entry lasts (at most 100 years); 0 = until removed' }),
  dir: Type.String({ default: '', description: 'directory holding black.json; empty → kept in memory only' }),
  ignore: Type.Array(Type.String(), { default: ['127.0.0.0/8', '::1'], description: 'addresses never blacklisted automatically' }),
  statuses: Type.Array(Type.Integer({ minimum: 400, maximum: 499 }), { default: [400, 401, 404], description: 'gateway answers that count as errors' }),
  maxTracked: Type.Integer({ default: 10_000, minimum: 1, description: 'addresses whose errors are counted in memory (LRU bound)' }),
  maxEntries: Type.Integer({ default: 100_000, minimum: 1, description: 'largest number of automatic blacklist entries' })
}, { additionalProperties: false, default: {} })

export const blacklist: ConfigSection = {
  key: 'blacklist',
  schema: blacklistSchema,
  options: [
    { path: 'blacklist.enabled', env: ['GATEWAY_BLACKLIST_ENABLED'], type: 'boolean', doc: 'blacklist addresses that keep making errors' },
    { path: 'blacklist.threshold', env: ['GATEWAY_BLACKLIST_THRESHOLD', 'IP_ERROR_THRESHOLD'], type: 'integer', doc: 'errors (400, 401, 404 from the gateway itself) that blacklist an address', seed: '002' },
    { path: 'blacklist.windowMs', env: ['GATEWAY_BLACKLIST_WINDOW_MS', 'ERROR_WINDOW'], type: 'integer', doc: 'error counting window in ms', seed: '002' },
    { path: 'blacklist.ttlMs', env: ['GATEWAY_BLACKLIST_TTL_MS', 'BLACKLIST_TTL'], type: 'integer', doc: 'lifetime of an automatic entry in ms; 0 = never expires', seed: '002' },
    { path: 'blacklist.dir', env: ['GATEWAY_DATA_DIR'], type: 'string', doc: 'directory for black.json (written atomically); empty = BASE_PATH (storage.basePath), or memory only when that is empty too', seed: '002 BASE_PATH/black.json' },
    { path: 'blacklist.ignore', env: ['GATEWAY_BLACKLIST_IGNORE'], type: 'list', doc: 'addresses/CIDRs never blacklisted automatically ("none" for no exemption)' },
    { path: 'blacklist.maxTracked', env: ['GATEWAY_BLACKLIST_MAX_TRACKED'], type: 'integer', doc: 'bound on addresses whose errors are counted in memory' },
    { path: 'blacklist.maxEntries', env: ['GATEWAY_BLACKLIST_MAX_ENTRIES'], type: 'integer', doc: 'bound on automatic blacklist entries' }
  ]
}
