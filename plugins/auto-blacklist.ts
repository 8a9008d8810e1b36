/**
 * Seed 002's automatic IP blacklist, done right. An address that makes `threshold` errors within
 * `windowMs` is refused with 403 from then on (until its entry expires, if `ttlMs` is set, or an
 * admin removes it).
 *
 * Errors are the gateway's own refusals of bad requests: authentication failures (401), unknown
 * paths (404) and malformed requests (400). An upstream's answer passed through (a bad model name,
 * a revoked upstream key, an upstream outage) is not the client's abuse and never counts: such a
 * response has `request.outcome.status` set. Recording and checking use the same normal-form
 * address (`request.clientIp`), which seed 002 did not.
 *
 * The list is checked in `onRequest` right after the address filter (src/app.ts), from memory; it is kept
 * in `<dir>/black.json` (atomic writes) and, with Redis, shared with the other replicas.
 *
 * IPv6 clients are counted and blocked per network (`ipv6Subnet`, /64 by default, as the rate
 * limit counts them): one holder of a /64 has more addresses than any counter could see. Such an
 * entry is written as the network's first address (`2001:db8:1:2::`) and blocks every address of
 * that network; an entry for any other IPv6 address blocks that address alone.
 */
import fp from 'fastify-plugin'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { Blacklist, newEntry } from '../src/abuse/blacklist.js'
import { BLACKLIST_FILE, BlacklistFileWriter, loadBlacklistFile } from '../src/abuse/blacklist-file.js'
import { BlacklistService } from '../src/abuse/blacklist-service.js'
import { BlacklistSync } from '../src/abuse/blacklist-sync.js'
import { ErrorCounter } from '../src/abuse/error-counter.js'
import { blockListOf, familyOf, listHas, networkAddress, networkKey, parseRule, type AddressRule } from '../src/lib/ip.js'
import { IpBlacklistedError } from '../src/errors.js'

export interface AutoBlacklistOptions {
  blacklist: GatewayConfig['blacklist']
  redis: GatewayConfig['redis']
  /** IPv6 clients are counted and blocked per network of this prefix length (rateLimit.ipv6Subnet) */
  ipv6Subnet: number
}

declare module 'fastify' {
  interface FastifyInstance {
    blacklist: BlacklistService
  }
}

const SWEEP_INTERVAL_MS = 60_000

const autoBlacklist: FastifyPluginAsync<AutoBlacklistOptions> = async (fastify, opts) => {
  const cfg = opts.blacklist
  const log = fastify.log.child({ plugin: 'auto-blacklist' })
  const list = new Blacklist()
  const service = new BlacklistService(list, cfg.maxEntries, log)
  fastify.decorate('blacklist', service)

  let writer: BlacklistFileWriter | null = null
  if (cfg.dir !== '') {
    try {
      mkdirSync(cfg.dir, { recursive: true })
    } catch (err) {
      throw new Error(`blacklist.dir "${cfg.dir}" cannot be created (${(err as NodeJS.ErrnoException).code ?? 'error'}); set GATEWAY_DATA_DIR / BASE_PATH to a writable directory`)
    }
    const file = join(cfg.dir, BLACKLIST_FILE)
    list.replaceAll(loadBlacklistFile(file, log))
    writer = new BlacklistFileWriter(file, log, () => list.list())
    log.info({ file, entries: list.size }, 'blacklist loaded')
  } else if (cfg.enabled) {
    log.info('blacklist kept in memory only (set GATEWAY_DATA_DIR or BASE_PATH to keep it across restarts)')
  }

  const redis = fastify.redis
  const sync = redis !== null
    ? new BlacklistSync({
      redis,
      health: fastify.redisHealth,
      prefix: opts.redis.keyPrefix,
      syncIntervalMs: opts.redis.syncIntervalMs,
      blacklist: list,
      log,
      onRemoteChange: () => service.changedElsewhere()
    })
    : null
  service.attach(writer, sync)
  await sync?.start()

  const sweeper = setInterval(() => { service.sweep().catch(err => log.warn({ err }, 'blacklist sweep failed')) }, SWEEP_INTERVAL_MS)
  sweeper.unref()
  fastify.addHook('onClose', async () => {
    clearInterval(sweeper)
    await sync?.close()
    await writer?.flush()
  })

  /** Whether the address, or for IPv6 its network's entry, is on the list. */
  const blocked = (ip: string): boolean =>
    service.has(ip) || (familyOf(ip) === 'ipv6' && service.has(networkAddress(ip, opts.ipv6Subnet)))

  // callback form: a sync check, no promise per request
  fastify.addHook('onRequest', function refuseBlacklisted (request, _reply, done) {
    if (service.size === 0) return done()
    if (blocked(request.clientIp)) {
      service.stats.refused++
      throw new IpBlacklistedError()
    }
    done()
  })

  if (!cfg.enabled) return
  const counted = new Set(cfg.statuses)
  const ignore = blockListOf(cfg.ignore.map(r => parseRule(r)).filter((r): r is AddressRule => r !== null))
  const counter = new ErrorCounter({ windowMs: cfg.windowMs, maxTracked: cfg.maxTracked, redis, health: fastify.redisHealth, prefix: opts.redis.keyPrefix })

  // callback form: nearly every response is not a counted error, and those should not pay for a
  // promise; the counting itself (possibly in Redis) runs detached, the response is already sent
  fastify.addHook('onResponse', function countClientErrors (request, reply, done) {
    done()
    const status = reply.statusCode
    if (!counted.has(status)) return
    // an upstream's own answer, passed through, is not the client's fault
    if ((request.outcome.status ?? 0) !== 0) return
    const ip = request.clientIp
    if (listHas(ignore, ip) || blocked(ip)) return
    countError(request, ip, status).catch((err: unknown) => {
      request.log.warn({ err }, 'could not record a client error for the blacklist')
    })
  })

  async function countError (request: FastifyRequest, ip: string, status: number): Promise<void> {
    const network = networkKey(ip, opts.ipv6Subnet)
    const errors = await counter.record(network)
    if (errors < cfg.threshold) return
    await counter.reset(network)
    const reason = `${errors} errors within ${cfg.windowMs} ms${network !== ip ? ` from ${network}` : ''}; last: ${status} ${request.outcome.errorClass ?? ''}`.trim()
    if (await service.addAutomatic(newEntry(networkAddress(ip, opts.ipv6Subnet), reason, cfg.ttlMs > 0 ? cfg.ttlMs : null))) {
      request.log.warn({ clientIp: ip, blocked: network, errors, windowMs: cfg.windowMs, ttlMs: cfg.ttlMs || undefined }, 'address blacklisted')
    }
  }
}

export default fp(autoBlacklist, { name: 'gateway-auto-blacklist', fastify: '5.x', dependencies: ['gateway-client-ip', 'gateway-redis'] })
