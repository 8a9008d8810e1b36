/**
 * The `X-Target-Host` override, made safe: a header that sends the request to whatever host it
 * names is an open proxy (loopback, cloud metadata, path injection). So:
 *
 * - the value is a host or host:port, optionally prefixed `https://`, and nothing else: a path,
 *   query, `user@`, whitespace, CR/LF or any other character refuses it;
 * - it must be on the allowlist. An exact entry (`api.example.com`, `10.0.0.5:8443`) is trusted as
 *   configured. A wildcard entry (`*.example.com`, or `*` for any host) only admits a DNS name,
 *   never an IP literal in any spelling (`127.1`, `2130706433`, `0x7f000001`, `[::1]`,
 *   `[::ffff:127.0.0.1]`), never a port, and only when every address it resolves to is public;
 * - the connection is then made with a lookup that resolves again and refuses anything but public
 *   addresses, so the socket connects to a checked address even if DNS changes in between
 *   (rebinding).
 */
import { BlockList, isIP, type LookupFunction } from 'node:net'
import { lookup as dnsLookup } from 'node:dns/promises'

export interface ResolvedAddress { address: string, family: number }
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>

export interface AllowList {
  /** exact `host` / `host:port` entries, lower-case */
  exact: ReadonlySet<string>
  /** `*.domain` entries, as `domain` */
  suffixes: readonly string[]
  /** `*`: any public host */
  any: boolean
}

export type TargetHostDecision =
  | { kind: 'exact', authority: string }
  | { kind: 'checked', hostname: string }

const RESOLVE_TIMEOUT_MS = 5_000

export const defaultResolver: Resolver = async (hostname) => {
  const found = await dnsLookup(hostname, { all: true, verbatim: true })
  return found.map(a => ({ address: a.address, family: a.family }))
}

export function allowList (entries: readonly string[]): AllowList {
  const exact = new Set<string>()
  const suffixes: string[] = []
  let any = false
  for (const e of entries) {
    if (e === '*') any = true
    else if (e.startsWith('*.')) suffixes.push(e.slice(2))
    else exact.add(e)
  }
  return { exact, suffixes, any }
}

/** The header value as a lower-case `host[:port]`, or null when it is anything else. */
export function parseTargetHost (raw: string | string[] | undefined): string | null {
  if (typeof raw !== 'string') return null
  const value = /^https:\/\//i.test(raw) ? raw.slice(8) : raw
  if (!/^[A-Za-z0-9.:[\]_-]{1,260}$/.test(value)) return null
  return value.toLowerCase()
}

/** A plain DNS name whose last label starts with a letter: no IP literal in any notation, no port. */
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * Decides an `X-Target-Host` value: null means refused (the caller answers 400 and says nothing
 * more, so the check is no oracle for what is inside the network).
 */
export async function checkTargetHost (raw: string | string[] | undefined, allow: AllowList, resolve: Resolver = defaultResolver): Promise<TargetHostDecision | null> {
  const authority = parseTargetHost(raw)
  if (authority === null) return null
  if (allow.exact.has(authority)) return { kind: 'exact', authority }
  if (!DNS_NAME.test(authority) || isLocalName(authority)) return null
  if (!allow.any && !allow.suffixes.some(s => authority.endsWith(`.${s}`))) return null
  const addresses = await resolveBounded(authority, resolve)
  if (addresses === null || addresses.length === 0 || !addresses.every(a => isPublicAddress(a.address))) return null
  return { kind: 'checked', hostname: authority }
}

function isLocalName (host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || host.endsWith('.internal')
}

async function resolveBounded (hostname: string, resolve: Resolver): Promise<ResolvedAddress[] | null> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), RESOLVE_TIMEOUT_MS) })
  try {
    return await Promise.race([resolve(hostname).catch(() => null), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A `lookup` for net/tls.connect that resolves, then hands over only checked public addresses:
 * the pin that makes the earlier check hold at connect time.
 */
export function pinnedLookup (resolve: Resolver = defaultResolver): LookupFunction {
  return function lookupPublicOnly (hostname, options, callback) {
    resolve(hostname).then((addresses) => {
      if (addresses.length === 0 || !addresses.every(a => isPublicAddress(a.address))) {
        const err = Object.assign(new Error('refused to connect: the host resolves to a non-public address'), { code: 'EADDRNOTPUBLIC' })
        callback(err, '', 0)
        return
      }
      const wanted = options.family === 4 || options.family === 6 ? addresses.filter(a => a.family === options.family) : addresses
      if (options.all === true) {
        (callback as unknown as (err: null, all: ResolvedAddress[]) => void)(null, wanted)
      } else {
        const first = wanted[0] ?? addresses[0]
        callback(null, first.address, first.family)
      }
    }, (err: NodeJS.ErrnoException) => callback(err, '', 0))
  }
}

// Not public: this network, private, shared (CGNAT, also Alibaba's metadata), loopback,
// link-local (cloud metadata 169.254.169.254), IETF and documentation blocks, benchmarking,
// multicast, reserved, broadcast.
const V4_BLOCKED: ReadonlyArray<[string, number]> = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16],
  ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]
]
// Unspecified, loopback, discard, documentation, unique local (AWS metadata fd00:ec2::254),
// link-local, site-local, multicast, ORCHID and other IETF special blocks.
const V6_BLOCKED: ReadonlyArray<[string, number]> = [
  ['::', 128], ['::1', 128], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['fc00::', 7],
  ['fe80::', 10], ['fec0::', 10], ['ff00::', 8]
]

const blocked = new BlockList()
for (const [net, prefix] of V4_BLOCKED) blocked.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of V6_BLOCKED) blocked.addSubnet(net, prefix, 'ipv6')

/** True only for a unicast address on the public internet; anything unparsable is not public. */
export function isPublicAddress (ip: string): boolean {
  const kind = isIP(ip)
  if (kind === 4) return !blocked.check(ip, 'ipv4')
  if (kind !== 6) return false
  const bytes = ipv6Bytes(ip)
  if (bytes === null) return false
  const embedded = embeddedIpv4(bytes)
  if (embedded !== null) return isPublicAddress(embedded)
  return !blocked.check(ip, 'ipv6')
}

/** IPv4 carried inside an IPv6 address: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64, 6to4. */
function embeddedIpv4 (b: number[]): string | null {
  const zeros = (from: number, to: number): boolean => b.slice(from, to).every(x => x === 0)
  const quad = (at: number): string => b.slice(at, at + 4).join('.')
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return quad(12)
  if (zeros(0, 12) && !zeros(12, 16) && !(zeros(12, 15) && b[15] === 1)) return quad(12)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return quad(12)
  if (b[0] === 0x20 && b[1] === 0x02) return quad(2)
  return null
}

/** The 16 bytes of an IPv6 address (zone id dropped), or null. */
function ipv6Bytes (ip: string): number[] | null {
  let text = ip.replace(/%.*$/, '')
  const tail: number[] = []
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    tail.push(...v4[1].split('.').map(Number))
    text = text.slice(0, -v4[1].length) + '0:0'
  }
  const [head, rest] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined ? [] : rest === '' ? [] : rest.split(':')
  const missing = 8 - left.length - right.length
  if (rest === undefined ? missing !== 0 : missing < 0) return null
  const groups = [...left, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...right].map(g => parseInt(g, 16))
  if (groups.length !== 8 || groups.some(g => Number.isNaN(g))) return null
  const bytes = groups.flatMap(g => [g >> 8, g & 0xff])
  if (tail.length === 4) bytes.splice(12, 4, ...tail)
  return bytes
}
