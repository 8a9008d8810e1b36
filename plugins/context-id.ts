/**
 * Seed 000's `[CONTEXT_ID:…]` conversation handling (its `-nocid` flag), with its defects fixed:
 * - responses: tags are cut from JSON bodies and live event streams (also when split across
 *   deltas and network packets) and the first tag's chain is stored for the conversation;
 * - requests: a JSON POST with `messages` gets the stored chain plus one new id per assistant
 *   message appended to each assistant message, as seed 000 does;
 * - the conversation key is scoped by client, so no two clients share one (seed 000 put every
 *   request without tag headers under one shared empty key).
 * The store is an LRU in memory, or Redis when a client is handed in. Off, no hook is added.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { MemoryContextStore, RedisContextStore, type ContextStore, type RedisBreaker, type RedisLike } from '../src/lib/context-store.js'
import { ContextTagFilter, conversationKey, injectChain, tagHeaderKey } from '../src/lib/context-tags.js'
import { askForIdentity, rewriteHook, type ResponseRewrite, type RewriteLimits } from '../src/proxy/response-rewrite.js'
import { CLIENT_CREDENTIALS } from '../src/proxy/headers.js'
import type { ProxyBody } from '../src/proxy/proxy-body.js'
import { keyedClient } from '../src/auth/client.js'

export interface ContextIdOptions {
  contextId: GatewayConfig['transforms']['contextId']
  limits: RewriteLimits
  /** an ioredis-compatible client: chains then live in Redis, shared by every gateway instance */
  redis?: RedisLike | null
  /** the shared Redis breaker (`fastify.redisHealth`): a failing Redis is skipped, not waited for */
  redisHealth?: RedisBreaker | null
  /** prefix shared by every Redis key of this gateway (`redis.keyPrefix`) */
  keyPrefix?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the conversation store; null when context-id handling is off */
    contextIdStore: ContextStore | null
  }
}

/**
 * Without a client key identifying the caller (pass-through mode, or an unknown caller let
 * through by auth.passThroughUnknown), the credential it presented stands for it; hashed by
 * conversationKey, never kept as is.
 */
function presentedCredential (request: FastifyRequest): string | null {
  for (const name of CLIENT_CREDENTIALS) {
    const value = request.headers[name]
    if (typeof value === 'string' && value !== '') return value
  }
  return null
}

/** The conversation a request belongs to, kept from its request hook for its response stage. */
const kConversation = Symbol('context-id conversation')
type Conversing = FastifyRequest & { [kConversation]: string | null }

export function requestConversationKey (request: FastifyRequest): string {
  const scope = { client: keyedClient(request.client)?.name, credential: presentedCredential(request), ip: request.ip }
  return conversationKey(scope, tagHeaderKey(request.raw.headersDistinct))
}

const contextId: FastifyPluginAsync<ContextIdOptions> = async (fastify: FastifyInstance, opts) => {
  if (!opts.contextId.enabled) {
    fastify.decorate('contextIdStore', null)
    return
  }
  const store: ContextStore = opts.redis != null
    ? new RedisContextStore(opts.redis, { ttlMs: opts.contextId.ttlMs, prefix: `${opts.keyPrefix ?? 'llm-gateway:'}context-id:`, breaker: opts.redisHealth })
    : new MemoryContextStore(opts.contextId)
  fastify.decorate('contextIdStore', store)
  fastify.decorateRequest(kConversation, null)
  fastify.caches.register('contextIds', async () => await store.clear())
  if (store.kind === 'redis' && opts.contextId.ttlMs === 0) {
    fastify.log.warn('context-id chains are kept in Redis without a TTL: set transforms.contextId.ttlMs (or a Redis maxmemory policy) to bound them')
  }

  function responseRewrite (request: FastifyRequest, key: string): ResponseRewrite {
    const filter = new ContextTagFilter(async (chain) => {
      try {
        await store.set(key, chain)
        request.log.debug({ chainLength: chain.split('|').length }, 'context id stored')
      } catch (err) {
        request.log.warn({ err }, 'context id could not be stored')
      }
    })
    return { json: filter.json, sse: filter, beforeEnd: () => filter.beforeEnd() }
  }

  /**
   * Reads the chain without taking it, and writes the request's chain only if no other request
   * or response changed it meanwhile (see context-store.ts): concurrent requests of one
   * conversation never leave it empty or overwrite a newer upstream tag.
   */
  async function injectStoredChain (request: FastifyRequest, key: string, body: ProxyBody): Promise<void> {
    let stored: string | undefined
    try {
      stored = await store.get(key)
    } catch (err) {
      request.log.warn({ err }, 'context id store unavailable; request sent without a stored chain')
    }
    let chain = ''
    body.edit((json) => {
      const injected = injectChain(json.messages as unknown[], stored)
      chain = injected.chain
      return injected.changed
    })
    if (chain === '' || chain === stored) return
    try {
      await store.compareAndSet(key, stored, chain)
    } catch (err) {
      request.log.warn({ err }, 'context id could not be stored')
    }
  }

  fastify.addHook('preHandler', async function contextIdRequest (request) {
    if (request.headers.upgrade !== undefined) return // WebSockets are left alone
    const key = requestConversationKey(request)
    // only requests that carry a conversation take part: an embeddings call no longer wipes it
    const body = request.proxyBody
    if (request.method === 'POST' && body !== null && Array.isArray(body.json?.messages)) {
      await injectStoredChain(request, key, body)
    }
    askForIdentity(request)
    ;(request as Conversing)[kConversation] = key
  })

  const rewrite = rewriteHook('context-id', opts.limits, (start) => {
    const key = (start.request as Conversing)[kConversation]
    return key === null ? null : responseRewrite(start.request, key)
  })
  fastify.forwarder.addStage({ name: 'context-id', position: 'near-client', make: rewrite })
}

export default fp(contextId, { name: 'gateway-context-id', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-caches', 'gateway-forwarder'] })
