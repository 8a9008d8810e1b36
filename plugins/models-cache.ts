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
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { GatewayConfig } from '../config/schema.js'
import { isPlainObject } from '../config/paths.js'
import { UpstreamProtocolError } from '../src/errors.js'
import { upstreamIdentityFor } from '../src/routing/credentials.js'
import { CLIENT_CREDENTIALS } from '../src/proxy/headers.js'
import { classifyUpstreamError, type UpstreamFailure } from '../src/proxy/upstream-errors.js'
import { TooLargeAnswerError } from '../src/proxy/fetch.js'
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

function failureOf (err: unknown): UpstreamFailure {
  if (err instanceof TooLargeAnswerError) {
    return { error: new UpstreamProtocolError(), errorClass: 'upstream_protocol', detail: 'model list too large, or an error answer that could not be checked', status: 502 }
  }
  return classifyUpstreamError(err)
}

async function fetchList (fetch: FastifyInstance['forwarder']['fetch'], request: FastifyRequest, target: UpstreamTarget, path: string): Promise<ModelList> {
  const answer = await fetch(request, target, { path, drop: NOT_SHARED, maxBytes: MAX_LIST_BYTES })
  delete answer.headers['set-cookie'] // shared with other clients
  const json = answer.status >= 200 && answer.status < 300 ? parseJson(answer.body, answer.contentType) : null
  return { ...answer, json, byId: indexById(json), storedAt: Date.now() }
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
    const flight = fetchList(fastify.forwarder.fetch, request, target, path).then((list): ListResult => {
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
  dependencies: ['gateway-caches', 'gateway-upstreams', 'gateway-forwarder']
})
