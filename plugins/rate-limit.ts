/**
 * Request rate limits over @fastify/rate-limit: `max` requests per `windowMs` (fixed window), per
 * client key when the request is authenticated (`request.client`, set by the auth plugin's
 * onRequest, which is registered before this one), else per client address (IPv6 per /64). A key
 * may carry its own limit (`client.rateLimit`). Counters live in Redis when configured, so every
 * replica enforces the same limit, else in this process (src/abuse/fixed-window.ts: a bounded LRU
 * with @fastify/rate-limit's window arithmetic, counted from a sync hook without a promise).
 *
 * The limiter runs in an onRequest hook of the API scope rather than per route, so it also covers
 * the 404 handler (scanners, src/app.ts) and WebSocket upgrades; health probes and the admin API
 * are outside that scope.
 * Answers carry the gateway's own names (`x-gateway-ratelimit-limit`, …-remaining, …-reset) and
 * OpenAI's (`x-ratelimit-limit-requests`, …-remaining-…, …-reset-…), the latter replacing an
 * upstream's except on its 429; a refusal is a 429 in the client's SDK shape with `Retry-After`.
 *
 * If Redis fails, requests are let through (fail open, the default) or refused with 503
 * (`failClosed`); either way the outage is logged once (plugins/redis.ts) and counted here. Until
 * Redis answers again (the breaker in plugins/redis.ts) requests do not wait on it at all.
 *
 * Beside the rate, the requests in flight at once are capped per the same scope (`maxConcurrent`,
 * or a key's own): a request that never ends (a body trickled a byte at a time, an answer never
 * read) holds an upstream connection, and without a cap one tenant could hold all of them. Over
 * the cap: 429 `concurrency_limit`. The slot is given back once, however the request ends.
 * Both count per one scope key, computed once per request and kept on it (`kScope`).
 *
 * Seed 002 meant to do this and never did: its limiter read config keys that did not exist.
 */
import fp from 'fastify-plugin'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import fastifyRateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { networkKey } from '../src/lib/ip.js'
import { FixedWindowCounter } from '../src/abuse/fixed-window.js'
import { InFlight } from '../src/abuse/in-flight.js'
import { ConcurrencyLimitError, RateLimitedError, RateLimitUnavailableError } from '../src/errors.js'
import { keyedClient } from '../src/auth/client.js'

export interface RateLimitPluginOptions {
  rateLimit: GatewayConfig['rateLimit']
  /** Redis key prefix (redis.keyPrefix) */
  keyPrefix: string
  /** keep-alive connections of the smallest upstream pool (upstream.connections): what the cap protects */
  poolSize: number
}

export interface RateLimitStats {
  /** requests refused with 429 */
  limited: number
  /** requests let through unchecked because Redis failed (fail open) */
  unchecked: number
  /** requests refused with 503 because Redis failed (fail closed) */
  refusedUnavailable: number
  /** requests refused with 429 because their scope had maxConcurrent requests in flight */
  concurrencyLimited: number
  /** requests holding an in-flight slot now */
  readonly inFlight: number
}

/** The request's rate-limit scope (`key:<client>` or `ip:<network>`), once computed: this plugin's own. */
const kScope = Symbol('gateway.rateLimitScope')

declare module 'fastify' {
  interface FastifyInstance {
    rateLimitStats: RateLimitStats
  }
  interface FastifyRequest {
    [kScope]: string | null
  }
}

/** OpenAI writes reset times as Go durations: `20ms`, `45s`, `6m0s`, `1h2m3s`. */
export function goDuration (ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`
  const total = Math.ceil(ms / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  if (h > 0) return `${h}h${m}m${s}s`
  if (m > 0) return `${m}m${s}s`
  return `${s}s`
}

function describeWindow (ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

/** What one count decided; the fields @fastify/rate-limit's limiter returns, which the answer needs. */
interface Verdict {
  key: string
  max: number
  timeWindow: number
  remaining: number
  isExceeded: boolean
  ttl: number
}

const rateLimit: FastifyPluginAsync<RateLimitPluginOptions> = async (fastify, { rateLimit: cfg, keyPrefix, poolSize }) => {
  const inFlight = new InFlight()
  const stats: RateLimitStats = { limited: 0, unchecked: 0, refusedUnavailable: 0, concurrencyLimited: 0, get inFlight () { return inFlight.total } }
  fastify.decorate('rateLimitStats', stats)
  if (!cfg.enabled) return

  const redis = fastify.redis
  const health = fastify.redisHealth
  fastify.decorateRequest(kScope, null)
  // a caller without a client key (pass-through, or an unknown caller let through) is counted by
  // its address network: a credential it made up would give it a fresh count each time. Read by
  // the rate count and the in-flight cap alike: computed by the first, kept for the second.
  const scopeOf = (request: FastifyRequest): string => {
    let scope = request[kScope]
    if (scope === null) {
      const client = keyedClient(request.client)
      scope = client !== null ? `key:${client.name}` : `ip:${networkKey(request.clientIp, cfg.ipv6Subnet)}`
      request[kScope] = scope
    }
    return scope
  }
  const maxOf = (request: FastifyRequest): number => keyedClient(request.client)?.rateLimit?.max ?? cfg.max
  const windowOf = (request: FastifyRequest): number => keyedClient(request.client)?.rateLimit?.timeWindowMs ?? cfg.windowMs

  /** Sets the answer's limit headers; throws the 429 when the count is over the limit. */
  function apply (request: FastifyRequest, reply: FastifyReply, v: Verdict): void {
    const resetMs = Math.max(0, v.ttl)
    const remaining = String(v.isExceeded ? 0 : v.remaining)
    const reset = goDuration(resetMs)
    // under the gateway's own names on every answer: they never collide with an upstream's
    reply.header('x-gateway-ratelimit-limit', String(v.max))
    reply.header('x-gateway-ratelimit-remaining', remaining)
    reply.header('x-gateway-ratelimit-reset', reset)
    // and under OpenAI's, which SDKs and tools read: on the reply now, they win over a forwarded
    // upstream's of the same name (src/proxy/forward.ts), so no onSend hook has to put them back;
    // except on an upstream's 429, whose own say when to retry (yieldLimitHeaders)
    reply.header('x-ratelimit-limit-requests', String(v.max))
    reply.header('x-ratelimit-remaining-requests', remaining)
    reply.header('x-ratelimit-reset-requests', reset)
    if (!v.isExceeded) return
    stats.limited++
    const retrySeconds = Math.max(1, Math.ceil(v.ttl / 1000))
    reply.header('retry-after', String(retrySeconds))
    reply.header('retry-after-ms', String(Math.max(1, resetMs)))
    request.log.debug({ rateLimitKey: v.key, max: v.max }, 'rate limit reached')
    throw new RateLimitedError(v.max, describeWindow(v.timeWindow), retrySeconds)
  }

  if (redis === null) {
    // Counters in this process, counted synchronously: the package's limiter would add a promise
    // and four awaits per request, for a store that needs none.
    const counter = new FixedWindowCounter(cfg.maxTracked)
    fastify.addHook('onRequest', function enforceRateLimit (request, reply, done) {
      const key = scopeOf(request)
      const max = maxOf(request)
      const timeWindow = windowOf(request)
      const res = counter.hit(key, timeWindow)
      apply(request, reply, { key, max, timeWindow, remaining: Math.max(0, max - res.current), isExceeded: res.current > max, ttl: res.ttl })
      done()
    })
  } else {
    await fastify.register(fastifyRateLimit, {
      global: false, // no per-route hooks: the one root hook below covers every route
      max: maxOf,
      timeWindow: windowOf,
      keyGenerator: scopeOf,
      skipOnError: false, // store failures reach the hook below, which applies failClosed
      cache: cfg.maxTracked,
      redis,
      nameSpace: `${keyPrefix}ratelimit:`
    })
    const limiter = fastify.createRateLimit()

    /** Redis failed, or the breaker says it is failing (plugins/redis.ts): failClosed decides. */
    function unavailable (reply: FastifyReply): void {
      if (cfg.failClosed) {
        stats.refusedUnavailable++
        reply.header('retry-after', '1')
        throw new RateLimitUnavailableError()
      }
      stats.unchecked++
    }

    fastify.addHook('onRequest', async function enforceRateLimitShared (request, reply) {
      // a stalled Redis would make every request wait for the command timeout
      if (health.bypassed) return unavailable(reply)
      let result
      try {
        result = await limiter(request)
      } catch (err) {
        health.failed(err, 'rate limit')
        return unavailable(reply)
      }
      health.recovered()
      if (result.isAllowed) return
      apply(request, reply, result)
    })
  }

  capConcurrency(fastify, inFlight, cfg.maxConcurrent, poolSize, scopeOf, stats)
}

/** the slot a response holds; the slots of requests a socket carries (pipelined: more than one) */
const kSlot = Symbol('in-flight slot')
const kSlots = Symbol('in-flight slots of a connection')
const kSlotSocket = Symbol('in-flight slot connection')
type SlotResponse = ServerResponse & { [kSlot]?: () => void, [kSlotSocket]?: SlotSocket | null }
type SlotSocket = Socket & { [kSlots]?: Array<() => void> }

/**
 * The slot is given back when the response closes, or when its connection does (a pipelined
 * request whose connection went before its turn to answer has no response that closes). Shared
 * listeners, one per response and one per connection: nothing allocated per request. A
 * connection's slots are a small array, not a Set: a Set with an add and a delete on every
 * request keeps dead objects alive (docs/performance.md, "Tables rebuilt on every request").
 */
function holdSlot (res: ServerResponse, socket: Socket | null, release: () => void): void {
  (res as SlotResponse)[kSlot] = release
  res.on('close', responseClosed)
  // (a request injected in-process has a stand-in socket that never closes)
  if (socket === null || typeof socket.on !== 'function') return
  ;(res as SlotResponse)[kSlotSocket] = socket
  let held = (socket as SlotSocket)[kSlots]
  if (held === undefined) {
    held = []
    ;(socket as SlotSocket)[kSlots] = held
    socket.on('close', connectionClosed)
  }
  held.push(release)
}

/** Takes `release` out of a connection's slots: the last one moves into its place. */
function dropSlot (held: Array<() => void>, release: () => void): void {
  const i = held.indexOf(release)
  if (i === -1) return
  const last = held.pop() as () => void
  if (i < held.length) held[i] = last
}

function responseClosed (this: SlotResponse): void {
  const release = this[kSlot]
  if (release === undefined) return
  this[kSlot] = undefined
  // (the response no longer knows its socket once it finished)
  const held = this[kSlotSocket]?.[kSlots]
  if (held !== undefined) dropSlot(held, release)
  release()
}

function connectionClosed (this: SlotSocket): void {
  const held = this[kSlots]
  if (held === undefined) return
  this[kSlots] = undefined
  for (const release of held) release()
}

/**
 * Takes an in-flight slot for each request (after the rate count, so a refused request holds
 * none) and gives it back when the request is over: its response closed (answered, refused, the
 * client gone, the upstream failed, a stream abandoned) or its connection closed (a realtime
 * session ended, or a pipelined request whose connection went before its turn to answer).
 */
function capConcurrency (fastify: FastifyInstance, inFlight: InFlight, maxConcurrent: number, poolSize: number, scopeOf: (request: FastifyRequest) => string, stats: RateLimitStats): void {
  if (maxConcurrent === 0 || maxConcurrent >= poolSize) {
    fastify.log.warn({ maxConcurrent, upstreamConnections: poolSize }, 'rateLimit.maxConcurrent is not below upstream.connections: one client can hold every upstream connection')
  }
  // callback form: a sync decision, no promise per request
  fastify.addHook('onRequest', function capInFlight (request, reply, done) {
    const cap = keyedClient(request.client)?.maxConcurrent ?? maxConcurrent
    if (cap === 0) return done()
    const scope = scopeOf(request)
    const release = inFlight.take(scope, cap)
    if (release === null) {
      stats.concurrencyLimited++
      // no reset time to promise: a slot frees when one of the caller's own requests ends
      reply.header('retry-after', '1')
      request.log.debug({ rateLimitKey: scope, maxConcurrent: cap }, 'concurrency limit reached')
      throw new ConcurrencyLimitError(cap)
    }
    holdSlot(reply.raw, request.raw.socket, release)
    done()
  })
}

export default fp(rateLimit, { name: 'gateway-rate-limit', fastify: '5.x', dependencies: ['gateway-client-ip', 'gateway-redis'] })
