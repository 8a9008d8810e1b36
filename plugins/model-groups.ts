/**
 * Routing by model and model groups: `fastify.modelRouting` (src/routing/model-groups.ts) holds
 * the targets' `models` globs, the groups, and the board of their deployments' health, with
 * cooldowns shared through Redis when one is configured (src/routing/health.ts), the active health
 * checks of targets that have one (src/routing/health-check.ts), and the metrics of attempts.
 * The routing plugin reads it to plan a request, the forwarder walks a group's deployments, and
 * `GET /admin/targets` shows the board.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { ModelRouter } from '../src/routing/model-groups.js'
import { HealthBoard, MemoryCooldowns, RedisCooldowns, type Cooldowns } from '../src/routing/health.js'
import { startHealthChecks } from '../src/routing/health-check.js'

export interface ModelGroupsOptions {
  config: Pick<GatewayConfig, 'modelGroups' | 'targets' | 'upstream'>
  keyPrefix: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** routing by model: targets' model globs, model groups, deployment health */
    modelRouting: ModelRouter
  }
}

const modelGroups: FastifyPluginAsync<ModelGroupsOptions> = async (fastify, { config, keyPrefix }) => {
  const byName = fastify.upstreams.byName
  const checks = [...byName.values()].filter(t => (t.name === 'default' ? config.upstream : config.targets[t.name])?.healthCheck.path !== '')
  const deploymentIds = Object.values(config.modelGroups).flatMap(g => g.deployments.map(d => `${d.target}/${d.model}`))
  const ids = [...new Set(deploymentIds), ...checks.map(t => `@${t.name}`)]
  const cooldowns: Cooldowns = fastify.redis !== null && ids.length > 0
    ? new RedisCooldowns(fastify.redis, fastify.redisHealth, keyPrefix, ids, fastify.log)
    : new MemoryCooldowns()
  const health = new HealthBoard(cooldowns)
  const metrics = fastify.metrics
  if (metrics !== null) {
    health.events = {
      attempt: (target, outcome) => { metrics.attempts.inc([target, outcome]) },
      cooldown: (id) => { metrics.cooldowns.inc([id]) },
      failover: (group) => { metrics.failovers.inc([group]) }
    }
  }
  const router = new ModelRouter(config, byName, health)
  fastify.decorate('modelRouting', router)
  if (router.groups.size > 0) fastify.log.info({ groups: [...router.groups.keys()], sharedCooldowns: fastify.redis !== null }, 'model groups configured')

  const stopChecks = startHealthChecks(checks.map(t => ({ target: t, check: (t.name === 'default' ? config.upstream : config.targets[t.name]).healthCheck })), cooldowns, fastify.log)
  fastify.addHook('onClose', async () => {
    stopChecks()
    health.close()
  })
}

export default fp(modelGroups, { name: 'gateway-model-groups', fastify: '5.x', dependencies: ['gateway-upstreams', 'gateway-redis'] })
