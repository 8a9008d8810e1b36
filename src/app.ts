/**
 * The application plugin: registers plugins/ in their fixed order, then routes/, from the validated
 * config. Order matters and is explicit: request state first, then cheap refusals (IP, auth, rate
 * limit) before anything reads a body, then the routes they cover (STYLE.md §1.2).
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { clientAuthMode } from '../config/sections/auth.js'
import idleMemory from '../plugins/idle-memory.js'
import requestState from '../plugins/request-state.js'
import clientIp from '../plugins/client-ip.js'
import cors from '../plugins/cors.js'
import caches from '../plugins/caches.js'
import redis from '../plugins/redis.js'
import ipFilter from '../plugins/ip-filter.js'
import autoBlacklist from '../plugins/auto-blacklist.js'
import upstreams from '../plugins/upstreams.js'
import routing from '../plugins/routing.js'
import auth from '../plugins/auth.js'
import adminAuth from '../plugins/admin-auth.js'
import rateLimit from '../plugins/rate-limit.js'
import modelsCache from '../plugins/models-cache.js'
import accessLog from '../plugins/access-log.js'
import contextId from '../plugins/context-id.js'
import fieldAlias from '../plugins/field-alias.js'
import uploadLimits from '../plugins/upload-limits.js'
import metrics from '../plugins/metrics.js'
import usage from '../plugins/usage.js'
import websocket from '@fastify/websocket'
import health from '../routes/health.js'
import adminRoutes from '../routes/admin/index.js'
import blacklistRoutes from '../routes/admin/blacklist.js'
import modelsRoutes from '../routes/v1/models.js'
import realtimeRoutes from '../routes/v1/realtime.js'
import proxyRoutes from '../routes/v1/proxy.js'
import metricsRoute from '../routes/metrics.js'
import usageRoute from '../routes/admin/usage.js'
import { websocketPluginOptions } from './realtime/websocket-options.js'
import { RefusalLimit } from './abuse/refusal-limit.js'
import { NotFoundError, errorBody, shapeError } from './errors.js'
import { SecretFilter } from './lib/secret-filter.js'
import { secretsOf } from '../config/secrets.js'
import { HeldBytes } from './lib/json-transform.js'

export interface AppOptions {
  config: GatewayConfig
}

const app: FastifyPluginAsync<AppOptions> = async (fastify, { config }) => {
  // set before any route is registered: child scopes take the handler in force when they are created
  fastify.setErrorHandler(function shapeErrorBody (err: FastifyError, request, reply) {
    const shaped = shapeError(err)
    // our coded upstream errors were logged where they happened, with their cause
    if (shaped.status >= 500 && err.code?.startsWith('GW_') !== true) request.log.error({ err }, 'request failed')
    else request.log.debug({ code: err.code, status: shaped.status }, 'request refused')
    if (request.gw !== null && request.gw.errorClass === null) request.gw.errorClass = shaped.code ?? shaped.type
    // refused before its body arrived (auth, address lists, limits): the connection is not kept
    // waiting for the rest of a body nobody will read, which a client could hold open for ever
    if (!request.raw.complete) reply.header('connection', 'close')
    return reply.code(shaped.status).send(errorBody(request.url, shaped, request.gw?.target?.provider))
  })

  fastify.setNotFoundHandler(function unknownRoute (request, reply) {
    const shaped = shapeError(new NotFoundError(request.method, request.url.split('?')[0]))
    return reply.code(404).send(errorBody(request.url, shaped))
  })

  await fastify.register(requestState)
  await fastify.register(idleMemory, { idleMs: config.server.idleGcMs })
  // the server's one WebSocket mechanism (STYLE.md §3.4). Registered before every hook plugin:
  // its onRequest hook marks upgrade requests, and its onResponse closes the socket of an upgrade
  // that a later hook (IP, auth, rate limit) refused with an HTTP answer
  await fastify.register(websocket, websocketPluginOptions(config.realtime))
  await fastify.register(clientIp)
  await fastify.register(caches)
  await fastify.register(redis, { redis: config.redis })
  // cheapest refusals first: address lists, then the automatic blacklist
  await fastify.register(ipFilter, { ipFilter: config.ipFilter })
  await fastify.register(autoBlacklist, { blacklist: config.blacklist, redis: config.redis, exemptPublic: config.ipFilter.exemptHealth, ipv6Subnet: config.rateLimit.ipv6Subnet })
  // a browser preflight carries no credentials: answered before authentication, but after the
  // address checks, so a denied or blacklisted address gets no answer but its 403
  await fastify.register(cors, { cors: config.cors })
  await fastify.register(upstreams, { upstream: config.upstream, targets: config.targets, outbound: config.outbound, secrets: SecretFilter.of(secretsOf(config)) })
  await fastify.register(routing, { routing: config.routing })
  // refused keys and admin tokens count per address against the rate limit (key guessing)
  const rl = config.rateLimit
  const refusals = rl.enabled ? new RefusalLimit({ max: rl.max, windowMs: rl.windowMs, ipv6Subnet: rl.ipv6Subnet, maxTracked: rl.maxTracked }) : null
  // the admin guard runs before client authentication, which leaves admin routes to it
  await fastify.register(adminAuth, { adminToken: config.auth.adminToken, header: config.auth.header, refusals })
  await fastify.register(auth, { auth: config.auth, mode: clientAuthMode(config), defaultTarget: config.routing.defaultTarget, refusals })
  // after auth (which sets request.gw.client), before every route
  // the smallest upstream pool is the one a client's in-flight cap must stay below
  const poolSize = Math.min(config.upstream.connections, ...Object.values(config.targets).map(t => t.connections ?? config.upstream.connections))
  await fastify.register(rateLimit, { rateLimit: config.rateLimit, keyPrefix: config.redis.keyPrefix, poolSize })
  await fastify.register(modelsCache, { models: config.models })
  // body transforms: context-id first on requests (client names), aliases nearest the upstream
  const limits = { maxJsonBytes: config.transforms.maxJsonBytes, maxEventSize: config.transforms.maxEventSize, held: new HeldBytes(config.transforms.maxHeldJsonBytes) }
  await fastify.register(contextId, { contextId: config.transforms.contextId, limits, redis: fastify.redis, redisHealth: fastify.redisHealth, keyPrefix: config.redis.keyPrefix })
  await fastify.register(fieldAlias, { transforms: config.transforms, limits })
  await fastify.register(uploadLimits, { uploads: config.uploads })
  // observability: metrics first, so usage can count tokens into them
  await fastify.register(metrics, { metrics: config.metrics })
  await fastify.register(usage, { usage: config.usage, maxEventSize: config.transforms.maxEventSize, redis: fastify.redis, redisKeyPrefix: config.redis.keyPrefix })
  await fastify.register(accessLog, { log: config.log })

  await fastify.register(health)
  await fastify.register(adminRoutes, { prefix: '/admin' })
  await fastify.register(blacklistRoutes)
  await fastify.register(usageRoute, { usage: config.usage })
  await fastify.register(metricsRoute, { metrics: config.metrics })
  await fastify.register(modelsRoutes)
  await fastify.register(realtimeRoutes, { realtime: config.realtime })
  await fastify.register(proxyRoutes)
}

export default fp(app, { name: 'gateway-app', fastify: '5.x' })
