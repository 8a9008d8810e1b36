/**
 * Seed 004 (free-sophnet-api) kept its settings in `openai-chat-proxy-config.yaml` with flat
 * snake_case keys. Such a file is recognised by its keys and mapped onto the native schema, so it
 * runs unchanged. Each row names the native path it lands on; sections added by later concerns
 * add their rows here.
 */
import { ConfigError } from './errors.js'
import { getPath, isPlainObject, setPath } from './paths.js'

type Convert = (value: unknown, out: Record<string, unknown>) => void

const at = (path: string, scale = 1): Convert => (value, out) => {
  if (value === null || value === undefined) return // seed 004: a present-but-empty key means "default"
  setPath(out, path, typeof value === 'number' ? value * scale : value)
}

/**
 * `api_keys: {frontend: real}` maps a client key to the upstream key sent in its place. Map keys
 * are secrets, so the map becomes a list of named entries (the log filter reads values only).
 * Later seed 004 versions took a plain list of client keys. Seed 004 forwarded unknown keys
 * unchanged; here they are refused unless `auth.passThroughUnknown` is set.
 */
const apiKeys: Convert = (value, out) => {
  if (value === null || value === undefined) return
  let entries: Array<{ name: string, key: string, upstreamKey?: string }>
  if (Array.isArray(value)) {
    entries = value.map((key, i) => ({ name: `api-key-${i + 1}`, key: String(key) }))
  } else if (isPlainObject(value)) {
    entries = Object.entries(value).map(([key, real], i) => ({ name: `api-key-${i + 1}`, key, upstreamKey: String(real) }))
  } else {
    throw new ConfigError(`api_keys: expected a mapping of client key to upstream key, got ${typeof value}`)
  }
  const existing = getPath(out, 'auth.keys')
  setPath(out, 'auth.keys', [...(Array.isArray(existing) ? existing : []), ...entries])
}

export const SEED004_KEYS: Record<string, Convert> = {
  api_keys: apiKeys,
  base_url: at('upstream.url'),
  timeout: at('upstream.connectTimeoutMs', 1000), // seconds in seed 004, connect timeout only
  log_requests: at('log.requests'),
  log_responses: at('log.responses'),
  field_aliases: at('transforms.fieldAliases'),
  route_prefix: () => {}, // printed but never used by seed 004
  proxy: at('upstream.proxy'),
  // seed 004 sends its one route to base_url + proxy_url_path
  proxy_url_path: (value, out) => {
    if (typeof value === 'string' && value !== '') setPath(out, 'upstream.pathRewrites', { '/v1/chat/completions': value })
  },
  ip_whitelist: at('ipFilter.allow'), // exact strings in seed 004; CIDRs accepted here
  ip_blacklist: at('ipFilter.deny')
}

/** Keys that only seed 004 files have; one of them is enough to recognise the format. */
const MARKERS = ['base_url', 'proxy_url_path', 'field_aliases', 'api_keys', 'log_requests', 'log_responses', 'ip_whitelist', 'ip_blacklist', 'route_prefix']

export function isSeed004File (doc: Record<string, unknown>): boolean {
  return Object.keys(doc).some(k => MARKERS.includes(k))
}

export function convertSeed004 (doc: Record<string, unknown>): Record<string, unknown> {
  // unknown keys (native sections, typos) stay as they are, so schema validation names them;
  // they are copied first so seed keys mapped into the same section add to them
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(doc)) {
    if (SEED004_KEYS[key] === undefined) out[key] = value
  }
  for (const [key, value] of Object.entries(doc)) SEED004_KEYS[key]?.(value, out)
  return out
}
