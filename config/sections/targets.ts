/**
 * Named upstream targets, how a request picks one, and the outbound proxy.
 *
 * Three sections live here because they are one concern:
 * - `targets`: named upstreams (`targets: {oa: {url, provider, keys, …}}`); the `upstream` section
 *   is the target named `default` and takes the same per-target fields (`targetFields`);
 * - `routing`: default target, Host and path routing, seed 003's stage prefixes and its
 *   `X-Target-Host` override (off by default, allowlisted);
 * - `outbound`: `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` and seed 003's `ENV=local` proxy.
 *
 * Seed forms: seed 003's `-targets key:domain,…` / `OPENAI_PROXY_TARGETS`, seed 002's
 * `OPENAI_API_HOST` / `CLAUDE_API_HOST` (Host prefixes `openai.api.` / `claude.api.`), seed 004's
 * `proxy` and `proxy_url_path` (in config/seed004.ts).
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { ConfigSection } from '../types.js'
import type { GatewayConfig } from '../schema.js'
import { ConfigError } from '../errors.js'
import { normalizeBaseUrl } from '../normalize.js'
import { isPlainObject, setPath } from '../paths.js'
import { StringEnum } from '../string-enum.js'
import { budgetListSchema } from './budgets.js'

export const PROVIDERS = ['auto', 'openai', 'anthropic', 'azure', 'openai-compatible'] as const

/** The API dialects a target may offer (docs/translation.md). */
export const DIALECTS = ['chat', 'responses', 'messages'] as const
type DialectName = typeof DIALECTS[number]

/** Seed 003's default outbound proxy in `ENV=local` mode (a local v2ray/xray HTTP port). */
export const LOCAL_MODE_PROXY = 'http://127.0.0.1:10809'

const KEY_NAME = '^[A-Za-z0-9_.-]{1,64}$'

const keyEntry = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Object({
    key: Type.String({ minLength: 1 }),
    name: Type.Optional(Type.String({ pattern: KEY_NAME, description: 'what logs show instead of the key' })),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
  }, { additionalProperties: false })
])

/** A pool key after normalisation: every key has a name (`key-1`, `key-2`, … unless configured). */
export interface KeySpec { name: string, key: string, weight: number }

/** The per-target fields shared by `upstream` (the `default` target) and every named target. */
export const targetFields = {
  provider: StringEnum(PROVIDERS, { default: 'auto', description: 'upstream auth header and error shape; auto = from the host name' }),
  dialects: Type.Array(StringEnum(DIALECTS), { default: [], description: 'API dialects the upstream offers (chat, responses, messages); empty = by provider; another dialect is translated' }),
  keys: Type.Array(keyEntry, { default: [], description: 'upstream key pool: strings, or {key, name, weight}' }),
  keyCooldownMs: Type.Integer({ default: 60_000, minimum: 0, description: 'how long a key that got a 401 is set aside' }),
  headers: Type.Record(Type.String(), Type.String(), { default: {}, description: 'extra request headers sent to this target; values are secrets (masked, redacted, filtered from answers)' }),
  pathRewrites: Type.Record(Type.String(), Type.String(), { default: {}, description: 'request path → upstream path; a trailing * rewrites a prefix' }),
  proxy: Type.String({ default: '', description: 'outbound proxy URL; "" = HTTP(S)_PROXY rules; "direct" = none' }),
  hostPrefixes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Host prefixes routed to this target (seed 002: openai.api.)' }),
  budgets: budgetListSchema,
  azure: Type.Object({
    apiVersion: Type.String({ default: '2024-10-21', description: 'api-version query added to every request; "" = none (Azure v1 API)' }),
    deployments: Type.Record(Type.String(), Type.String({ minLength: 1 }), { default: {}, description: 'model → deployment; unlisted models use their own name' })
  }, { additionalProperties: false, default: {} }),
  models: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'models this target serves, as globs (* and ?, any case): a request no header, path or Host routes goes to the first target matching its model, before routing.defaultTarget' }),
  healthCheck: Type.Object({
    path: Type.String({ default: '', description: 'path probed with GET (e.g. /v1/models); "" = no active check' }),
    intervalMs: Type.Integer({ default: 30_000, minimum: 1000, description: 'time between two probes' })
  }, { additionalProperties: false, default: {} })
}

const targetSchema = Type.Object({
  url: Type.String({ minLength: 1, description: 'base URL; a bare host means https; "mock" = the embedded mock' }),
  ...targetFields,
  // unset → the upstream section's value
  caFile: Type.Optional(Type.String()),
  connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  firstByteTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  idleTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  connections: Type.Optional(Type.Integer({ minimum: 1 }))
}, { additionalProperties: false })

export type TargetConfig = Static<typeof targetSchema>

export const targetsSchema = Type.Record(Type.String(), targetSchema, { default: {} })

export const routingSchema = Type.Object({
  defaultTarget: Type.String({ default: 'default', description: 'target for requests no Host or path selects; "" or "none" = 404' }),
  byHost: Type.Boolean({ default: true, description: 'the first label of Host selects a target (oa.example.com, oa-x.example.com)' }),
  byPath: Type.Boolean({ default: true, description: '/{target}/v1/… selects a target' }),
  stripStagePrefixes: Type.Boolean({ default: false, description: 'remove a leading /release or /test segment (seed 003, cloud functions)' }),
  targetHeader: Type.Object({
    enabled: Type.Boolean({ default: false, description: 'honour X-Target-Host (seed 003)' }),
    allowHosts: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'host, host:port, *.domain or *; empty = the targets\' hosts' })
  }, { additionalProperties: false, default: {} })
}, { additionalProperties: false, default: {} })

export const outboundSchema = Type.Object({
  httpProxy: Type.String({ default: '', description: 'proxy for http:// upstreams' }),
  httpsProxy: Type.String({ default: '', description: 'proxy for https:// upstreams; empty = httpProxy' }),
  noProxy: Type.String({ default: '', description: 'hosts reached directly: host, .domain, *.domain, host:port, *' }),
  localMode: Type.Boolean({ default: false, description: 'seed 003 ENV=local: default proxy http://127.0.0.1:10809' })
}, { additionalProperties: false, default: {} })

const TARGET_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/
/** `default` is the upstream section; `/v1/…` must never read as a target prefix; the override has its own name. */
const RESERVED_NAMES = new Set(['default', 'v1', 'x-target-host'])

function checkTargetName (name: string, where: string): void {
  if (!TARGET_NAME.test(name)) {
    throw new ConfigError(`${where}: target name ${JSON.stringify(name)}: expected lower-case letters, digits, - or _ (it is matched against Host labels and path segments)`)
  }
  if (RESERVED_NAMES.has(name)) {
    const hint = name === 'default' ? ' (configure the default target under upstream:)' : ''
    throw new ConfigError(`${where}: target name ${JSON.stringify(name)} is reserved${hint}`)
  }
}

/** Seed 003: `key:domain[,key:domain…]`, split on the first `:` so `key:host:port` works. */
function applySeed003Targets (value: unknown, raw: Record<string, unknown>): void {
  for (const item of value as string[]) {
    const cut = item.indexOf(':')
    if (cut <= 0 || cut === item.length - 1) throw new Error(`expected key:domain pairs, got "${item}"`)
    const name = item.slice(0, cut).trim().toLowerCase()
    checkTargetName(name, 'OPENAI_PROXY_TARGETS / -targets')
    setPath(raw, `targets.${name}.url`, item.slice(cut + 1).trim())
  }
}

/** Seed 002: one host each for OpenAI and Claude, chosen by the `openai.api.` / `claude.api.` Host prefixes. */
const seed002Target = (name: string, provider: string, prefix: string) => (value: unknown, raw: Record<string, unknown>): void => {
  setPath(raw, `targets.${name}.url`, String(value))
  setPath(raw, `targets.${name}.provider`, provider)
  setPath(raw, `targets.${name}.hostPrefixes`, [prefix])
}

/** `GATEWAY_TARGETS` holds the YAML `targets` map as JSON, for env-only deployments. */
function applyTargetsJson (value: unknown, raw: Record<string, unknown>): void {
  if (!isPlainObject(value)) throw new Error('expected a JSON object {"name": {"url": …}}')
  for (const [name, target] of Object.entries(value)) {
    checkTargetName(name, 'GATEWAY_TARGETS')
    setPath(raw, `targets.${name}`, target)
  }
}

function applyLocalMode (value: unknown, raw: Record<string, unknown>): void {
  if (String(value).toLowerCase() === 'local') setPath(raw, 'outbound.localMode', true)
}

export const targets: ConfigSection = {
  key: 'targets',
  schema: targetsSchema,
  options: [
    { path: 'targets', env: ['GATEWAY_TARGETS'], type: 'json', doc: 'named targets as JSON, same shape as the YAML targets map', apply: applyTargetsJson },
    { path: 'targets', env: ['OPENAI_PROXY_TARGETS'], flags: ['targets'], type: 'list', doc: 'named targets as key:domain,key2:domain2 (bare domain → https)', seed: '003', apply: applySeed003Targets },
    { path: 'targets.openai', env: ['OPENAI_API_HOST'], type: 'string', doc: 'target "openai" for Host openai.api.*', seed: '002', apply: seed002Target('openai', 'openai', 'openai.api.') },
    { path: 'targets.claude', env: ['CLAUDE_API_HOST'], type: 'string', doc: 'target "claude" (Anthropic) for Host claude.api.*', seed: '002', apply: seed002Target('claude', 'anthropic', 'claude.api.') },
    { path: 'targets.*.keys.*.key', env: [], type: 'string', secret: true, doc: 'upstream keys of named targets' },
    { path: 'targets.*.proxy', env: [], type: 'string', secret: true, doc: 'outbound proxy of a named target (may hold credentials)' },
    { path: 'targets.*.headers', env: [], type: 'json', secret: true, doc: 'extra request headers of a named target: their values are secrets' }
  ],
  postProcess: normalizeTargets
}

export const routing: ConfigSection = {
  key: 'routing',
  schema: routingSchema,
  options: [
    { path: 'routing.defaultTarget', env: ['GATEWAY_DEFAULT_TARGET'], flags: ['default-target'], type: 'string', doc: 'target for unmatched requests; none → 404' },
    { path: 'routing.byHost', env: ['GATEWAY_ROUTE_BY_HOST'], type: 'boolean', doc: 'route by the first label of Host' },
    { path: 'routing.byPath', env: ['GATEWAY_ROUTE_BY_PATH'], type: 'boolean', doc: 'route by a /{target}/ path prefix' },
    { path: 'routing.stripStagePrefixes', env: ['GATEWAY_STRIP_STAGE_PREFIXES'], type: 'boolean', doc: 'remove a leading /release or /test path segment', seed: '003' },
    { path: 'routing.targetHeader.enabled', env: ['GATEWAY_TARGET_HEADER'], type: 'boolean', doc: 'honour the X-Target-Host header (allowlisted)', seed: '003' },
    { path: 'routing.targetHeader.allowHosts', env: ['GATEWAY_TARGET_HEADER_ALLOW'], type: 'list', doc: 'hosts X-Target-Host may name: host, host:port, *.domain, *' }
  ],
  postProcess: normalizeRouting
}

export const outbound: ConfigSection = {
  key: 'outbound',
  schema: outboundSchema,
  options: [
    { path: 'outbound.httpProxy', env: ['GATEWAY_HTTP_PROXY', 'http_proxy', 'HTTP_PROXY'], type: 'string', secret: true, doc: 'outbound proxy for http:// upstreams' },
    { path: 'outbound.httpsProxy', env: ['GATEWAY_HTTPS_PROXY', 'https_proxy', 'HTTPS_PROXY'], type: 'string', secret: true, doc: 'outbound proxy for https:// upstreams (default: the http proxy)' },
    { path: 'outbound.noProxy', env: ['GATEWAY_NO_PROXY', 'no_proxy', 'NO_PROXY'], type: 'string', doc: 'hosts reached without the proxy' },
    { path: 'outbound.localMode', env: ['ENV'], type: 'string', doc: 'ENV=local: proxy through http://127.0.0.1:10809 unless HTTP(S)_PROXY is set (TLS stays verified)', seed: '003', apply: applyLocalMode }
  ],
  postProcess: normalizeOutbound
}

/** The provider a host implies, for `provider: auto`. */
export function inferProvider (url: string): Exclude<typeof PROVIDERS[number], 'auto'> {
  if (url === 'mock') return 'openai'
  const host = new URL(url).hostname.toLowerCase()
  if (host === 'anthropic.com' || host.endsWith('.anthropic.com')) return 'anthropic'
  if (/\.(?:openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)$/.test(host)) return 'azure'
  if (host === 'api.openai.com') return 'openai'
  return 'openai-compatible'
}

/** Whether `provider: auto` can tell this URL's provider from its host (else it is a guess). */
function knownHost (url: string): boolean {
  return url !== 'mock' && inferProvider(url) !== 'openai-compatible'
}

/**
 * The dialects a target offers when `dialects` is not set: its provider's. A host `provider: auto`
 * cannot place (a self-hosted server, the embedded mock) may offer any of them: every dialect
 * passes through untranslated, as it did before translation existed.
 */
export function defaultDialects (provider: Exclude<typeof PROVIDERS[number], 'auto'>, unknownHost: boolean): DialectName[] {
  if (unknownHost) return [...DIALECTS]
  switch (provider) {
    case 'anthropic': return ['messages']
    case 'openai': case 'azure': return ['chat', 'responses']
    default: return ['chat']
  }
}

/** Strings or `{key, name, weight}` → named keys; names are `key-1`, `key-2`, … unless given. */
export function normalizeKeys (list: ReadonlyArray<string | { key: string, name?: string, weight?: number }>, where: string): KeySpec[] {
  const out: KeySpec[] = list.map((entry, i) => typeof entry === 'string'
    ? { name: `key-${i + 1}`, key: entry, weight: 1 }
    : { name: entry.name ?? `key-${i + 1}`, key: entry.key, weight: entry.weight ?? 1 })
  const names = new Set<string>()
  for (const k of out) {
    if (names.has(k.name)) throw new ConfigError(`${where}: key name ${JSON.stringify(k.name)} is used twice (names are what logs show)`)
    if (k.name === k.key) throw new ConfigError(`${where}: a key's name must not be the key itself`)
    names.add(k.name)
  }
  return out
}

export function checkProxyUrl (value: string, where: string): string {
  if (value === '' || value === 'direct') return value
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(`${where}: expected a proxy URL like http://127.0.0.1:3128 (or "direct"), got a value that is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${where}: expected an http:// or https:// proxy URL, got ${url.protocol}`)
  }
  return value
}

type TargetShape = Pick<TargetConfig, keyof typeof targetFields | 'url'>

/** The shared per-target checks, for `upstream` and every named target. */
function normalizeTargetFields (t: TargetShape, where: string, origins: Map<string, string>): void {
  const provider = t.provider as string
  if (provider === 'auto') t.provider = inferProvider(t.url)
  if (t.dialects.length === 0) t.dialects = defaultDialects(t.provider as Exclude<typeof PROVIDERS[number], 'auto'>, provider === 'auto' && !knownHost(t.url))
  t.keys = normalizeKeys(t.keys, `${where}.keys`)
  t.proxy = checkProxyUrl(t.proxy, `${where}.proxy (${origins.get(`${where}.proxy`) ?? 'config'})`)
  for (const [from, to] of Object.entries(t.pathRewrites)) {
    if (!from.startsWith('/') || !to.startsWith('/')) {
      throw new ConfigError(`${where}.pathRewrites: "${from}" → "${to}": both sides must start with /`)
    }
    if (from.slice(0, -1).includes('*') || to.slice(0, -1).includes('*') || (to.endsWith('*') && !from.endsWith('*'))) {
      throw new ConfigError(`${where}.pathRewrites: "${from}" → "${to}": a * may only end a path, and only when the source path ends with one`)
    }
  }
  t.hostPrefixes = t.hostPrefixes.map(p => p.toLowerCase())
  for (const glob of t.models) {
    if (/[\s[\]{}]/.test(glob)) throw new ConfigError(`${where}.models: ${JSON.stringify(glob)}: expected a model name or a glob with * and ? only`)
  }
  if (t.healthCheck.path !== '' && !t.healthCheck.path.startsWith('/')) throw new ConfigError(`${where}.healthCheck.path: expected a path starting with /`)
  const names = new Set<string>()
  for (const name of Object.keys(t.headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new ConfigError(`${where}.headers: ${JSON.stringify(name)} is not a valid header name`)
    if (/[\r\n\0]/.test(t.headers[name])) throw new ConfigError(`${where}.headers.${name}: line breaks are not allowed in a header value`)
    if (names.has(name.toLowerCase())) throw new ConfigError(`${where}.headers: ${name} is given twice`)
    names.add(name.toLowerCase())
  }
}

function normalizeTargets (config: GatewayConfig, origins: Map<string, string>): void {
  const up = config.upstream
  // the single `upstream.key` is the first key of the default target's pool
  if (up.key !== '' && !up.keys.some(k => (typeof k === 'string' ? k : k.key) === up.key)) up.keys = [up.key, ...up.keys]
  normalizeTargetFields(up, 'upstream', origins)
  for (const [name, target] of Object.entries(config.targets)) {
    checkTargetName(name, `targets.${name}`)
    const where = `targets.${name}`
    const filled = Value.Default(targetSchema, target) as TargetConfig
    filled.url = normalizeBaseUrl(filled.url, `${where}.url (${origins.get(`${where}.url`) ?? origins.get('targets') ?? 'config'})`)
    normalizeTargetFields(filled, where, origins)
    filled.caFile ??= up.caFile
    filled.connectTimeoutMs ??= up.connectTimeoutMs
    filled.firstByteTimeoutMs ??= up.firstByteTimeoutMs
    filled.idleTimeoutMs ??= up.idleTimeoutMs
    filled.connections ??= up.connections
    config.targets[name] = filled
  }
}

/** `*`, `*.domain`, `host` or `host:port`, lower-cased, without a scheme. */
function normalizeAllowEntry (entry: string): string {
  const e = entry.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '')
  if (e === '*' || /^\*\.[a-z0-9.-]+$/.test(e) || /^(?:\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::\d{1,5})?$/.test(e)) return e
  throw new ConfigError(`routing.targetHeader.allowHosts: "${entry}": expected host, host:port, *.domain or *`)
}

function normalizeRouting (config: GatewayConfig, origins: Map<string, string>): void {
  const r = config.routing
  const wanted = r.defaultTarget.trim().toLowerCase()
  r.defaultTarget = wanted === 'none' ? '' : wanted
  if (r.defaultTarget !== '' && r.defaultTarget !== 'default' && config.targets[r.defaultTarget] === undefined) {
    const known = ['default', ...Object.keys(config.targets)].join(', ')
    throw new ConfigError(`routing.defaultTarget (${origins.get('routing.defaultTarget') ?? 'config'}) = ${JSON.stringify(r.defaultTarget)}: expected one of ${known} or none`)
  }
  r.targetHeader.allowHosts = r.targetHeader.allowHosts.map(normalizeAllowEntry)
}

function normalizeOutbound (config: GatewayConfig, origins: Map<string, string>): void {
  const o = config.outbound
  if (o.localMode && o.httpProxy === '' && o.httpsProxy === '') o.httpProxy = LOCAL_MODE_PROXY
  for (const key of ['httpProxy', 'httpsProxy'] as const) {
    const where = `outbound.${key} (${origins.get(`outbound.${key}`) ?? 'config'})`
    if (checkProxyUrl(o[key], where) === 'direct') throw new ConfigError(`${where}: expected a proxy URL`)
  }
}
