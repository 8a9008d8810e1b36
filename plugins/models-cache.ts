/**
 * The model list cache behind `GET /v1/models` (routes/v1/models.ts).
 *
 * One entry per upstream target (name and origin), upstream credential, API flavour (OpenAI, or
 * Anthropic with its `anthropic-version`) and path: different keys may see different models.
 * Only 2xx answers are stored (seed 001 cached errors for a day). Concurrent misses for one entry
 * share a single upstream request (single flight), so a cold start under load costs one call.
 * Entries live `models.cacheTtlMs` (24 h by default) in a bounded LRU.
 *
 * The list is fetched over the target's own undici Agent with the same header rules as the
 * forwarder (`upstreamRequestHeaders`, `upstreamKeyFor`): no second HTTP client.
 */
import fp from 'fastify-plugin'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { GatewayConfig } from '../config/schema.js'
import { isPlainObject } from '../config/paths.js'
import { UpstreamProtocolError } from '../src/errors.js'
import { addTargetHeaders, joinUpstreamPath, upstreamIdentityFor, upstreamKeyFor } from '../src/proxy/forward.js'
import { CLIENT_CREDENTIALS, clientResponseHeaders, upstreamRequestHeaders } from '../src/proxy/headers.js'
import { classifyUpstreamError, type UpstreamFailure } from '../src/proxy/upstream-errors.js'
import { checkedBody, ERROR_BODY_BOUND, isErrorStatus } from '../src/proxy/answer-check.js'
import type { UpstreamTarget } from '../src/upstream/target.js'
import type { ListResult, ModelList, ModelsCache } from '../src/models/list.js'

export interface ModelsCacheOptions {
  models: GatewayConfig['models']
}

declare module 'fastify' {
  interface FastifyInstance {
    modelsCache: ModelsCache
  }
}

/** Model lists are small; anything bigger is not a model list. */
const MAX_LIST_BYTES = 8 * 1024 * 1024

/**
 * Not sent on a fetch whose answer other clients will get: compression and conditional requests
 * are per client, cookies are private.
 */
const NOT_SHARED = new Set(['accept-encoding', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range', 'cookie'])

/** Request headers that change which models an upstream lists. */
const VARY = ['anthropic-version', 'anthropic-beta', 'openai-organization', 'openai-project']

function headerText (value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : value ?? ''
}

/**
 * Target name and origin in clear (for debugging), everything else hashed: the credential is
 * the upstream key this request would use, or the client's own credentials when they pass through.
 */
export function cacheKey (request: FastifyRequest, target: UpstreamTarget, path: string): string {
  const who = upstreamIdentityFor(request, target)
  const h = request.headers
  const credential = who.kind === 'key' ? `key:${who.key ?? ''}` : who.kind === 'pool' ? 'pool' : `own:${CLIENT_CREDENTIALS.map(n => headerText(h[n])).join('\n')}`
  const hash = createHash('sha256')
  for (const part of [credential, path, ...VARY.map(n => headerText(h[n]))]) hash.update(part).update('\0')
  return `${target.name} ${target.origin}${target.basePath} ${hash.digest('hex')}`
}

async function readBounded (body: Readable, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > max) {
      body.destroy()
      return null
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function indexById (json: Record<string, unknown> | null): Map<string, unknown> {
  const byId = new Map<string, unknown>()
  const data = json?.data
  if (!Array.isArray(data)) return byId
  for (const item of data) {
    if (isPlainObject(item) && typeof item.id === 'string') byId.set(item.id, item)
  }
  return byId
}

function parseJson (body: Buffer, contentType: string): Record<string, unknown> | null {
  if (!/\bjson\b/i.test(contentType)) return null
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    return isPlainObject(parsed) ? parsed : null
  } catch {
    return null
  }
}

/** A list over MAX_LIST_BYTES, or an error answer too large or unreadable to check for secrets. */
class ListTooLargeError extends Error {}

function failureOf (err: unknown): UpstreamFailure {
  if (err instanceof ListTooLargeError) {
    return { error: new UpstreamProtocolError(), errorClass: 'upstream_protocol', detail: 'model list too large, or an error answer that could not be checked', status: 502 }
  }
  return classifyUpstreamError(err)
}

async function fetchList (request: FastifyRequest, target: UpstreamTarget, path: string): Promise<ModelList> {
  const headers = upstreamRequestHeaders(request.headers, {
    provider: target.provider,
    key: upstreamKeyFor(request, target),
    requestId: request.id,
    drop: NOT_SHARED
  })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(headers, target, request.gw.client)
  // not tied to this client's connection: other requests may be waiting on the same answer
  const res = await target.dispatcher.request({
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, path),
    method: 'GET',
    headers,
    headersTimeout: target.firstByteTimeoutMs,
    bodyTimeout: target.idleTimeoutMs
  })
  let body = await readBounded(res.body, MAX_LIST_BYTES)
  if (body === null) throw new ListTooLargeError()
  if (target.secrets !== null && isErrorStatus(res.statusCode)) {
    // an error may name the key it was sent: checked as the forwarder checks it
    body = body.length > ERROR_BODY_BOUND ? null : checkedBody(body, res.headers['content-encoding'], target.secrets)
    if (body === null) throw new ListTooLargeError()
    delete res.headers['content-encoding']
  }
  const contentType = headerText(res.headers['content-type'])
  const out = clientResponseHeaders(res.headers, target.secrets)
  delete out['content-length']
  delete out['set-cookie'] // shared with other clients
  const json = res.statusCode >= 200 && res.statusCode < 300 ? parseJson(body, contentType) : null
  return { status: res.statusCode, headers: out, contentType, body, json, byId: indexById(json), storedAt: Date.now() }
}

const modelsCache: FastifyPluginAsync<ModelsCacheOptions> = async (fastify, { models }) => {
  const caching = models.cacheTtlMs > 0
  const cache = new LRUCache<string, ModelList>({
    max: models.cacheMaxEntries,
    ttl: caching ? models.cacheTtlMs : undefined,
    maxSize: 64 * 1024 * 1024,
    sizeCalculation: (list) => Math.max(1, list.body.length * 2)
  })
  const inflight = new Map<string, Promise<ListResult>>()
  // bumped by clear(): a fetch that started before a clear does not store its answer
  let generation = 0

  function startFetch (request: FastifyRequest, target: UpstreamTarget, path: string, key: string): Promise<ListResult> {
    const startedIn = generation
    const flight = fetchList(request, target, path).then((list): ListResult => {
      if (caching && list.status >= 200 && list.status < 300 && startedIn === generation) cache.set(key, list)
      return { ok: true, list, hit: false }
    }, (err: unknown): ListResult => {
      const failure = failureOf(err)
      request.log.warn({ upstream: target.name, errorClass: failure.errorClass, cause: failure.detail }, 'model list request failed')
      return { ok: false, failure }
    }).finally(() => {
      if (inflight.get(key) === flight) inflight.delete(key)
    })
    inflight.set(key, flight)
    return flight
  }

  const api: ModelsCache = {
    async list (request, target, path) {
      const key = cacheKey(request, target, path)
      const cached = cache.get(key)
      if (cached !== undefined) return { ok: true, list: cached, hit: true }
      const pending = inflight.get(key)
      if (pending === undefined) return await startFetch(request, target, path, key)
      request.log.debug('model list: joining the in-flight upstream request')
      return await pending
    },
    peek: (request, target, path) => cache.get(cacheKey(request, target, path)),
    size: () => cache.size,
    clear () {
      cache.purgeStale() // expired entries are not counted as cleared
      const n = cache.size
      cache.clear()
      inflight.clear()
      generation++
      return n
    }
  }
  fastify.decorate('modelsCache', api)
  fastify.caches.register('models', api.clear)
}

export default fp(modelsCache, {
  name: 'gateway-models-cache',
  fastify: '5.x',
  dependencies: ['gateway-caches', 'gateway-upstreams']
})
