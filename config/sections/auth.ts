/**
 * Client keys (who may call the gateway, and with which upstream key) and the admin token.
 *
 * Every form the seeds accept lands in one list, `auth.keys`: native YAML entries, the
 * `GATEWAY_CLIENT_KEYS` / seed 001 `ALLOWED_TOKENS` env lists, seed 000's `-bearer` (which
 * defaults to `-key`), and seed 004's `api_keys` map (see config/seed004.ts). Maps keyed by a
 * secret are turned into lists here, because the log filter collects secrets from values only.
 */
import { createHash } from 'node:crypto'
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { Type, type Static } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { setPath } from '../paths.js'
import { ConfigError } from '../errors.js'
import type { GatewayConfig } from '../schema.js'
import { budgetListSchema } from './budgets.js'

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.@:-]*$'

export const clientKeySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64, pattern: NAME, description: 'shown in logs and metrics instead of the key' }),
  key: Type.Optional(Type.String({ minLength: 1, description: 'the key clients send' })),
  keySha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'hex SHA-256 of the key, so the file holds no client secret' })),
  upstreamKey: Type.Optional(Type.Union([
    Type.String({ minLength: 1 }),
    Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), { minProperties: 1 })
  ], { description: 'upstream key used for this client (key mapping): a key for the default target, or {target: key}; sent to those targets only' })),
  allowedTargets: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'upstream target names this client may use' })),
  allowedModels: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'values of the JSON `model` field this client may send' })),
  rateLimit: Type.Optional(Type.Object({
    max: Type.Integer({ minimum: 1 }),
    timeWindowMs: Type.Integer({ minimum: 1 })
  }, { additionalProperties: false })),
  maxConcurrent: Type.Optional(Type.Integer({ minimum: 1, description: 'requests in flight at once for this key, overriding rateLimit.maxConcurrent' })),
  budgets: budgetListSchema,
  enabled: Type.Boolean({ default: true })
}, { additionalProperties: false })

export type ClientKeyConfig = Static<typeof clientKeySchema>

/**
 * A client's mapped upstream keys by target name. A bare key (the first form, and seed 004's
 * `api_keys` map) belongs to the default target (`routing.defaultTarget`), where requests go
 * when nothing else picks a target; `{openai: sk-…, claude: sk-ant-…}` names each target.
 * The one reading of `upstreamKey`, for the boot check and for the client's identity.
 */
export function upstreamKeysOf (upstreamKey: ClientKeyConfig['upstreamKey'], defaultTarget: string): Map<string, string> {
  if (upstreamKey === undefined) return new Map()
  if (typeof upstreamKey === 'string') return new Map(defaultTarget === '' ? [] : [[defaultTarget, upstreamKey]])
  return new Map(Object.entries(upstreamKey))
}

export const authSchema = Type.Object({
  enabled: Type.Boolean({ default: true, description: 'false: client keys are not checked (pass-through, or open relay when an upstream key is configured)' }),
  keys: Type.Array(clientKeySchema, { default: [] }),
  bearer: Type.String({ default: '', description: 'seed 000: the one client key; defaults to the -key flag' }),
  header: Type.String({ default: '', description: 'extra request header carrying the client key (with or without "Bearer "); never forwarded upstream' }),
  passThroughUnknown: Type.Boolean({ default: false, description: 'forward requests with unknown or missing keys unchanged, with their own credentials (seed 004)' }),
  adminToken: Type.String({ default: '', description: 'guards /admin/*; empty → /admin/* answers 404' })
}, { additionalProperties: false, default: {} })

/** What a header name may look like (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * `GATEWAY_CLIENT_KEYS` / `ALLOWED_TOKENS`: a comma list of keys (named `key-1`, `key-2`, …), or
 * a JSON array of key objects like the YAML form (names, hashes, per-key settings).
 */
export function parseClientKeys (value: unknown): unknown[] {
  const text = String(value).trim()
  if (text.startsWith('[')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new Error('expected a JSON array of {"name","key"|"keySha256",…} objects, or a comma-separated list of keys')
    }
    if (!Array.isArray(parsed)) throw new Error('expected a JSON array')
    return parsed.map((item: unknown, i) => typeof item === 'string' ? { name: `key-${i + 1}`, key: item } : item)
  }
  return text.split(',').map(k => k.trim()).filter(k => k !== '').map((key, i) => ({ name: `key-${i + 1}`, key }))
}

function applyClientKeys (value: unknown, raw: Record<string, unknown>): void {
  setPath(raw, 'auth.keys', parseClientKeys(value))
}

export function sha256Hex (text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/** Seed 000 is recognised by its `-key` flag (not `--upstream-key` nor the env names). */
const SEED000_KEY_FLAG = /^flag --?key$/

/**
 * Runs once after validation, before the config is frozen: seed 000's `-bearer` default, the
 * single-key forms folded into `keys`, and the checks JSON schema cannot express.
 */
export function normalizeAuth (config: GatewayConfig, origins: Map<string, string>): void {
  const auth = config.auth
  if (auth.bearer === '' && SEED000_KEY_FLAG.test(origins.get('upstream.key') ?? '') && config.upstream.key !== '') {
    // seed 000: `-bearer` defaults to `-key`, so its clients must send that key
    auth.bearer = config.upstream.key
  }
  if (auth.bearer !== '') auth.keys.push({ name: 'bearer', key: auth.bearer, enabled: true })

  if (auth.header !== '') {
    if (!HEADER_NAME.test(auth.header)) {
      throw new ConfigError(`auth.header (${origins.get('auth.header') ?? 'config'}) = ${JSON.stringify(auth.header)}: expected a header name like X-Api-Token`)
    }
    auth.header = auth.header.toLowerCase()
  }

  const names = new Set<string>()
  const digests = new Map<string, string>()
  auth.keys.forEach((k, i) => {
    const where = `auth.keys[${i}] (${k.name})`
    if ((k.key === undefined) === (k.keySha256 === undefined)) {
      throw new ConfigError(`${where}: expected exactly one of "key" or "keySha256"`)
    }
    if (names.has(k.name)) throw new ConfigError(`${where}: the name "${k.name}" is used twice (names identify keys in logs and metrics)`)
    names.add(k.name)
    if (k.keySha256 !== undefined) k.keySha256 = k.keySha256.toLowerCase()
    const digest = k.keySha256 ?? sha256Hex(k.key as string)
    const other = digests.get(digest)
    if (other !== undefined) throw new ConfigError(`${where}: the same key is also configured as "${other}"`)
    digests.set(digest, k.name)
  })
}

/**
 * How callers are treated, one name each wherever it is shown (boot line, --check-config,
 * `GET /admin/keys`, README):
 * - `keys`: keys required; every caller must present a configured client key;
 * - `pass-through`: no upstream key is configured, so callers bring their own credentials;
 * - `open-relay`: an upstream key is configured and no client key is checked, so anyone who can
 *   reach the gateway spends that key.
 */
export type ClientAuthMode = 'keys' | 'pass-through' | 'open-relay'

export const CLIENT_AUTH_MODES: Record<ClientAuthMode, string> = {
  keys: 'keys required: every caller must present a configured client key',
  'pass-through': 'pass-through: no upstream key is configured, callers\' own credentials go to the upstream',
  'open-relay': 'open relay: client keys are not checked and the operator\'s upstream key is sent for every caller, who needs no credentials'
}

/** The mode in one phrase, as the boot line and `--check-config` print it. */
export function describeClientAuthMode (mode: ClientAuthMode): string {
  return `${CLIENT_AUTH_MODES[mode]} (${mode} mode)`
}

/** A per-target header that carries a credential (`Authorization`, `x-goog-api-key`, …). */
const CREDENTIAL_HEADER = /auth|key|token|secret|credential|signature/i

/** The first configured upstream credential, named by where it sits; null when there is none. */
function upstreamCredential (config: GatewayConfig): string | null {
  const named: Array<[string, { keys: unknown[], headers: Record<string, string> }]> = [
    ['upstream', config.upstream],
    ...Object.entries(config.targets).map(([name, target]): [string, typeof target] => [`targets.${name}`, target])
  ]
  for (const [where, target] of named) {
    if (target.keys.length > 0) return `${where}.keys`
    const header = Object.keys(target.headers).find(h => CREDENTIAL_HEADER.test(h))
    if (header !== undefined) return `${where}.headers.${header}`
  }
  return config.upstream.key !== '' ? 'upstream.key' : null
}

export function clientAuthMode (config: GatewayConfig): ClientAuthMode {
  if (config.auth.enabled && config.auth.keys.length > 0) return 'keys'
  return upstreamCredential(config) === null ? 'pass-through' : 'open-relay'
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** `localhost`, 127.0.0.0/8, ::1 and the IPv4-mapped form: reachable from this machine only. */
export function isLoopbackHost (host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '')
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  const v4 = h.startsWith('::ffff:') && isIPv4(h.slice(7)) ? h.slice(7) : h
  if (isIPv4(v4)) return LOOPBACK.check(v4, 'ipv4')
  return isIPv6(h) && LOOPBACK.check(h, 'ipv6')
}

/** Where a config path got its value (`env GATEWAY_HOST`, `file …`), from the path or a parent of it. */
function sourceOf (path: string, origins: Map<string, string>): string {
  for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const origin = origins.get(p)
    if (origin !== undefined) return origin.replace(/: [\w.*-]+$/, '')
  }
  return 'config'
}

/**
 * An open relay on an address other machines can reach stops the boot, unless it was asked for in
 * so many words (`auth.enabled: false` set in the file, the environment or a flag). On loopback it
 * is the local-development case and only announced.
 */
function refuseAccidentalOpenRelay (config: GatewayConfig, origins: Map<string, string>): void {
  if (clientAuthMode(config) !== 'open-relay' || isLoopbackHost(config.server.host)) return
  if (origins.has('auth.enabled') && !config.auth.enabled) return
  const found = upstreamCredential(config) as string
  // the single `upstream.key` was folded into the default target's pool: named as it was set
  const credential = found === 'upstream.keys' && origins.has('upstream.key') ? 'upstream.key' : found
  throw new ConfigError(`open relay refused: an upstream key is configured (${credential}, ${sourceOf(credential, origins)}), no client key is checked, ` +
    `and server.host (${sourceOf('server.host', origins)}) = ${JSON.stringify(config.server.host)} is reachable from other machines, so anyone could spend that key; ` +
    'add client keys (GATEWAY_CLIENT_KEYS, ALLOWED_TOKENS or auth.keys), or accept an open relay explicitly with GATEWAY_AUTH_ENABLED=false (AUTH_VALIDATION=false)')
}

/**
 * Runs after routing's normal form (the auth section comes after it): every target a mapped key
 * names exists, and a bare key has a default target to belong to.
 */
function checkUpstreamKeys (config: GatewayConfig): void {
  const targets = ['default', ...Object.keys(config.targets)]
  config.auth.keys.forEach((k, i) => {
    const where = `auth.keys[${i}] (${k.name}).upstreamKey`
    if (typeof k.upstreamKey === 'string' && config.routing.defaultTarget === '') {
      throw new ConfigError(`${where}: a bare key belongs to the default target, and routing.defaultTarget is none: name its targets, e.g. upstreamKey: {${targets[targets.length - 1]}: …}`)
    }
    for (const name of upstreamKeysOf(k.upstreamKey, config.routing.defaultTarget).keys()) {
      if (!targets.includes(name)) throw new ConfigError(`${where}: no target is named ${JSON.stringify(name)}: expected one of ${targets.join(', ')}`)
    }
  })
}

export const auth: ConfigSection = {
  key: 'auth',
  schema: authSchema,
  postProcess (config, origins) {
    checkUpstreamKeys(config)
    refuseAccidentalOpenRelay(config, origins)
  },
  options: [
    {
      path: 'auth.keys',
      env: ['GATEWAY_CLIENT_KEYS', 'ALLOWED_TOKENS'],
      type: 'string',
      secret: true,
      secretFields: ['key', 'upstreamKey'],
      apply: applyClientKeys,
      doc: 'client keys: comma list, or a JSON array of {name, key | keySha256, upstreamKey (a key, or {target: key}), allowedTargets, allowedModels, rateLimit, maxConcurrent, budgets: [{usd, tokens, period}], enabled}',
      seed: '001 ALLOWED_TOKENS'
    },
    { path: 'auth.enabled', env: ['GATEWAY_AUTH_ENABLED', 'AUTH_VALIDATION'], type: 'boolean', doc: 'check client keys; false accepts every caller (open relay when an upstream key is configured)', seed: '001 AUTH_VALIDATION' },
    { path: 'auth.bearer', env: [], flags: ['bearer'], type: 'string', secret: true, doc: 'the client key (default: the -key value)', seed: '000 -bearer' },
    { path: 'auth.header', env: ['GATEWAY_AUTH_HEADER', 'DEFAULT_AUTH_HEADER'], flags: ['auth-header'], type: 'string', doc: 'extra header carrying the client key, with or without "Bearer "; not forwarded', seed: '001 DEFAULT_AUTH_HEADER' },
    { path: 'auth.passThroughUnknown', env: ['GATEWAY_AUTH_PASS_THROUGH_UNKNOWN'], type: 'boolean', doc: 'forward unknown or missing keys unchanged instead of 401 (seed 004 behaviour)' },
    { path: 'auth.adminToken', env: ['GATEWAY_ADMIN_TOKEN', 'ADMIN_TOKEN'], flags: ['admin-token'], type: 'string', secret: true, doc: 'token for /admin/* (empty: /admin/* answers 404)', seed: '001 ADMIN_TOKEN' }
  ]
}
