/**
 * Client authentication: who may call the gateway, and as whom (`request.gw.client`).
 *
 * A root `onRequest` hook, so an unknown caller is refused before any body is read (STYLE.md
 * §2.4). The key is taken from every place the seeds' clients put one: `Authorization: Bearer`
 * (OpenAI SDKs, seed 000), `x-api-key` (Anthropic SDKs), `api-key` (Azure SDKs), a configured
 * header (seed 001 `DEFAULT_AUTH_HEADER`, with or without `Bearer `), and on WebSocket upgrades
 * the browser form `Sec-WebSocket-Protocol: openai-insecure-api-key.<key>`.
 *
 * Keys are compared in constant time: the presented key is hashed (SHA-256), the digest picks
 * the candidate entry from a map, and `timingSafeEqual` compares the two digests. The time taken
 * depends on neither the length nor any prefix of a configured key, and a miss costs the same
 * comparison against a dummy digest.
 *
 * Key guessing is limited per address (`refusals`, src/abuse/refusal-limit.ts): each refused key
 * counts, and an address over the limit is refused with 429 before its key is looked at.
 */
import fp from 'fastify-plugin'
import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import type { ClientKeyConfig } from '../config/sections/auth.js'
import type { RefusalLimit } from '../src/abuse/refusal-limit.js'
import { AuthRefusalsLimitedError, InvalidApiKeyError, ModelNotAllowedError, ModelUncheckableError, isAnthropicPath } from '../src/errors.js'
import { CLIENT_CREDENTIALS } from '../src/proxy/headers.js'
import type { FieldCheck } from '../src/uploads/limiter.js'
import type { ClientIdentity } from './request-state.js'
import { routeConfigOf } from './request-state.js'

export interface AuthOptions {
  auth: GatewayConfig['auth']
  /** refused authentications per address (shared with the admin guard); null = not limited */
  refusals?: RefusalLimit | null
}

/** What `GET /admin/keys` shows of a key: everything but the key (and its hash). */
export interface KeySummary {
  name: string
  enabled: boolean
  hashed: boolean
  mapsUpstreamKey: boolean
  allowedTargets?: string[]
  allowedModels?: string[]
  rateLimit?: { max: number, timeWindowMs: number }
  maxConcurrent?: number
}

export interface ClientAuth {
  /** 'keys': callers must present a configured key; 'pass-through': every caller is accepted */
  mode: 'keys' | 'pass-through'
  passThroughUnknown: boolean
  header: string
  keys: KeySummary[]
}

declare module 'fastify' {
  interface FastifyInstance {
    clientAuth: ClientAuth
  }
}

/** Identity given to callers let through by `auth.passThroughUnknown`; not a valid key name. */
export const UNKNOWN_CLIENT = '(unknown)'

const WS_KEY_PROTOCOL = 'openai-insecure-api-key.'

interface KeyEntry {
  digest: Buffer
  enabled: boolean
  identity: ClientIdentity
}

export function sha256 (text: string): Buffer {
  // the one-shot form: no Hash object per call (one per request on the hot path)
  return hash('sha256', text, 'buffer')
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
function identityOf (k: ClientKeyConfig): ClientIdentity {
  const id: ClientIdentity = { name: k.name }
  if (k.upstreamKey !== undefined) id.upstreamKey = k.upstreamKey
  if (k.allowedTargets !== undefined) id.allowedTargets = Object.freeze([...k.allowedTargets]) as string[]
  if (k.allowedModels !== undefined) id.allowedModels = Object.freeze([...k.allowedModels]) as string[]
  if (k.rateLimit !== undefined) id.rateLimit = Object.freeze({ ...k.rateLimit })
  if (k.maxConcurrent !== undefined) id.maxConcurrent = k.maxConcurrent
  return Object.freeze(id)
}

function summaryOf (k: ClientKeyConfig): KeySummary {
  return {
    name: k.name,
    enabled: k.enabled,
    hashed: k.keySha256 !== undefined,
    mapsUpstreamKey: k.upstreamKey !== undefined,
    ...(k.allowedTargets !== undefined ? { allowedTargets: [...k.allowedTargets] } : {}),
    ...(k.allowedModels !== undefined ? { allowedModels: [...k.allowedModels] } : {}),
    ...(k.rateLimit !== undefined ? { rateLimit: { ...k.rateLimit } } : {}),
    ...(k.maxConcurrent !== undefined ? { maxConcurrent: k.maxConcurrent } : {})
  }
}

/** Digest (hex) → entry. Keys given as hashes and as plain text end up in the same map. */
function keyTable (keys: readonly ClientKeyConfig[]): Map<string, KeyEntry> {
  const table = new Map<string, KeyEntry>()
  for (const k of keys) {
    const digest = k.keySha256 !== undefined ? Buffer.from(k.keySha256, 'hex') : sha256(k.key as string)
    table.set(digest.toString('hex'), { digest, enabled: k.enabled, identity: identityOf(k) })
  }
  return table
}

const DUMMY_DIGEST = sha256('no key configured with this digest')

/** Finds the entry for a presented key; the same work whether it matches or not. */
export function lookupKey (table: ReadonlyMap<string, KeyEntry>, presented: string): KeyEntry | null {
  const digest = sha256(presented)
  const candidate = table.get(digest.toString('hex'))
  const equal = digestsEqual(candidate?.digest ?? DUMMY_DIGEST, digest)
  return candidate !== undefined && equal ? candidate : null
}

/**
 * An address that had too many refused keys (or admin tokens) in its window gets 429, whatever
 * it presents now: a right guess must not be told apart from a wrong one until the window ends.
 */
export function refuseGuessing (request: FastifyRequest, reply: FastifyReply, refusals: RefusalLimit | null): void {
  const waitMs = refusals?.blockedFor(request.clientIp) ?? 0
  if (waitMs === 0) return
  const seconds = Math.ceil(waitMs / 1000)
  reply.header('retry-after', String(seconds))
  reply.header('retry-after-ms', String(Math.ceil(waitMs)))
  request.gw.errorClass = 'auth_refusals_limited'
  throw new AuthRefusalsLimitedError(seconds)
}

function refuse (request: FastifyRequest, reply: FastifyReply, reason: string, refusals: RefusalLimit | null): never {
  refusals?.record(request.clientIp)
  // OpenAI clients expect the challenge; Anthropic's API does not send one
  if (!isAnthropicPath(request.url)) reply.header('www-authenticate', 'Bearer')
  request.gw.errorClass = reason
  throw new InvalidApiKeyError()
}

const MAX_MODEL_IN_MESSAGE = 200

function addClientChecks (fastify: FastifyInstance, table: ReadonlyMap<string, KeyEntry>, settings: GatewayConfig['auth'], refusals: RefusalLimit | null): void {
  const unknownIdentity: ClientIdentity = Object.freeze({ name: UNKNOWN_CLIENT, passThrough: true })

  // callback form, not async: the check is sync, so no promise and microtask per request; a
  // throw (refuse) reaches Fastify's error path exactly as a rejection would
  fastify.addHook('onRequest', function authenticateClient (request, reply, done) {
    const route = routeConfigOf(request)
    // health probes are public; /admin/* has its own token (plugins/admin-auth.ts)
    if (route?.public === true || route?.admin === true) return done()
    refuseGuessing(request, reply, refusals)
    const keys = presentedKeys(request.headers, settings.header)
    let entry: KeyEntry | null = null
    for (const key of keys) entry ??= lookupKey(table, key)
    if (entry === null) {
      if (settings.passThroughUnknown) {
        request.gw.client = unknownIdentity
        return done()
      }
      request.log.debug({ presented: keys.length }, 'client key refused')
      refuse(request, reply, keys.length === 0 ? 'missing_api_key' : 'invalid_api_key', refusals)
    }
    if (!entry.enabled) {
      request.log.info({ client: entry.identity.name }, 'disabled client key refused')
      refuse(request, reply, 'disabled_api_key', refusals)
    }
    request.gw.client = entry.identity
    done()
  })

  // keys are fixed at boot: with no model list on any key there is nothing to enforce
  if (!settings.keys.some(k => k.allowedModels !== undefined)) return
  fastify.addHook('preHandler', function enforceAllowedModels (request, _reply, done) {
    const allowed = request.gw.client?.allowedModels
    if (allowed === undefined) return done()
    assertModelCheckable(request)
    assertDeploymentAllowed(request, allowed)
    const model = request.gw.model
    if (model === null || allowed.includes(model)) return done()
    request.gw.errorClass = 'model_not_allowed'
    throw new ModelNotAllowedError(model.length > MAX_MODEL_IN_MESSAGE ? `${model.slice(0, MAX_MODEL_IN_MESSAGE)}…` : model)
  })
}

/**
 * The allowed-models check of a multipart form (transcriptions, image edits…), run by the upload
 * pass-through on each field as it streams: the same rules as a JSON body, a `model` field that is
 * not allowed is a 403, a second field spelled like `model` in any case is a 400. Null when the
 * key is not restricted. A form without a model field goes on, as a JSON body without one does.
 */
export function formModelCheck (request: FastifyRequest): FieldCheck | null {
  const allowed = request.gw.client?.allowedModels
  if (allowed === undefined) return null
  let seen = false
  return (name, value) => {
    if (name.toLowerCase() !== 'model') return null
    if (seen) {
      request.gw.errorClass = 'model_not_checkable'
      return new ModelUncheckableError()
    }
    seen = true
    request.gw.model = value
    if (allowed.includes(value)) return null
    request.gw.errorClass = 'model_not_allowed'
    return new ModelNotAllowedError(value.length > MAX_MODEL_IN_MESSAGE ? `${value.slice(0, MAX_MODEL_IN_MESSAGE)}…` : value)
  }
}

function hasBody (request: FastifyRequest): boolean {
  const length = request.headers['content-length']
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * A key restricted to some models must send its model where the gateway reads it (a realtime
 * session: its `model` query parameter). Upstreams are more lenient than the gateway: many parse
 * a body as JSON whatever its content type (or without one), and Go's encoding/json matches keys
 * case-insensitively (`"MODEL"` fills `Model`, the last one wins). So, for such a key: a body that
 * is neither JSON nor a multipart form, a second key spelled like `model` in another case, or a
 * `model` that is not a string, is a 400 instead of a way around the list. (A multipart form's
 * model field is checked while the form streams: `formModelCheck`.)
 */
function assertModelCheckable (request: FastifyRequest): void {
  const gw = request.gw
  // a realtime session names its model in the query (routes/v1/realtime.ts sets gw.model): exactly
  // once, since upstream frameworks differ on which of two values they take
  if (request.headers.upgrade?.toLowerCase() === 'websocket') {
    const q = request.url.indexOf('?')
    if (q === -1 || new URLSearchParams(request.url.slice(q + 1)).getAll('model').length !== 1) throw new ModelUncheckableError()
    return
  }
  if (gw.rawBody === null) {
    const type = request.headers['content-type']
    if (hasBody(request) && !(typeof type === 'string' && /^multipart\/form-data\b/i.test(type))) throw new ModelUncheckableError()
    return
  }
  const json = gw.json
  if (json === null) return
  if ('model' in json && typeof json.model !== 'string') throw new ModelUncheckableError()
  for (const key in json) if (key.length === 5 && key !== 'model' && key.toLowerCase() === 'model') throw new ModelUncheckableError()
}

const AZURE_DEPLOYMENT = /^\/openai\/deployments\/([^/?]+)/

/**
 * Azure clients name the deployment in the path (`/openai/deployments/{d}/…`), and Azure serves
 * that deployment whatever the body's `model` says: for a restricted key, the deployment must be
 * the one of an allowed model (the target's `azure.deployments` map, or the model's own name).
 */
function assertDeploymentAllowed (request: FastifyRequest, allowed: readonly string[]): void {
  const m = AZURE_DEPLOYMENT.exec(request.url)
  if (m === null) return
  let named: string
  try {
    named = decodeURIComponent(m[1])
  } catch {
    throw new ModelUncheckableError()
  }
  const deployments = request.gw.target?.azure?.deployments
  if (allowed.some(model => (deployments?.get(model) ?? model) === named)) return
  request.gw.errorClass = 'model_not_allowed'
  throw new ModelNotAllowedError(named.length > MAX_MODEL_IN_MESSAGE ? `${named.slice(0, MAX_MODEL_IN_MESSAGE)}…` : named)
}

const auth: FastifyPluginAsync<AuthOptions> = async (fastify, { auth: settings, refusals = null }) => {
  const checking = settings.enabled && settings.keys.length > 0
  const table = keyTable(checking ? settings.keys : [])
  // the configured header carries a client key: consumed here, never forwarded upstream
  const dropHeader = settings.header !== '' && !CLIENT_CREDENTIALS.includes(settings.header) ? settings.header : null

  fastify.decorate('clientAuth', {
    mode: checking ? 'keys' : 'pass-through',
    passThroughUnknown: checking && settings.passThroughUnknown,
    header: settings.header,
    keys: settings.keys.map(summaryOf)
  } satisfies ClientAuth)

  if (!checking) {
    fastify.log.warn(settings.keys.length > 0
      ? 'client key checking is off (auth.enabled=false): every caller is accepted (pass-through mode)'
      : 'no client keys configured: every caller is accepted (pass-through mode)')
  } else if (settings.passThroughUnknown) {
    fastify.log.warn('auth.passThroughUnknown: callers with unknown or missing keys are forwarded with their own credentials')
  }

  if (checking) addClientChecks(fastify, table, settings, refusals)

  if (dropHeader !== null) {
    // after authenticateClient (hooks run in registration order), which reads it first
    fastify.addHook('onRequest', async function consumeAuthHeader (request) {
      delete request.raw.headers[dropHeader]
    })
  }
}

export default fp(auth, {
  name: 'gateway-auth',
  fastify: '5.x',
  dependencies: ['gateway-request-state']
})
