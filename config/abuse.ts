/**
 * Boot-time checks of the abuse-protection settings that JSON schema cannot express. Address lists
 * (trusted proxies, allow/deny lists, blacklist exemptions) are rewritten in normal form, so a typo
 * stops the process with one line instead of silently matching nothing, and every plugin receives
 * lists it can trust. Called from `postProcess` before the config is frozen.
 */
import { parseRule, ruleText } from '../src/lib/ip.js'
import { ConfigError } from './errors.js'
import type { GatewayConfig } from './schema.js'

export function normalizeAbuse (config: GatewayConfig, origins: Map<string, string>): void {
  config.clientIp.trustedProxies = normalizeAddressList(config.clientIp.trustedProxies, { path: 'clientIp.trustedProxies', origins, keywords: PROXY_KEYWORDS })
  config.ipFilter.allow = normalizeAddressList(config.ipFilter.allow, { path: 'ipFilter.allow', origins })
  config.ipFilter.deny = normalizeAddressList(config.ipFilter.deny, { path: 'ipFilter.deny', origins })
  // an env list cannot be empty (empty variables are ignored), so "none" says "no exemption"
  const ignore = config.blacklist.ignore.length === 1 && config.blacklist.ignore[0].toLowerCase() === 'none' ? [] : config.blacklist.ignore
  config.blacklist.ignore = normalizeAddressList(ignore, { path: 'blacklist.ignore', origins })
  config.redis.url = normalizeRedisUrl(config.redis.url, origins)
}

function normalizeRedisUrl (value: string, origins: Map<string, string>): string {
  if (value === '') return value
  let url: URL | null = null
  try { url = new URL(value) } catch {}
  if (url === null || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    // the value may hold a password: name the key, not the value
    throw new ConfigError(`redis.url (${origins.get('redis.url') ?? 'config'}): expected a URL like redis://host:6379/0 or rediss://user:password@host:6380`)
  }
  return value
}

/** proxy-addr's named ranges, accepted for trusted proxies only */
export const PROXY_KEYWORDS = ['loopback', 'linklocal', 'uniquelocal']

export interface ListOptions {
  /** dotted config path, for the error line */
  path: string
  origins: Map<string, string>
  keywords?: readonly string[]
}

/** Normal forms of every entry; a malformed one is a ConfigError naming the entry. */
export function normalizeAddressList (list: readonly string[], opts: ListOptions): string[] {
  const source = opts.origins.get(opts.path) ?? 'config'
  return list.map((entry, i) => {
    if (opts.keywords?.includes(entry.trim().toLowerCase()) === true) return entry.trim().toLowerCase()
    const rule = parseRule(entry)
    if (rule === null) {
      const names = opts.keywords !== undefined ? `, or one of ${opts.keywords.join(' | ')}` : ''
      throw new ConfigError(`${opts.path}[${i}] (${source}) = ${JSON.stringify(entry)}: expected an IP address or CIDR network like 10.0.0.0/8 or 2001:db8::/32${names}`)
    }
    return ruleText(rule)
  })
}
