import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { setPath } from '../paths.js'
import { targetFields } from './targets.js'

export const upstreamSchema = Type.Object({
  url: Type.String({ default: 'https://api.openai.com', minLength: 1, description: 'upstream base URL; a bare host means https; "mock" starts the embedded mock upstream' }),
  key: Type.String({ default: '', description: 'upstream API key; empty passes the client credentials through' }),
  caFile: Type.String({ default: '', description: 'PEM file with extra CA certificates to trust for the upstream (self-signed upstreams)' }),
  connectTimeoutMs: Type.Integer({ default: 10_000, minimum: 1 }),
  firstByteTimeoutMs: Type.Integer({ default: 600_000, minimum: 1, description: 'time to the upstream response headers; long, because non-streaming completions are slow' }),
  idleTimeoutMs: Type.Integer({ default: 300_000, minimum: 1, description: 'largest gap between two body chunks; a healthy long stream is never cut' }),
  connections: Type.Integer({ default: 256, minimum: 1, description: 'keep-alive connections per upstream origin' }),
  // the upstream section is the target named `default`: it takes every per-target field
  ...targetFields
}, { additionalProperties: false, default: {} })

/** Seed 000's `-api` uses only scheme and host: any path in it is ignored. */
function applySeed000Api (value: unknown, raw: Record<string, unknown>): void {
  const text = String(value)
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`
  let origin: string
  try {
    origin = new URL(withScheme).origin
  } catch {
    throw new Error(`expected a URL like https://api.openai.com, got "${text}"`)
  }
  setPath(raw, 'upstream.url', origin)
}

export const upstream: ConfigSection = {
  key: 'upstream',
  schema: upstreamSchema,
  options: [
    { path: 'upstream.url', env: ['GATEWAY_UPSTREAM_URL', 'TARGET_HOST'], flags: ['upstream'], type: 'string', doc: 'upstream base URL (bare host → https)', seed: '001 TARGET_HOST' },
    { path: 'upstream.api', env: [], flags: ['api'], type: 'string', doc: 'upstream; only scheme and host are used', seed: '000 -api', apply: applySeed000Api },
    { path: 'upstream.key', env: ['GATEWAY_UPSTREAM_KEY', 'AUTH_BEARER'], flags: ['upstream-key', 'key'], type: 'string', secret: true, doc: 'upstream API key (Authorization: Bearer, x-api-key or api-key by provider)', seed: '000 -key, 001 AUTH_BEARER' },
    { path: 'upstream.caFile', env: ['GATEWAY_UPSTREAM_CA_FILE'], flags: ['upstream-ca-file'], type: 'string', doc: 'extra trusted CA (PEM) for the upstream' },
    { path: 'upstream.connectTimeoutMs', env: ['GATEWAY_CONNECT_TIMEOUT_MS'], type: 'integer', doc: 'upstream connect timeout' },
    { path: 'upstream.firstByteTimeoutMs', env: ['GATEWAY_FIRST_BYTE_TIMEOUT_MS'], type: 'integer', doc: 'upstream time-to-first-byte timeout' },
    { path: 'upstream.idleTimeoutMs', env: ['GATEWAY_IDLE_TIMEOUT_MS'], type: 'integer', doc: 'largest allowed gap between upstream body chunks' },
    { path: 'upstream.connections', env: ['GATEWAY_UPSTREAM_CONNECTIONS'], type: 'integer', doc: 'keep-alive connections per upstream origin' },
    { path: 'upstream.keys.*.key', env: ['GATEWAY_UPSTREAM_KEYS'], type: 'list', secret: true, doc: 'upstream key pool, comma-separated (round robin, failover on 429)', apply: (v, raw) => setPath(raw, 'upstream.keys', v) },
    { path: 'upstream.provider', env: ['GATEWAY_UPSTREAM_PROVIDER'], type: 'string', doc: 'openai | anthropic | azure | openai-compatible | auto' },
    { path: 'upstream.dialects', env: ['GATEWAY_UPSTREAM_DIALECTS'], type: 'list', doc: 'API dialects the default target offers (chat, responses, messages); empty = by provider; others are translated' },
    { path: 'upstream.proxy', env: ['GATEWAY_UPSTREAM_PROXY'], type: 'string', secret: true, doc: 'outbound proxy for the default target ("direct" = none)', seed: '004 proxy' },
    { path: 'upstream.headers', env: [], type: 'json', secret: true, doc: 'extra request headers of the default target: their values are secrets (they often carry credentials)' },
    { path: 'upstream.models', env: ['GATEWAY_UPSTREAM_MODELS'], type: 'list', doc: 'model globs the default target serves (routing by model; see docs/fallback.md)' },
    { path: 'upstream.keyCooldownMs', env: ['GATEWAY_KEY_COOLDOWN_MS'], type: 'integer', doc: 'how long a key that got a 401 is set aside' }
  ]
}
