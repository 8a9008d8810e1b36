/**
 * `GET /admin/targets`: every target and the model group deployments on it, with their health —
 * in rotation or cooling down until when (shared by the replicas when Redis is configured), and,
 * as this process saw them, recent failures, the moving average of the time to the first byte,
 * requests in flight (docs/fallback.md). Behind the admin token, like every admin route.
 */
import type { FastifyPluginAsync } from 'fastify'
import { targetsView } from '../../src/routing/model-groups.js'

const targetsRoute: FastifyPluginAsync = async (fastify) => {
  fastify.get('/admin/targets', async function listTargets () {
    const router = fastify.modelRouting
    return {
      object: 'targets',
      sharedCooldowns: fastify.redis !== null,
      targets: targetsView(router, fastify.upstreams.byName),
      groups: [...router.groups.values()].map(g => ({
        name: g.name,
        strategy: g.strategy,
        deployments: g.deployments.map(d => d.id),
        maxAttempts: g.maxAttempts,
        allowedFails: g.allowedFails,
        cooldownMs: g.cooldownMs,
        contextWindowFallback: g.contextWindowFallback?.name ?? null
      }))
    }
  })
}

export default targetsRoute
