/**
 * Client addresses in one normal form, used alike for checking, recording, rate-limit keys and
 * log lines: IPv4 as a dotted quad, IPv6 in RFC 5952 form (lower case, zeros compressed), with no
 * brackets and no zone id, and IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket
 * reports for an IPv4 client) turned into plain IPv4. One function for every use, because an
 * address recorded in one form and checked in another is never blocked.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'

export type Family = 'ipv4' | 'ipv6'

/** The normal form of a single address, or null when `text` is not one. */
export function canonicalIp (text: string): string | null {
  let s = text.trim()
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1)
  if (isIPv4(s)) return s
  // a zone id (`fe80::1%eth0`) names a local interface: it is not part of the address
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  if (!isIPv6(s)) return null
  // the WHATWG URL parser serialises IPv6 hosts in RFC 5952 form (and prints mapped IPv4 as hex)
  const host = new URL(`http://[${s}]/`).hostname.slice(1, -1)
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host)
  if (mapped === null) return host
  const hi = parseInt(mapped[1], 16)
  const lo = parseInt(mapped[2], 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}

export function familyOf (ip: string): Family {
  return ip.includes(':') ? 'ipv6' : 'ipv4'
}

/**
 * The client address of a request in normal form. `raw` is Fastify's `request.ip`: the socket
 * peer, or with trusted proxies the first untrusted X-Forwarded-For hop, which some proxies send
 * with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`). A value that is no address at all (only a
 * misconfigured trusted proxy can produce one) is kept, cut short, so it still has one stable key.
 */
export function clientIpOf (raw: string | undefined): string {
  if (raw === undefined || raw === '') return 'unknown'
  const direct = canonicalIp(raw)
  if (direct !== null) return direct
  const withPort = /^\[([^\]]+)\]:\d{1,5}$/.exec(raw) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(raw)
  const stripped = withPort !== null ? canonicalIp(withPort[1]) : null
  return stripped ?? raw.trim().toLowerCase().slice(0, 64)
}

/** One allow/deny rule: a single address (prefix null) or a network. */
export interface AddressRule {
  address: string
  prefix: number | null
  family: Family
}

/**
 * Parses `1.2.3.4`, `10.0.0.0/8`, `2001:db8::/32`, `[2001:db8::1]`, `fe80::1%eth0`,
 * `::ffff:10.0.0.0/104` (mapped networks become IPv4 networks). Null when malformed.
 */
export function parseRule (text: string): AddressRule | null {
  const trimmed = text.trim()
  const slash = trimmed.indexOf('/')
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash)
  const address = canonicalIp(addressText)
  if (address === null) return null
  const family = familyOf(address)
  if (slash === -1) return { address, prefix: null, family }
  const prefixText = trimmed.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText)) return null
  let prefix = Number(prefixText)
  // an IPv4-mapped network was written in IPv6 bits: its IPv4 part starts at bit 96
  const writtenAsV6 = addressText.includes(':')
  if (family === 'ipv4' && writtenAsV6) {
    if (prefix < 96 || prefix > 128) return null
    prefix -= 96
  }
  if (prefix > (family === 'ipv4' ? 32 : 128)) return null
  return { address, prefix, family }
}

export function ruleText (rule: AddressRule): string {
  return rule.prefix === null ? rule.address : `${rule.address}/${rule.prefix}`
}

export function blockListOf (rules: readonly AddressRule[]): BlockList {
  const list = new BlockList()
  for (const r of rules) {
    if (r.prefix === null) list.addAddress(r.address, r.family)
    else list.addSubnet(r.address, r.prefix, r.family)
  }
  return list
}

/** Whether a normal-form client address matches a list (a non-address never matches). */
export function listHas (list: BlockList, ip: string): boolean {
  const family = familyOf(ip)
  if (family === 'ipv4' ? !isIPv4(ip) : !isIPv6(ip)) return false
  return list.check(ip, family)
}

/**
 * The network of an IPv6 address at `bits` (`2001:db8:1:2::/64`), so one client holding a whole
 * /64 cannot dodge a per-address limit by rotating addresses. IPv4 addresses are returned as is.
 */
export function networkKey (ip: string, bits: number): string {
  if (familyOf(ip) === 'ipv4' || bits >= 128 || !isIPv6(ip)) return ip
  return `${networkAddress(ip, bits)}/${bits}`
}

/** The first address of an IPv6 address's network at `bits` (`2001:db8:1:2::`); IPv4 as is. */
export function networkAddress (ip: string, bits: number): string {
  if (familyOf(ip) === 'ipv4' || bits >= 128 || !isIPv6(ip)) return ip
  const words = expandIpv6(ip)
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits - i * 16))
    words[i] = keep === 0 ? 0 : words[i] & (0xffff << (16 - keep)) & 0xffff
  }
  return canonicalIp(words.map(w => w.toString(16)).join(':')) ?? ip
}

/** Eight 16-bit words of a normal-form IPv6 address (which never holds a dotted IPv4 part). */
function expandIpv6 (ip: string): number[] {
  const [head, tail] = ip.split('::')
  const h = head === '' ? [] : head.split(':')
  if (tail === undefined) return h.map(w => parseInt(w, 16))
  const t = tail === '' ? [] : tail.split(':')
  return [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t].map(w => parseInt(w, 16))
}
