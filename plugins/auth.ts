/**
 * Client authentication: who may call the gateway, and as whom (`request.client`).
 *
 * An `onRequest` hook of the API scope (src/app.ts: health probes and the admin API, which has
 * its own token, are outside it), so an unknown caller is refused before any body is read (STYLE.md
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
import { describeClientAuthMode, upstreamKeysOf, type ClientAuthMode, type ClientKeyConfig } from '../config/sections/auth.js'
import type { RefusalLimit } from '../src/abuse/refusal-limit.js'
import {
  AuthRefusalsLimitedError, EndpointNotAllowedError, FormUncheckableError, InvalidApiKeyError, ModelNotAllowedError, ModelUncheckableError,
  PathUncheckableError, isAnthropicPath
} from '../src/errors.js'
import { CLIENT_CREDENTIALS } from '../src/proxy/headers.js'
import { azureDeploymentOf, joinUpstreamPath, pathSegments } from '../src/routing/paths.js'
import type { FormCheck } from '../src/uploads/limiter.js'
import type { ClientIdentity } from '../src/auth/client.js'

export interface AuthOptions {
  auth: GatewayConfig['auth']
  /** decided from the whole config (an upstream key makes an unchecked gateway an open relay) */
  mode: ClientAuthMode
  /** routing.defaultTarget: the target a bare `upstreamKey` belongs to */
  defaultTarget: string
  /** refused authentications per address (shared with the admin guard); null = not limited */
  refusals?: RefusalLimit | null
}

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
}

export interface ClientAuth {
  /** keys required, callers' own credentials pass through, or open relay (config/sections/auth.ts) */
  mode: ClientAuthMode
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
function identityOf (k: ClientKeyConfig, defaultTarget: string): ClientIdentity {
  const id: ClientIdentity = { name: k.name }
  if (k.upstreamKey !== undefined) id.upstreamKeys = upstreamKeysOf(k.upstreamKey, defaultTarget)
  if (k.allowedTargets !== undefined) id.allowedTargets = Object.freeze([...k.allowedTargets]) as string[]
  if (k.allowedModels !== undefined) id.allowedModels = Object.freeze([...k.allowedModels]) as string[]
  if (k.rateLimit !== undefined) id.rateLimit = Object.freeze({ ...k.rateLimit })
  if (k.maxConcurrent !== undefined) id.maxConcurrent = k.maxConcurrent
  return Object.freeze(id)
}

function summaryOf (k: ClientKeyConfig, defaultTarget: string): KeySummary {
  return {
    name: k.name,
    enabled: k.enabled,
    hashed: k.keySha256 !== undefined,
    mapsUpstreamKey: k.upstreamKey !== undefined,
    ...(k.upstreamKey !== undefined ? { upstreamKeyTargets: [...upstreamKeysOf(k.upstreamKey, defaultTarget).keys()] } : {}),
    ...(k.allowedTargets !== undefined ? { allowedTargets: [...k.allowedTargets] } : {}),
    ...(k.allowedModels !== undefined ? { allowedModels: [...k.allowedModels] } : {}),
    ...(k.rateLimit !== undefined ? { rateLimit: { ...k.rateLimit } } : {}),
    ...(k.maxConcurrent !== undefined ? { maxConcurrent: k.maxConcurrent } : {})
  }
}

/** Digest (hex) → entry. Keys given as hashes and as plain text end up in the same map. */
function keyTable (keys: readonly ClientKeyConfig[], defaultTarget: string): Map<string, KeyEntry> {
  const table = new Map<string, KeyEntry>()
  for (const k of keys) {
    const digest = k.keySha256 !== undefined ? Buffer.from(k.keySha256, 'hex') : sha256(k.key as string)
    table.set(digest.toString('hex'), { digest, enabled: k.enabled, identity: identityOf(k, defaultTarget) })
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
  request.outcome.errorClass = 'auth_refusals_limited'
  throw new AuthRefusalsLimitedError(seconds)
}

function refuse (request: FastifyRequest, reply: FastifyReply, reason: string, refusals: RefusalLimit | null): never {
  refusals?.record(request.clientIp)
  // OpenAI clients expect the challenge; Anthropic's API does not send one
  if (!isAnthropicPath(request.upstream.apiPath)) reply.header('www-authenticate', 'Bearer')
  request.outcome.errorClass = reason
  throw new InvalidApiKeyError()
}

const MAX_MODEL_IN_MESSAGE = 200

function addClientChecks (fastify: FastifyInstance, table: ReadonlyMap<string, KeyEntry>, settings: GatewayConfig['auth'], refusals: RefusalLimit | null): void {
  const unknownIdentity: ClientIdentity = Object.freeze({ name: UNKNOWN_CLIENT, passThrough: true })

  // callback form, not async: the check is sync, so no promise and microtask per request; a
  // throw (refuse) reaches Fastify's error path exactly as a rejection would
  fastify.addHook('onRequest', function authenticateClient (request, reply, done) {
    refuseGuessing(request, reply, refusals)
    const keys = presentedKeys(request.headers, settings.header)
    let entry: KeyEntry | null = null
    for (const key of keys) entry ??= lookupKey(table, key)
    if (entry === null) {
      if (settings.passThroughUnknown) {
        request.client = unknownIdentity
        return done()
      }
      request.log.debug({ presented: keys.length }, 'client key refused')
      refuse(request, reply, keys.length === 0 ? 'missing_api_key' : 'invalid_api_key', refusals)
    }
    if (!entry.enabled) {
      request.log.info({ client: entry.identity.name }, 'disabled client key refused')
      refuse(request, reply, 'disabled_api_key', refusals)
    }
    request.client = entry.identity
    done()
  })

  // keys are fixed at boot: with no model list on any key there is nothing to enforce
  if (!settings.keys.some(k => k.allowedModels !== undefined)) return
  fastify.addHook('preHandler', function enforceAllowedModels (request, _reply, done) {
    const allowed = request.client?.allowedModels
    if (allowed === undefined) return done()
    const path = upstreamPathOf(request)
    assertEndpointCheckable(request, path.api)
    assertModelCheckable(request)
    const model = request.upstream.model
    if (model !== null && !allowed.includes(model)) {
      request.outcome.errorClass = 'model_not_allowed'
      throw new ModelNotAllowedError(model.length > MAX_MODEL_IN_MESSAGE ? `${model.slice(0, MAX_MODEL_IN_MESSAGE)}…` : model)
    }
    // after the model: an Azure path mapped from a model that is not allowed names that model
    assertDeploymentsAllowed(request, allowed, path)
    done()
  })
}

/**
 * The allowed-models check of a multipart form (transcriptions, image edits…), run by the upload
 * pass-through on each field as it streams: the same rules as a JSON body, a `model` field that is
 * not allowed is a 403, a second field spelled like `model` in any case is a 400. Null when the
 * key is not restricted. A form without a model field goes on, as a JSON body without one does.
 * A form the pass-through cannot read as every upstream would (a part without a plain name, LF
 * line endings, a part header busboy refuses…) is a 400: its model may be where the check did not
 * look (src/uploads/form-framing.ts).
 */
export function formModelCheck (request: FastifyRequest): FormCheck | null {
  const allowed = request.client?.allowedModels
  if (allowed === undefined) return null
  let seen = false
  return {
    field (name, value) {
      if (name.length !== 5 || name.toLowerCase() !== 'model') return null
      if (seen) {
        request.outcome.errorClass = 'model_not_checkable'
        return new ModelUncheckableError()
      }
      seen = true
      request.upstream.model = value
      if (allowed.includes(value)) return null
      request.outcome.errorClass = 'model_not_allowed'
      return new ModelNotAllowedError(value.length > MAX_MODEL_IN_MESSAGE ? `${value.slice(0, MAX_MODEL_IN_MESSAGE)}…` : value)
    },
    unreadable () {
      request.outcome.errorClass = 'model_not_checkable'
      return new FormUncheckableError()
    }
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
  // a realtime session names its model in the query (routes/v1/realtime.ts sets it): exactly
  // once, since upstream frameworks differ on which of two values they take. Only a real upgrade
  // (the server's 'upgrade' event, which @fastify/websocket marks) on the realtime route: an
  // `Upgrade` header on any other request changes nothing about where its model is
  if (request.ws && request.routeUrl === REALTIME_ROUTE) {
    const q = request.url.indexOf('?')
    if (q === -1 || new URLSearchParams(request.url.slice(q + 1)).getAll('model').length !== 1) throw new ModelUncheckableError()
    return
  }
  const body = request.proxyBody
  if (body?.raw == null) {
    const type = request.headers['content-type']
    if (hasBody(request) && !(typeof type === 'string' && /^multipart\/form-data\b/i.test(type))) throw new ModelUncheckableError()
    return
  }
  const json = body.json
  if (json === null) return
  if ('model' in json && typeof json.model !== 'string') throw new ModelUncheckableError()
  for (const key in json) if (key.length === 5 && key !== 'model' && key.toLowerCase() === 'model') throw new ModelUncheckableError()
}

/** The realtime WebSocket route (routes/v1/realtime.ts). */
const REALTIME_ROUTE = '/v1/realtime'

/**
 * Endpoints that name their models where the gateway does not look: in an uploaded JSONL file
 * (`batches`), in each of many requests (`messages/batches`), nested in a session or an eval's data
 * source. Closed to restricted keys. Matched after `openai/` and `v1/`, case-insensitively.
 */
const UNCHECKED_ENDPOINTS = ['batches', 'messages/batches', 'realtime/client_secrets', 'realtime/calls', 'realtime/transcription_sessions', 'evals']

/** The path a request is sent upstream, as upstreams read it (see upstreamPathOf). */
interface UpstreamPath {
  /** the API path (`request.upstream.path`), in segments */
  api: string[]
  /** the same with the target's base path: what the upstream gets */
  sent: string[]
  /** the `deployment` query parameters (Azure's realtime endpoint names its deployment there) */
  deploymentParams: string[]
}

/**
 * For a restricted key, the path the routing chose (`request.upstream.path`, what the upstream gets)
 * read as upstreams read it (`pathSegments`: decoded); a path they may read otherwise is a 400.
 */
function upstreamPathOf (request: FastifyRequest): UpstreamPath {
  const plan = request.upstream
  const target = plan.target
  const path = plan.path !== '' ? plan.path : plan.apiPath
  const api = pathSegments(path)
  const sent = target !== null && target.basePath !== '' ? pathSegments(joinUpstreamPath(target.basePath, path)) : api
  if (api === null || sent === null) {
    request.outcome.errorClass = 'model_not_checkable'
    throw new PathUncheckableError()
  }
  const q = path.indexOf('?')
  return { api, sent, deploymentParams: q === -1 ? [] : new URLSearchParams(path.slice(q + 1)).getAll('deployment') }
}

/** An endpoint in UNCHECKED_ENDPOINTS (after `openai/` and `v1/`, any case) is a 403. */
function assertEndpointCheckable (request: FastifyRequest, api: readonly string[]): void {
  let rest = api
  if (rest[0]?.toLowerCase() === 'openai') rest = rest.slice(1)
  if (rest[0]?.toLowerCase() === 'v1') rest = rest.slice(1)
  const endpoint = rest.join('/').toLowerCase()
  const closed = UNCHECKED_ENDPOINTS.find(e => endpoint === e || endpoint.startsWith(`${e}/`))
  if (closed === undefined) return
  request.outcome.errorClass = 'endpoint_not_allowed'
  throw new EndpointNotAllowedError(`/v1/${closed}`)
}

/**
 * Azure names the deployment in the path (`/openai/deployments/{d}/…`, any case) and serves it
 * whatever the body's `model` says, and its realtime endpoint in `?deployment=`: each must be the
 * deployment of an allowed model (the target's `azure.deployments` map, or the model's name).
 */
function assertDeploymentsAllowed (request: FastifyRequest, allowed: readonly string[], path: UpstreamPath): void {
  const inPath = azureDeploymentOf(path.sent)
  if (inPath !== null) assertDeploymentAllowed(request, allowed, inPath)
  for (const named of path.deploymentParams) assertDeploymentAllowed(request, allowed, named)
}

function assertDeploymentAllowed (request: FastifyRequest, allowed: readonly string[], named: string): void {
  const deployments = request.upstream.target?.azure?.deployments
  if (allowed.some(model => (deployments?.get(model) ?? model) === named)) return
  request.outcome.errorClass = 'model_not_allowed'
  throw new ModelNotAllowedError(named.length > MAX_MODEL_IN_MESSAGE ? `${named.slice(0, MAX_MODEL_IN_MESSAGE)}…` : named)
}

const auth: FastifyPluginAsync<AuthOptions> = async (fastify, { auth: settings, mode, defaultTarget, refusals = null }) => {
  const checking = mode === 'keys'
  const table = keyTable(checking ? settings.keys : [], defaultTarget)
  // the configured header carries a client key: consumed here, never forwarded upstream
  const dropHeader = settings.header !== '' && !CLIENT_CREDENTIALS.includes(settings.header) ? settings.header : null

  fastify.decorate('clientAuth', {
    mode,
    passThroughUnknown: checking && settings.passThroughUnknown,
    header: settings.header,
    keys: settings.keys.map(k => summaryOf(k, defaultTarget))
  } satisfies ClientAuth)

  if (!checking) {
    const why = settings.keys.length > 0 ? 'client key checking is off (auth.enabled=false)' : 'no client keys configured'
    fastify.log.warn(`${why}: ${describeClientAuthMode(mode)}`)
  } else if (settings.passThroughUnknown) {
    fastify.log.warn('auth.passThroughUnknown: callers with unknown or missing keys are forwarded with their own credentials')
  } else {
    fastify.log.info({ keys: table.size }, describeClientAuthMode(mode))
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
