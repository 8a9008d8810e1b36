/**
 * `GET /v1/gateway/budget`: the calling key's own budgets, what was spent and reserved in the
 * current window of each, and when it resets. Only ever the caller's key: the key is the one
 * authentication found, no parameter names another.
 */
import type { FastifyPluginAsync } from 'fastify'
import { keyedClient } from '../../src/auth/client.js'
import { NotFoundError } from '../../src/errors.js'

const budgetRoute: FastifyPluginAsync = async (fastify) => {
  fastify.get('/v1/gateway/budget', async function ownBudget (request, reply) {
    // `/{target}/v1/gateway/budget` with a name no target has: an unknown route, as for the API
    if (request.upstream.unknownTarget) throw new NotFoundError(request.method, request.url.split('?')[0])
    const client = keyedClient(request.client)
    const budgets = client === null || fastify.budgets === null ? [] : await fastify.budgets.forKey(client.name)
    reply.header('cache-control', 'no-store')
    return { object: 'gateway.budget', key: client?.name ?? null, budgets }
  })
}

export default budgetRoute
