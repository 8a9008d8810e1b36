/**
 * Liveness for orchestrators: `/healthz` (seed 004's body) and `/ping` (seed 002's body), and the
 * root `/`, which clients probe before they start (Claude Code sends `HEAD /` on every start): a
 * 200 naming the service, so a well-behaved probe is neither a 404 nor an error the automatic
 * blacklist counts. No version or build details: nothing an attacker could match to a weakness.
 * No auth, no rate limit (src/app.ts registers them outside the API scope): a probe must never be
 * refused. A healthy probe has no access line.
 */
import type { FastifyPluginAsync } from 'fastify'

const ROOT = Object.freeze({ service: 'llm-gateway', status: 'ok' })

const health: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', { config: { accessLog: 'failures' }, logLevel: 'warn' }, async () => ({ status: 'ok' }))
  fastify.get('/ping', { config: { accessLog: 'failures' }, logLevel: 'warn' }, async () => ({ pong: Date.now() }))
  // GET also answers HEAD (Fastify's exposeHeadRoutes): same status and headers, no body
  fastify.get('/', { config: { accessLog: 'failures' }, logLevel: 'warn' }, async () => ROOT)
}

export default health
