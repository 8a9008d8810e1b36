/**
 * The blacklist held in memory: what every request is checked against, even while Redis is down.
 * Entries carry when and why they were added and an optional expiry. Entries read from outside
 * (the file, Redis, the admin API) pass through `parseEntry`, so a hand edit cannot smuggle in a
 * malformed address or date.
 */
import { canonicalIp } from '../lib/ip.js'

export interface BlacklistEntry {
  /** normal-form address */
  ip: string
  /** ISO time it was added */
  addedAt: string
  reason: string
  /** ISO time it stops applying; null = until removed */
  expiresAt: string | null
}

interface Stored { entry: BlacklistEntry, expiresMs: number }

const MAX_REASON = 500
/** The latest time a JavaScript Date can hold (ECMA-262 §21.4.1.1): past it `toISOString` throws. */
const MAX_TIME_MS = 8.64e15

/** An ISO string or epoch milliseconds as an ISO string; null when neither, or outside Date's range. */
function isoTime (value: unknown): string | null {
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : NaN
  return Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIME_MS ? new Date(ms).toISOString() : null
}

/** A value from outside, quoted for a problem line: never more than a short excerpt. */
function quote (value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 80)}…` : text
}

/**
 * Validates one entry from outside: the file, Redis (hash and messages) and the admin API all
 * come through here. Returns the entry in normal form, or a one-line problem; never throws.
 * Missing `addedAt` and `reason` get defaults (a hand-added line needs only `ip`).
 */
export function parseEntry (value: unknown, now = Date.now()): BlacklistEntry | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected an object like {"ip":"203.0.113.7"}'
  const v = value as Record<string, unknown>
  const ip = typeof v.ip === 'string' ? canonicalIp(v.ip) : null
  if (ip === null) return `ip ${quote(v.ip)} is not an IP address`
  const addedAt = v.addedAt === undefined ? isoTime(now) : isoTime(v.addedAt)
  if (addedAt === null) return `addedAt ${quote(v.addedAt)} of ${ip} is not a date in range`
  if (v.reason !== undefined && typeof v.reason !== 'string') return `reason of ${ip} is not a string`
  const expiresAt = v.expiresAt === undefined || v.expiresAt === null ? null : isoTime(v.expiresAt)
  if (expiresAt === null && v.expiresAt !== undefined && v.expiresAt !== null) return `expiresAt ${quote(v.expiresAt)} of ${ip} is not a date in range`
  const reason = typeof v.reason === 'string' ? v.reason.slice(0, MAX_REASON) : 'added by hand'
  return { ip, addedAt, reason, expiresAt }
}

/** An automatic entry; `ttlMs` is bounded by the config schema (blacklist.ttlMs), so its dates are in range. */
export function newEntry (ip: string, reason: string, ttlMs: number | null, now = Date.now()): BlacklistEntry {
  return {
    ip,
    addedAt: new Date(now).toISOString(),
    reason: reason.slice(0, MAX_REASON),
    expiresAt: ttlMs !== null && ttlMs > 0 ? new Date(now + ttlMs).toISOString() : null
  }
}

function sameEntry (a: BlacklistEntry, b: BlacklistEntry): boolean {
  return a.ip === b.ip && a.addedAt === b.addedAt && a.reason === b.reason && a.expiresAt === b.expiresAt
}

export class Blacklist {
  readonly #entries = new Map<string, Stored>()
  readonly #now: () => number

  constructor (now: () => number = Date.now) {
    this.#now = now
  }

  get size (): number {
    return this.#entries.size
  }

  has (ip: string): boolean {
    if (this.#entries.size === 0) return false
    const stored = this.#entries.get(ip)
    return stored !== undefined && stored.expiresMs > this.#now()
  }

  get (ip: string): BlacklistEntry | undefined {
    return this.has(ip) ? this.#entries.get(ip)?.entry : undefined
  }

  /** Entries in force, oldest first. */
  list (): BlacklistEntry[] {
    const now = this.#now()
    return [...this.#entries.values()].filter(s => s.expiresMs > now).map(s => s.entry)
  }

  /** Adds or replaces; false when the same entry was already there. */
  set (entry: BlacklistEntry): boolean {
    const old = this.#entries.get(entry.ip)
    if (old !== undefined && sameEntry(old.entry, entry)) return false
    const expiresMs = entry.expiresAt === null ? Infinity : Date.parse(entry.expiresAt)
    this.#entries.set(entry.ip, { entry, expiresMs })
    return true
  }

  delete (ip: string): boolean {
    return this.#entries.delete(ip)
  }

  /** Makes the list exactly `entries`; false when nothing changed. */
  replaceAll (entries: readonly BlacklistEntry[]): boolean {
    const incoming = new Set(entries.map(e => e.ip))
    let changed = false
    for (const ip of [...this.#entries.keys()]) {
      if (!incoming.has(ip)) changed = this.#entries.delete(ip) || changed
    }
    for (const e of entries) changed = this.set(e) || changed
    return changed
  }

  /** Drops expired entries and returns their addresses. */
  sweep (): string[] {
    const now = this.#now()
    const gone: string[] = []
    for (const [ip, s] of this.#entries) {
      if (s.expiresMs <= now) { this.#entries.delete(ip); gone.push(ip) }
    }
    return gone
  }
}
