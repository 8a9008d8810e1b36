/**
 * The application plugin: registers plugins/ and routes/ from the validated config, in scopes
 * rather than behind route flags (STYLE.md §1.2):
 * - the root holds what applies to every request: request state, client address, the access
 *   line and metrics;
 * - the address lists, the automatic blacklist and CORS hold every route but the health probes
 *   when `ipFilter.exemptHealth` exempts them;
 * - health probes are bare: no auth, no limits;
 * - the admin scope holds every admin route (and the metrics page) behind its guard; the boot
 *   fails when an `/admin` route is registered anywhere else;
 * - the API scope registers its hook plugins once (authentication, rate limit, routing,
 *   transforms, usage, upload limits) and holds the API routes, once per prefix (`''` and
 *   `/:target`), and the not-found handler, so an unknown path is refused like an API call
 *   (address, auth, limits) before its 404.
 * Within a scope, order is explicit: cheap refusals before anything reads a body.
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { clientAuthMode } from '../config/sections/auth.js'
import idleMemory from '../plugins/idle-memory.js'
import requestState from '../plugins/request-state.js'
import forwarder from '../plugins/forwarder.js'
import settle from '../plugins/settle.js'
import clientIp from '../plugins/client-ip.js'
import cors from '../plugins/cors.js'
import caches from '../plugins/caches.js'
import redis from '../plugins/redis.js'
import ipFilter from '../plugins/ip-filter.js'
import autoBlacklist from '../plugins/auto-blacklist.js'
import upstreams from '../plugins/upstreams.js'
import routing from '../plugins/routing.js'
import modelGroups from '../plugins/model-groups.js'
import auth from '../plugins/auth.js'
import adminAuth, { isAdminPath } from '../plugins/admin-auth.js'
import rateLimit from '../plugins/rate-limit.js'
import modelsCache from '../plugins/models-cache.js'
import accessLog from '../plugins/access-log.js'
import bodyLog from '../plugins/body-log.js'
import contextId from '../plugins/context-id.js'
import fieldAlias from '../plugins/field-alias.js'
import uploadLimits from '../plugins/upload-limits.js'
import metrics from '../plugins/metrics.js'
import usage from '../plugins/usage.js'
import translate from '../plugins/translate.js'
import budgets from '../plugins/budgets.js'
import websocket from '@fastify/websocket'
import health from '../routes/health.js'
import adminRoutes from '../routes/admin/index.js'
import blacklistRoutes from '../routes/admin/blacklist.js'
import modelsRoutes from '../routes/v1/models.js'
import realtimeRoutes from '../routes/v1/realtime.js'
import proxyRoutes from '../routes/v1/proxy.js'
import metricsRoute from '../routes/metrics.js'
import usageRoute from '../routes/admin/usage.js'
import budgetRoute from '../routes/v1/budget.js'
import spendRoute from '../routes/admin/spend.js'
import budgetsRoute from '../routes/admin/budgets.js'
import targetsRoute from '../routes/admin/targets.js'
import { websocketPluginOptions } from './realtime/websocket-options.js'
import { RefusalLimit } from './abuse/refusal-limit.js'
import { NotFoundError, errorBody, shapeError } from './errors.js'
import { SecretFilter } from './lib/secret-filter.js'
import { secretsOf } from '../config/secrets.js'
import { HeldBytes } from './lib/json-transform.js'
import { TARGET_PREFIX } from './routing/paths.js'
import { deploymentModels } from './usage/prices.js'

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
    if (request.outcome != null) request.outcome.errorClass ??= shaped.code ?? shaped.type
    // refused before its body arrived (auth, address lists, limits): the connection is not kept
    // waiting for the rest of a body nobody will read, which a client could hold open for ever
    if (!request.raw.complete) reply.header('connection', 'close')
    return reply.code(shaped.status).send(errorBody(request.upstream?.apiPath ?? request.url, shaped, request.upstream?.target?.provider))
  })

  await fastify.register(requestState)
  refuseStrayAdminRoutes(fastify)
  await fastify.register(idleMemory, { idleMs: config.server.idleGcMs })
  // the server's one WebSocket mechanism (STYLE.md §3.4). Registered before every hook plugin:
  // its onRequest hook marks upgrade requests, and its onResponse closes the socket of an upgrade
  // that a later hook (IP, auth, rate limit) refused with an HTTP answer
  await fastify.register(websocket, websocketPluginOptions(config.realtime))
  await fastify.register(clientIp)
  await fastify.register(caches)
  await fastify.register(redis, { redis: config.redis })
  // reply.forward() and the response stages, which the plugins below register at boot
  await fastify.register(forwarder)
  // settle, once for every request (plugins/settle.ts): metrics first, so usage can count tokens
  // into them; the usage record (API scope) becomes the access line
  await fastify.register(settle)
  await fastify.register(metrics, { metrics: config.metrics })
  await fastify.register(accessLog)

  // refused keys and admin tokens count per address against the rate limit (key guessing)
  const rl = config.rateLimit
  const refusals = rl.enabled ? new RefusalLimit({ max: rl.max, windowMs: rl.windowMs, ipv6Subnet: rl.ipv6Subnet, maxTracked: rl.maxTracked }) : null
  const exemptHealth = config.ipFilter.exemptHealth

  if (exemptHealth) {
    await fastify.register(async function exemptProbes (probes) {
      await probes.register(cors, { cors: config.cors })
      await probes.register(health)
    })
  }

  await fastify.register(async function addressChecked (checked) {
    // cheapest refusals first: address lists, then the automatic blacklist
    await checked.register(ipFilter, { ipFilter: config.ipFilter })
    await checked.register(autoBlacklist, { blacklist: config.blacklist, redis: config.redis, ipv6Subnet: config.rateLimit.ipv6Subnet })
    // a browser preflight carries no credentials: answered before authentication, but after the
    // address checks, so a denied or blacklisted address gets no answer but its 403
    await checked.register(cors, { cors: config.cors })
    expose(fastify, checked, ['blacklist'])
    if (!exemptHealth) await checked.register(health)

    await checked.register(async function api (api) {
      api.setNotFoundHandler(unknownRoute)
      // after the plugins that may stop the boot (an unusable data directory): the embedded mock
      // upstream it may start is not left running by a failed boot
      await api.register(upstreams, { upstream: config.upstream, targets: config.targets, outbound: config.outbound, secrets: SecretFilter.of(secretsOf(config)) })
      // routing by model: the targets' model globs, model groups and their deployments' health
      await api.register(modelGroups, { config, keyPrefix: config.redis.keyPrefix })
      // target and path first: they shape every refusal's body (the target's dialect)
      await api.register(routing, { routing: config.routing })
      await api.register(auth, { auth: config.auth, mode: clientAuthMode(config), defaultTarget: config.routing.defaultTarget, refusals })
      // after auth (which sets request.client), before every route
      // the smallest upstream pool is the one a client's in-flight cap must stay below
      const poolSize = Math.min(config.upstream.connections, ...Object.values(config.targets).map(t => t.connections ?? config.upstream.connections))
      await api.register(rateLimit, { rateLimit: config.rateLimit, keyPrefix: config.redis.keyPrefix, poolSize })
      await api.register(modelsCache, { models: config.models })
      // body transforms: context-id first on requests (client names), aliases nearest the upstream
      const limits = { maxJsonBytes: config.transforms.maxJsonBytes, maxEventSize: config.transforms.maxEventSize, held: new HeldBytes(config.transforms.maxHeldJsonBytes) }
      await api.register(contextId, { contextId: config.transforms.contextId, limits, redis: fastify.redis, redisHealth: fastify.redisHealth, keyPrefix: config.redis.keyPrefix })
      await api.register(fieldAlias, { transforms: config.transforms, limits })
      await api.register(uploadLimits, { uploads: config.uploads })
      await api.register(usage, { usage: config.usage, pricing: config.pricing, deployments: deploymentModels([config.upstream, ...Object.values(config.targets)]), maxEventSize: config.transforms.maxEventSize, redis: fastify.redis, redisKeyPrefix: config.redis.keyPrefix })
      // after usage (prices) and every check that may refuse for free: a refusal reserves nothing
      await api.register(budgets, {
        budgets: config.budgets,
        keys: config.auth.keys,
        targets: { default: config.upstream.budgets, ...Object.fromEntries(Object.entries(config.targets).map(([name, t]) => [name, t.budgets])) },
        redis: fastify.redis,
        redisHealth: fastify.redisHealth,
        keyPrefix: config.redis.keyPrefix
      })
      // after usage (read in the upstream's dialect), before the body log (the client's)
      await api.register(translate, { limits: { maxJsonBytes: config.transforms.maxJsonBytes, maxEventSize: config.transforms.maxEventSize } })
      // last: its tap sees the answer as the client gets it
      await api.register(bodyLog, { log: config.log })
      // what the admin API and operators read lives on the root
      expose(fastify, api, ['upstreams', 'modelRouting', 'clientAuth', 'rateLimitStats', 'usageStore', 'contextIdStore', 'budgets'])

      // the API routes once per prefix: `/v1/…`, and `/{target}/v1/…` when a path may name the target
      for (const prefix of config.routing.byPath ? ['', TARGET_PREFIX] : ['']) {
        await api.register(budgetRoute, { prefix })
        await api.register(modelsRoutes, { prefix })
        await api.register(realtimeRoutes, { realtime: config.realtime, prefix })
        await api.register(proxyRoutes, { prefix })
      }
    })

    await checked.register(async function admin (scope) {
      adminScopes.add(scope)
      await scope.register(adminAuth, { adminToken: config.auth.adminToken, header: config.auth.header, refusals })
      await scope.register(adminRoutes, { prefix: '/admin' })
      await scope.register(blacklistRoutes)
      await scope.register(usageRoute, { usage: config.usage })
      await scope.register(spendRoute, { usage: config.usage })
      await scope.register(budgetsRoute)
      await scope.register(targetsRoute)
      await scope.register(metricsRoute, { metrics: config.metrics })
    })
  })
}

function unknownRoute (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const shaped = shapeError(new NotFoundError(request.method, request.url.split('?')[0]))
  return reply.code(404).send(errorBody(request.url, shaped))
}

/** Decorations of a scope's plugins that code outside the scope reads (admin routes, operators, tests). */
function expose (root: FastifyInstance, scope: FastifyInstance, names: ReadonlyArray<keyof FastifyInstance & string>): void {
  for (const name of names) root.decorate(name, scope[name] as never)
}

/** The admin scopes: an instance, or a plugin instance created inside one. */
const adminScopes = new WeakSet<FastifyInstance>()

function inAdminScope (instance: FastifyInstance): boolean {
  for (let i: object | null = instance; i !== null; i = Object.getPrototypeOf(i)) {
    if (adminScopes.has(i as FastifyInstance)) return true
  }
  return false
}

/**
 * An admin route outside the admin scope would have no guard: the boot fails instead. Plugin
 * instances inherit from the instance that registered them, so the scope is found by walking up.
 */
function refuseStrayAdminRoutes (fastify: FastifyInstance): void {
  fastify.addHook('onRoute', function adminRoutesInAdminScope (this: FastifyInstance, route) {
    if (isAdminPath(route.url) && !inAdminScope(this)) {
      throw new Error(`${route.method.toString()} ${route.url} is an admin route outside the admin scope: register it in the admin scope of src/app.ts, behind its guard`)
    }
  })
}

export default fp(app, { name: 'gateway-app', fastify: '5.x' })
