/**
 * The one configuration schema. Every section lives in `config/sections/<concern>.ts` with its
 * JSON schema and its option rows (env names, flags, seed aliases); this file only assembles them.
 * Adding a concern = one section file + one line in `sections` + one key in `ConfigSchema`.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { ConfigSection, OptionSpec } from './types.js'
import { server, serverSchema } from './sections/server.js'
import { upstream, upstreamSchema } from './sections/upstream.js'
import { log, logSchema } from './sections/log.js'
import { clientIp, clientIpSchema } from './sections/client-ip.js'
import { ipFilter, ipFilterSchema } from './sections/ip-filter.js'
import { blacklist, blacklistSchema } from './sections/blacklist.js'
import { rateLimit, rateLimitSchema } from './sections/rate-limit.js'
import { redis, redisSchema } from './sections/redis.js'
import { admin, adminSchema } from './sections/admin.js'

export const sections: ConfigSection[] = [server, upstream, log, clientIp, ipFilter, blacklist, rateLimit, redis, admin]

export const ConfigSchema = Type.Object({
  /** path of the YAML file the config came from, if any (informational) */
  configFile: Type.String({ default: '' }),
  server: serverSchema,
  upstream: upstreamSchema,
  log: logSchema,
  clientIp: clientIpSchema,
  ipFilter: ipFilterSchema,
  blacklist: blacklistSchema,
  rateLimit: rateLimitSchema,
  redis: redisSchema,
  admin: adminSchema
}, { additionalProperties: false })

export type GatewayConfig = Static<typeof ConfigSchema>

export const allOptions: OptionSpec[] = sections.flatMap(s => s.options)
