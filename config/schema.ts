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
import { realtime, realtimeSchema } from './sections/realtime.js'
import { uploads, uploadsSchema } from './sections/uploads.js'

export const sections: ConfigSection[] = [server, upstream, log, realtime, uploads]

export const ConfigSchema = Type.Object({
  /** path of the YAML file the config came from, if any (informational) */
  configFile: Type.String({ default: '' }),
  server: serverSchema,
  upstream: upstreamSchema,
  log: logSchema,
  realtime: realtimeSchema,
  uploads: uploadsSchema
}, { additionalProperties: false })

export type GatewayConfig = Static<typeof ConfigSchema>

export const allOptions: OptionSpec[] = sections.flatMap(s => s.options)
