/**
 * The application plugin: registers plugins/ in their fixed order, then routes/, from the validated
 * config. Order matters and is explicit: request state first, then cheap refusals (IP, auth, rate
 * limit) before anything reads a body, then the routes they cover (STYLE.md §1.2).
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import requestState from '../plugins/request-state.js'
import clientIp from '../plugins/client-ip.js'
import redis from '../plugins/redis.js'
import ipFilter from '../plugins/ip-filter.js'
import autoBlacklist from '../plugins/auto-blacklist.js'
import upstreams from '../plugins/upstreams.js'
import rateLimit from '../plugins/rate-limit.js'
import accessLog from '../plugins/access-log.js'
import health from '../routes/health.js'
import proxyRoutes from '../routes/v1/proxy.js'
import blacklistRoutes from '../routes/admin/blacklist.js'
import { adminTokenGuard } from '../routes/admin/guard.js'
import { NotFoundError, errorBody, shapeError } from './errors.js'

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
    return reply.code(shaped.status).send(errorBody(request.url, shaped))
  })

  fastify.setNotFoundHandler(function unknownRoute (request, reply) {
    const shaped = shapeError(new NotFoundError(request.method, request.url.split('?')[0]))
    return reply.code(404).send(errorBody(request.url, shaped))
  })

  await fastify.register(requestState)
  await fastify.register(clientIp)
  await fastify.register(redis, { redis: config.redis })
  await fastify.register(ipFilter, { ipFilter: config.ipFilter })
  await fastify.register(autoBlacklist, { blacklist: config.blacklist, redis: config.redis, exemptPublic: config.ipFilter.exemptHealth })
  await fastify.register(upstreams, { upstream: config.upstream })
  // after auth (which sets request.gw.client), before every route
  await fastify.register(rateLimit, { rateLimit: config.rateLimit, keyPrefix: config.redis.keyPrefix })
  await fastify.register(accessLog, { log: config.log })

  await fastify.register(health)
  // TEMPORARY guard until the shared admin guard lands (see routes/admin/guard.ts)
  await fastify.register(blacklistRoutes, { guard: adminTokenGuard(config.admin.token) })
  await fastify.register(proxyRoutes)
}

export default fp(app, { name: 'gateway-app', fastify: '5.x' })
