import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { setPath } from '../paths.js'
import { StringEnum } from '../string-enum.js'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const
export const LOG_ROTATIONS = ['daily', 'hourly', 'none'] as const
export const LOG_WRITES = ['sync', 'async'] as const

export const logSchema = Type.Object({
  level: StringEnum(LOG_LEVELS, { default: 'info' }),
  requests: Type.Boolean({ default: false, description: 'log request headers and bodies (redacted, truncated)' }),
  responses: Type.Boolean({ default: false, description: 'log response headers and bodies (redacted, truncated)' }),
  bodyMaxBytes: Type.Integer({ default: 4096, minimum: 0, description: 'bodies are cut at this size in debug logs' }),
  format: StringEnum(LOG_FORMATS, { default: 'auto', description: 'stdout format: pretty only on a terminal (auto), or always JSON lines' }),
  stdoutWrites: StringEnum(LOG_WRITES, { default: 'sync', description: 'stdout lines are written in 4 KiB batches on the event loop (sync), or by libuv\'s thread pool (async)' }),
  rotate: StringEnum(LOG_ROTATIONS, { default: 'daily', description: 'log files under BASE_PATH/logs start a new file daily, hourly, or only by size' }),
  fileMaxSize: Type.String({ default: '100m', pattern: '^[1-9][0-9]*[kmg]?$', description: 'a log file is rotated at this size (k, m, g; a bare number is MB)' }),
  fileKeep: Type.Integer({ default: 14, minimum: 1, description: 'rotated files kept per log, besides the active one' })
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
    { path: 'log.bodyMaxBytes', env: ['GATEWAY_LOG_BODY_MAX_BYTES'], type: 'integer', doc: 'truncate logged bodies at this size' },
    { path: 'log.format', env: ['GATEWAY_LOG_FORMAT'], flags: ['log-format'], type: 'string', doc: 'auto | json | pretty (pretty needs pino-pretty, a dev dependency; auto = pretty only on a terminal)' },
    { path: 'log.stdoutWrites', env: ['GATEWAY_LOG_STDOUT_WRITES'], type: 'string', doc: 'sync | async: batched stdout writes on the event loop (less CPU; a stdout nobody drains stalls the gateway) or in the thread pool (a stalled stdout only grows memory)' },
    { path: 'log.rotate', env: ['GATEWAY_LOG_ROTATE'], type: 'string', doc: 'daily | hourly | none: when log files under BASE_PATH/logs start anew (size always applies)' },
    { path: 'log.fileMaxSize', env: ['GATEWAY_LOG_FILE_MAX_SIZE'], type: 'string', doc: 'rotate a log file at this size, e.g. 100m, 1g' },
    { path: 'log.fileKeep', env: ['GATEWAY_LOG_FILE_KEEP'], type: 'integer', doc: 'rotated files kept per log' }
  ]
}
