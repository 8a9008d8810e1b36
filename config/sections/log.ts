import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { setPath } from '../paths.js'
import { StringEnum } from '../string-enum.js'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const

export const logSchema = Type.Object({
  level: StringEnum(LOG_LEVELS, { default: 'info' }),
  requests: Type.Boolean({ default: false, description: 'log request headers and bodies (redacted, truncated)' }),
  responses: Type.Boolean({ default: false, description: 'log response headers and bodies (redacted, truncated)' }),
  bodyMaxBytes: Type.Integer({ default: 4096, minimum: 0, description: 'bodies are cut at this size in debug logs' })
}, { additionalProperties: false, default: {} })

/** Seed 001's DEBUG_MODE turns on debug level and body logging together. */
function applyDebugMode (value: unknown, raw: Record<string, unknown>): void {
  if (value !== true) return
  setPath(raw, 'log.level', 'debug')
  setPath(raw, 'log.requests', true)
  setPath(raw, 'log.responses', true)
}

export const log: ConfigSection = {
  key: 'log',
  schema: logSchema,
  options: [
    { path: 'log.level', env: ['GATEWAY_LOG_LEVEL', 'LOG_LEVEL'], flags: ['log-level', 'log'], type: 'string', doc: 'debug | info | warn | error | silent', seed: '000 -log, 001 LOG_LEVEL' },
    { path: 'log.debugMode', env: ['DEBUG_MODE'], type: 'boolean', doc: 'debug level plus request/response body logging', seed: '001', apply: applyDebugMode },
    { path: 'log.requests', env: ['GATEWAY_LOG_REQUESTS'], type: 'boolean', doc: 'log request headers and bodies (redacted)', seed: '004 log_requests' },
    { path: 'log.responses', env: ['GATEWAY_LOG_RESPONSES'], type: 'boolean', doc: 'log response headers and bodies (redacted)', seed: '004 log_responses' },
    { path: 'log.bodyMaxBytes', env: ['GATEWAY_LOG_BODY_MAX_BYTES'], type: 'integer', doc: 'truncate logged bodies at this size' }
  ]
}
