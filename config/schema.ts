/**
 * The one configuration schema. Every section lives in `config/sections/<concern>.ts` with its
 * JSON schema and its option rows (env names, flags, seed aliases); this file only assembles them.
 * Adding a concern = one section file + one import, one entry in `sections` and one key here.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { ConfigSection, OptionSpec } from './types.js'
import { server, serverSchema } from './sections/server.js'
import { upstream, upstreamSchema } from './sections/upstream.js'
import { log, logSchema } from './sections/log.js'
import { cors, corsSchema } from './sections/cors.js'
import { storage, storageSchema } from './sections/storage.js'
import { targets, targetsSchema, routing, routingSchema, outbound, outboundSchema } from './sections/targets.js'
import { auth, authSchema } from './sections/auth.js'
import { models, modelsSchema } from './sections/models.js'
import { clientIp, clientIpSchema } from './sections/client-ip.js'
import { ipFilter, ipFilterSchema } from './sections/ip-filter.js'
import { blacklist, blacklistSchema } from './sections/blacklist.js'
import { rateLimit, rateLimitSchema } from './sections/rate-limit.js'
import { redis, redisSchema } from './sections/redis.js'
import { transforms, transformsSchema } from './sections/transforms.js'
import { usage, usageSchema } from './sections/usage.js'
import { metrics, metricsSchema } from './sections/metrics.js'
import { realtime, realtimeSchema } from './sections/realtime.js'
import { uploads, uploadsSchema } from './sections/uploads.js'
import { pricing, pricingSchema } from './sections/pricing.js'
import { budgets, budgetsSchema } from './sections/budgets.js'
import { modelGroups, modelGroupsSchema } from './sections/model-groups.js'

export const sections: ConfigSection[] = [
  server,
  upstream,
  log,
  cors,
  storage,
  targets,
  routing,
  modelGroups,
  outbound,
  auth,
  models,
  clientIp,
  ipFilter,
  blacklist,
  rateLimit,
  redis,
  transforms,
  usage,
  metrics,
  realtime,
  uploads,
  pricing,
  budgets
]

export const ConfigSchema = Type.Object({
  /** path of the YAML file the config came from, if any (informational) */
  configFile: Type.String({ default: '' }),
  server: serverSchema,
  upstream: upstreamSchema,
  log: logSchema,
  cors: corsSchema,
  storage: storageSchema,
  targets: targetsSchema,
  routing: routingSchema,
  modelGroups: modelGroupsSchema,
  outbound: outboundSchema,
  auth: authSchema,
  models: modelsSchema,
  clientIp: clientIpSchema,
  ipFilter: ipFilterSchema,
  blacklist: blacklistSchema,
  rateLimit: rateLimitSchema,
  redis: redisSchema,
  transforms: transformsSchema,
  usage: usageSchema,
  metrics: metricsSchema,
  realtime: realtimeSchema,
  uploads: uploadsSchema,
  pricing: pricingSchema,
  budgets: budgetsSchema
}, { additionalProperties: false })

export type GatewayConfig = Static<typeof ConfigSchema>

export const allOptions: OptionSpec[] = sections.flatMap(s => s.options)
