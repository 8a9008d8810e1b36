/**
 * The client key table, and how keys are presented and compared.
 *
 * The key is taken from every place the seeds' clients put one: `Authorization: Bearer` (OpenAI
 * SDKs, seed 000), `x-api-key` (Anthropic SDKs), `api-key` (Azure SDKs), a configured header (seed
 * 001 `DEFAULT_AUTH_HEADER`, with or without `Bearer `), and on WebSocket upgrades the browser
 * form `Sec-WebSocket-Protocol: openai-insecure-api-key.<key>`.
 *
 * Keys are compared in constant time: the presented key is hashed (SHA-256), the digest picks
 * the candidate entry from a map, and `timingSafeEqual` compares the two digests. The time taken
 * depends on neither the length nor any prefix of a configured key, and a miss costs the same
 * comparison against a dummy digest.
 */
import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { upstreamKeysOf, type ClientKeyConfig } from '../../config/sections/auth.js'
import type { ClientIdentity } from './client.js'

/** What `GET /admin/keys` shows of a key: everything but the key (and its hash). */
export interface KeySummary {
  name: string
  enabled: boolean
  hashed: boolean
  mapsUpstreamKey: boolean
  /** the targets its mapped upstream keys go to */
  upstreamKeyTargets?: string[]
  allowedTargets?: string[]
  allowedModels?: string[]
  rateLimit?: { max: number, timeWindowMs: number }
  maxConcurrent?: number
  budgets?: Array<{ usd?: number, tokens?: number, period: string }>
}

/** Identity given to callers let through by `auth.passThroughUnknown`; not a valid key name. */
export const UNKNOWN_CLIENT = '(unknown)'

const WS_KEY_PROTOCOL = 'openai-insecure-api-key.'

export interface KeyEntry {
  enabled: boolean
  identity: ClientIdentity
}

export function sha256 (text: string): Buffer {
  // the one-shot form: no Hash object per call
  return hash('sha256', text, 'buffer')
}

/** The hex digest straight from the one-shot hash: no Buffer made and then encoded (once per request). */
function sha256Hex (text: string): string {
  return hash('sha256', text, 'hex')
}

function firstValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** `Bearer <key>` (scheme case-insensitive) → key; anything else → null. */
function bearerToken (value: string): string | null {
  if (value.length < 7 || value.slice(0, 7).toLowerCase() !== 'bearer ') return null
  const token = value.slice(7).trim()
  return token === '' ? null : token
}

function nonEmpty (value: string | undefined): string | null {
  const v = value?.trim()
  return v === undefined || v === '' ? null : v
}

/** The key in `Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<key>, …` (browsers cannot set headers). */
function webSocketProtocolKey (headers: IncomingHttpHeaders): string | null {
  if (firstValue(headers.upgrade)?.toLowerCase() !== 'websocket') return null
  const protocols = firstValue(headers['sec-websocket-protocol'])
  if (protocols === undefined) return null
  for (const p of protocols.split(',')) {
    const proto = p.trim()
    if (proto.startsWith(WS_KEY_PROTOCOL)) return nonEmpty(proto.slice(WS_KEY_PROTOCOL.length))
  }
  return null
}

/**
 * Every key a request presents, in this order: the configured header (`Bearer ` optional),
 * `Authorization: Bearer`, `x-api-key`, `api-key`, the WebSocket sub-protocol. A client may carry
 * other credentials beside the gateway key (say, its own provider key in `Authorization`), so
 * each candidate is checked; the first that matches decides who the client is.
 */
export function presentedKeys (headers: IncomingHttpHeaders, customHeader = ''): string[] {
  // runs on every request: one small array, no Set or filter copies (usually one key is present)
  const found: string[] = []
  if (customHeader !== '') {
    const raw = nonEmpty(firstValue(headers[customHeader]))
    addKey(found, raw !== null ? bearerToken(raw) ?? raw : null)
  }
  const authorization = firstValue(headers.authorization)
  if (authorization !== undefined) addKey(found, bearerToken(authorization.trim()))
  addKey(found, nonEmpty(firstValue(headers['x-api-key'])))
  addKey(found, nonEmpty(firstValue(headers['api-key'])))
  if (headers.upgrade !== undefined) addKey(found, webSocketProtocolKey(headers))
  return found
}

/** Appends a found key unless absent or already there (first place wins the order). */
function addKey (found: string[], key: string | null): void {
  if (key !== null && !found.includes(key)) found.push(key)
}

/** Equal-length digests compared without an early exit. */
export function digestsEqual (a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Whether any presented secret equals the configured one: each compared in constant time (hashed, then timingSafeEqual). */
export function secretMatches (presented: readonly string[], expectedDigest: Buffer): boolean {
  let match = false
  for (const candidate of presented) match = digestsEqual(sha256(candidate), expectedDigest) || match
  return match
}

/** One identity per key, shared by all its requests: frozen, so no plugin can change it for the others. */
function identityOf (k: ClientKeyConfig, defaultTarget: string): ClientIdentity {
  const id: ClientIdentity = { name: k.name }
  if (k.upstreamKey !== undefined) id.upstreamKeys = upstreamKeysOf(k.upstreamKey, defaultTarget)
  if (k.allowedTargets !== undefined) id.allowedTargets = Object.freeze([...k.allowedTargets]) as string[]
  if (k.allowedModels !== undefined) id.allowedModels = Object.freeze([...k.allowedModels]) as string[]
  if (k.rateLimit !== undefined) id.rateLimit = Object.freeze({ ...k.rateLimit })
  if (k.maxConcurrent !== undefined) id.maxConcurrent = k.maxConcurrent
  return Object.freeze(id)
}

export function summaryOf (k: ClientKeyConfig, defaultTarget: string): KeySummary {
  return {
    name: k.name,
    enabled: k.enabled,
    hashed: k.keySha256 !== undefined,
    mapsUpstreamKey: k.upstreamKey !== undefined,
    ...(k.upstreamKey !== undefined ? { upstreamKeyTargets: [...upstreamKeysOf(k.upstreamKey, defaultTarget).keys()] } : {}),
    ...(k.allowedTargets !== undefined ? { allowedTargets: [...k.allowedTargets] } : {}),
    ...(k.allowedModels !== undefined ? { allowedModels: [...k.allowedModels] } : {}),
    ...(k.rateLimit !== undefined ? { rateLimit: { ...k.rateLimit } } : {}),
    ...(k.maxConcurrent !== undefined ? { maxConcurrent: k.maxConcurrent } : {}),
    ...(k.budgets !== undefined ? { budgets: k.budgets.map(b => ({ ...b })) } : {})
  }
}

/** Digest (hex) → entry. Keys given as hashes and as plain text end up in the same map. */
export function keyTable (keys: readonly ClientKeyConfig[], defaultTarget: string): Map<string, KeyEntry> {
  const table = new Map<string, KeyEntry>()
  for (const k of keys) {
    const digest = k.keySha256 !== undefined ? k.keySha256.toLowerCase() : sha256Hex(k.key as string)
    table.set(digest, { enabled: k.enabled, identity: identityOf(k, defaultTarget) })
  }
  return table
}

/**
 * Finds the entry for a presented key; the same work whether it matches or not. The table is
 * looked up by the presented key's digest, never by the key: a lookup that compares strings
 * compares digests, whose prefixes say nothing about any key.
 */
export function lookupKey (table: ReadonlyMap<string, KeyEntry>, presented: string): KeyEntry | null {
  return table.get(sha256Hex(presented)) ?? null
}
