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
import type { FastifyPluginAsync } from 'fastify'
import { Redis } from 'ioredis'
import type { GatewayConfig } from '../config/schema.js'
import { RedisHealth } from '../src/redis/health.js'

export interface RedisPluginOptions {
  redis: GatewayConfig['redis']
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
