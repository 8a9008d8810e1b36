/**
 * Liveness for orchestrators: `/healthz` (seed 004's body) and `/ping` (seed 002's body).
 * No auth, no rate limit: a probe must never be refused.
 */
import type { FastifyPluginAsync } from 'fastify'

const health: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { config: { public: true }, logLevel: 'warn' }, async () => ({ status: 'ok' }))
  fastify.get('/ping', { config: { public: true }, logLevel: 'warn' }, async () => ({ pong: Date.now() }))
}

export default health
