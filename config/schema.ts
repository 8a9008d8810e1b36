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
import { cors, corsSchema } from './sections/cors.js'
import { transforms, transformsSchema } from './sections/transforms.js'
import { storage, storageSchema } from './sections/storage.js'
import { admin, adminSchema } from './sections/admin.js'
import { usage, usageSchema } from './sections/usage.js'
import { metrics, metricsSchema } from './sections/metrics.js'

export const sections: ConfigSection[] = [server, upstream, log, cors, transforms, storage, admin, usage, metrics]

export const ConfigSchema = Type.Object({
  /** path of the YAML file the config came from, if any (informational) */
  configFile: Type.String({ default: '' }),
  server: serverSchema,
  upstream: upstreamSchema,
  log: logSchema,
  cors: corsSchema,
  transforms: transformsSchema,
  storage: storageSchema,
  admin: adminSchema,
  usage: usageSchema,
  metrics: metricsSchema
}, { additionalProperties: false })

export type GatewayConfig = Static<typeof ConfigSchema>

export const allOptions: OptionSpec[] = sections.flatMap(s => s.options)
