/**
 * Seed 004 (free-sophnet-api) kept its settings in `openai-chat-proxy-config.yaml` with flat
 * snake_case keys. Such a file is recognised by its keys and mapped onto the native schema, so it
 * runs unchanged. Each row names the native path it lands on; sections added by later concerns
 * add their rows here.
 */
import { setPath } from './paths.js'

type Convert = (value: unknown, out: Record<string, unknown>) => void

const at = (path: string, scale = 1): Convert => (value, out) => {
  if (value === null || value === undefined) return // seed 004: a present-but-empty key means "default"
  setPath(out, path, typeof value === 'number' ? value * scale : value)
}

export const SEED004_KEYS: Record<string, Convert> = {
  base_url: at('upstream.url'),
  timeout: at('upstream.connectTimeoutMs', 1000), // seconds in seed 004, connect timeout only
  log_requests: at('log.requests'),
  log_responses: at('log.responses'),
  route_prefix: () => {}, // printed but never used by seed 004
  ip_whitelist: at('ipFilter.allow'), // exact strings in seed 004; CIDRs accepted here
  ip_blacklist: at('ipFilter.deny')
}

/** Keys that only seed 004 files have; one of them is enough to recognise the format. */
const MARKERS = ['base_url', 'proxy_url_path', 'field_aliases', 'api_keys', 'log_requests', 'log_responses', 'ip_whitelist', 'ip_blacklist', 'route_prefix']

export function isSeed004File (doc: Record<string, unknown>): boolean {
  return Object.keys(doc).some(k => MARKERS.includes(k))
}

export function convertSeed004 (doc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(doc)) {
    const convert = SEED004_KEYS[key]
    // unknown keys stay as they are, so schema validation names them
    if (convert === undefined) out[key] = value
    else convert(value, out)
  }
  return out
}
