/**
 * `GET /metrics` (or `metrics.path`) on the main listener, for Prometheus, behind the admin token
 * (registered in the admin scope, src/app.ts: plugins/admin-auth.ts; 404 without a configured token).
 * Not registered when metrics are off or served on their own listener (`metrics.separate`).
 */
import type { FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'

export interface MetricsRouteOptions {
  metrics: GatewayConfig['metrics']
}

const metricsRoute: FastifyPluginAsync<MetricsRouteOptions> = async (fastify, { metrics: opts }) => {
  const metrics = fastify.metrics
  if (metrics === null || opts.separate) return
  fastify.get(opts.path, {
    // a scrape every few seconds is not worth an access line
    logLevel: 'warn'
  }, async function scrape (_request, reply) {
    const text = await metrics.text()
    return reply.type(metrics.contentType).send(text)
  })
}

export default metricsRoute
