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
 */
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify'
import { Redis } from 'ioredis'
import type { GatewayConfig } from '../config/schema.js'

export interface RedisPluginOptions {
  redis: GatewayConfig['redis']
}

/** Availability of Redis as the plugins experience it. */
export class RedisHealth {
  /** true while connected and answering */
  available = false
  /** outages since start (each logged once) */
  outages = 0
  /** failed connection attempts and commands since start */
  failures = 0
  #down = false
  #closing = false
  readonly #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    this.#log = log
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
  }

  closing (): void {
    this.#closing = true
  }

  /** Connected (again), or a command succeeded after failures. */
  recovered (): void {
    this.available = true
    if (!this.#down) return
    this.#down = false
    this.#log.info({ failures: this.failures }, 'redis available again')
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
  const health = new RedisHealth(fastify.log)
  fastify.decorate('redisHealth', health)
  if (opts.url === '') {
    fastify.decorate('redis', null)
    return
  }
  const client = createRedisClient(opts.url, opts.commandTimeoutMs)
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
