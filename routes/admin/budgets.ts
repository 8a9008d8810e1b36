/**
 * `GET /admin/budgets`: every budget of every key and target in its current window — limit,
 * spent, reserved, remaining, when it resets — from this gateway's memory or from Redis (then
 * the same on every replica). Behind the admin token. Clients read their own at `GET /v1/gateway/budget`.
 */
import type { FastifyPluginAsync } from 'fastify'

const budgetsRoute: FastifyPluginAsync = async (fastify) => {
  fastify.get('/admin/budgets', async function allBudgets (_request, reply) {
    reply.header('cache-control', 'no-store')
    return { object: 'budgets', data: fastify.budgets === null ? [] : await fastify.budgets.all() }
  })
}

export default budgetsRoute
