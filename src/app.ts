/**
 * The application plugin: registers plugins/ in their fixed order, then routes/, from the validated
 * config. Order matters and is explicit: request state first, then cheap refusals (IP, auth, rate
 * limit) before anything reads a body, then the routes they cover (STYLE.md §1.2).
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import requestState from '../plugins/request-state.js'
import cors from '../plugins/cors.js'
import upstreams from '../plugins/upstreams.js'
import accessLog from '../plugins/access-log.js'
import contextId from '../plugins/context-id.js'
import fieldAlias from '../plugins/field-alias.js'
import metrics from '../plugins/metrics.js'
import usage from '../plugins/usage.js'
import type { RedisLike } from './lib/context-store.js'
import type { Redis } from 'ioredis'
import health from '../routes/health.js'
import proxyRoutes from '../routes/v1/proxy.js'
import metricsRoute from '../routes/metrics.js'
import usageRoute from '../routes/admin/usage.js'
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
  await fastify.register(cors, { cors: config.cors })
  await fastify.register(upstreams, { upstream: config.upstream })
  // body transforms: context-id first on requests (client names), aliases nearest the upstream
  const limits = { maxJsonBytes: config.transforms.maxJsonBytes, maxEventSize: config.transforms.maxEventSize }
  const redis = fastify.hasDecorator('redis') ? fastify.getDecorator<RedisLike | null>('redis') : null
  await fastify.register(contextId, { contextId: config.transforms.contextId, limits, redis })
  await fastify.register(fieldAlias, { transforms: config.transforms })
  // observability: metrics first, so usage can count tokens into them
  await fastify.register(metrics, { metrics: config.metrics })
  await fastify.register(usage, { usage: config.usage, maxEventSize: config.transforms.maxEventSize, redis: redis as Redis | null })
  await fastify.register(accessLog, { log: config.log })

  await fastify.register(health)
  await fastify.register(metricsRoute, { metrics: config.metrics, adminToken: config.admin.token })
  await fastify.register(usageRoute, { usage: config.usage, adminToken: config.admin.token })
  await fastify.register(proxyRoutes)
}

export default fp(app, { name: 'gateway-app', fastify: '5.x' })
