/**
 * The optional Redis connection shared by every plugin that keeps state across replicas (rate-limit
 * counters, error counters and the blacklist here; later the models cache, usage totals and
 * context ids). `fastify.redis` is null without `redis.url`: callers then keep their state in
 * memory, which is the embedded default.
 *
 * Redis going away must never take the gateway down with it. Commands fail fast instead of
 * queueing (no offline queue, a command timeout), the client reconnects by itself with a capped
 * backoff, and `fastify.redisHealth` turns the stream of connection errors into one warn line per
 * outage, one info line when it ends, and counters for metrics.
 *
 * A stalled Redis (connected, not answering) fails no faster than the command timeout, which each
 * request would pay again. So `redisHealth` is also a circuit breaker: from a failure until Redis
 * answers again, `bypassed` is true and the code a request waits in (rate limit, context id, error
 * counts) takes the path it has for a dead Redis without sending anything; a PING every
 * `redis.coolDownMs` (or the client reconnecting) closes the breaker. No request waits for a probe.
 */
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify'
import { Redis } from 'ioredis'
import type { GatewayConfig } from '../config/schema.js'

export interface RedisPluginOptions {
  redis: GatewayConfig['redis']
}

export interface RedisHealthOptions {
  /** after a failure, how long requests skip Redis before a probe asks it again */
  coolDownMs?: number
  /** one cheap round trip (PING); none: only other callers' successes close the breaker */
  probe?: () => Promise<unknown>
}

/** Availability of Redis as the plugins experience it, and the breaker requests consult. */
export class RedisHealth {
  /** true while connected and answering */
  available = false
  /** outages since start (each logged once) */
  outages = 0
  /** failed connection attempts and commands since start */
  failures = 0
  #down = false
  #closing = false
  #prober: NodeJS.Timeout | null = null
  #probing = false
  readonly #log: FastifyBaseLogger
  readonly #coolDownMs: number
  readonly #probe: (() => Promise<unknown>) | null

  constructor (log: FastifyBaseLogger, opts: RedisHealthOptions = {}) {
    this.#log = log
    this.#coolDownMs = opts.coolDownMs ?? 5000
    this.#probe = opts.probe ?? null
  }

  /**
   * True from a failure until Redis answers again: a request does not wait on Redis then, it
   * takes the path it has for a dead Redis.
   */
  get bypassed (): boolean {
    return this.#down
  }

  /** A connection error or a failed command: the first one of an outage is logged. */
  failed (err: unknown, operation: string): void {
    if (this.#closing) return // commands cut short by our own shutdown are no outage
    this.failures++
    this.available = false
    if (this.#down) return
    this.#down = true
    this.outages++
    this.#log.warn({ operation, cause: (err as Error)?.message ?? String(err), outages: this.outages },
      'redis unavailable: rate limits follow redis.failClosed, blacklist checks use the copy in memory; reconnecting')
    this.#startProbing()
  }

  closing (): void {
    this.#closing = true
    this.#stopProbing()
  }

  /** Connected (again), or a command succeeded after failures. */
  recovered (): void {
    this.available = true
    if (!this.#down) return
    this.#down = false
    this.#stopProbing()
    this.#log.info({ failures: this.failures }, 'redis available again')
  }

  #startProbing (): void {
    const probe = this.#probe
    if (probe === null || this.#prober !== null) return
    this.#prober = setInterval(() => {
      if (this.#probing) return // a stalled probe waits for its own timeout; one at a time
      this.#probing = true
      probe().then(() => this.recovered(), (err: unknown) => this.failed(err, 'probe'))
        .finally(() => { this.#probing = false })
    }, this.#coolDownMs)
    this.#prober.unref()
  }

  #stopProbing (): void {
    if (this.#prober !== null) clearInterval(this.#prober)
    this.#prober = null
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** shared Redis client, or null when the gateway keeps its state in memory */
    redis: Redis | null
    redisHealth: RedisHealth
  }
}

export function createRedisClient (url: string, commandTimeoutMs: number): Redis {
  return new Redis(url, {
    lazyConnect: true,
    // fail at once while disconnected: a request must not wait for Redis to come back
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(2000, commandTimeoutMs),
    retryStrategy: (times: number) => Math.min(times * 200, 2000)
  })
}

const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (fastify, { redis: opts }) => {
  if (opts.url === '') {
    fastify.decorate('redisHealth', new RedisHealth(fastify.log))
    fastify.decorate('redis', null)
    return
  }
  const client = createRedisClient(opts.url, opts.commandTimeoutMs)
  const health = new RedisHealth(fastify.log, { coolDownMs: opts.coolDownMs, probe: () => client.ping() })
  fastify.decorate('redisHealth', health)
  client.on('ready', () => health.recovered())
  client.on('error', (err: Error) => health.failed(err, 'connection'))
  client.on('close', () => health.failed(new Error('connection closed'), 'connection'))
  fastify.decorate('redis', client)

  try {
    await client.connect()
    fastify.log.info({ host: client.options.host, port: client.options.port, db: client.options.db }, 'redis connected: state is shared with other replicas')
  } catch (err) {
    // starts anyway: the client keeps reconnecting, and state stays local until it succeeds
    health.failed(err, 'connect')
  }

  fastify.addHook('onClose', async () => {
    health.closing()
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
    else client.disconnect()
  })
}

export default fp(redisPlugin, { name: 'gateway-redis', fastify: '5.x' })
