/**
 * Prometheus metrics: on the main listener behind the admin token, or on a listener of their own
 * (loopback by default) for a scraper that cannot send a token.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const metricsSchema = Type.Object({
  enabled: Type.Boolean({ default: true, description: 'collect and serve Prometheus metrics' }),
  path: Type.String({ default: '/metrics', pattern: '^/[A-Za-z0-9/_.-]*$', description: 'path of the metrics page' }),
  separate: Type.Boolean({ default: false, description: 'serve metrics on their own listener (no token) instead of the main one (admin token)' }),
  host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'address of the separate metrics listener' }),
  port: Type.Integer({ default: 9464, minimum: 0, maximum: 65535, description: 'port of the separate metrics listener' }),
  maxClientLabels: Type.Integer({ default: 100, minimum: 1, description: 'distinct client names in labels; more show as "other"' }),
  maxModelLabels: Type.Integer({ default: 100, minimum: 1, description: 'distinct model names in labels; more show as "other"' })
}, { additionalProperties: false, default: {} })

export const metrics: ConfigSection = {
  key: 'metrics',
  schema: metricsSchema,
  options: [
    { path: 'metrics.enabled', env: ['GATEWAY_METRICS'], type: 'boolean', doc: 'Prometheus metrics on/off' },
    { path: 'metrics.path', env: ['GATEWAY_METRICS_PATH'], type: 'string', doc: 'path of the metrics page' },
    { path: 'metrics.separate', env: ['GATEWAY_METRICS_SEPARATE'], type: 'boolean', doc: 'serve metrics on their own listener without a token' },
    { path: 'metrics.host', env: ['GATEWAY_METRICS_HOST'], type: 'string', doc: 'address of the separate metrics listener' },
    { path: 'metrics.port', env: ['GATEWAY_METRICS_PORT'], flags: ['metrics-port'], type: 'integer', doc: 'port of the separate metrics listener' },
    { path: 'metrics.maxClientLabels', env: ['GATEWAY_METRICS_MAX_CLIENTS'], type: 'integer', doc: 'distinct client names in metric labels' },
    { path: 'metrics.maxModelLabels', env: ['GATEWAY_METRICS_MAX_MODELS'], type: 'integer', doc: 'distinct model names in metric labels' }
  ]
}
