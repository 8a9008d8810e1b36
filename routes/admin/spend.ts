/**
 * `GET /admin/spend?since=…&until=…&group=key|model|target|day`: what the traffic cost, from the
 * same usage store as `/admin/usage` (this gateway's memory, or Redis shared by every replica),
 * behind the admin token. Costs are each request's `costUsd` at the price table (docs/money.md);
 * requests whose model has no price count in `unpricedRequests`, never as 0 USD spent silently.
 *
 * Answer: `{ object, since, until, group, source, bucketSeconds, totals, data: [{ <group>: name, …totals }] }`,
 * rows sorted by cost. Times are bucket-aligned, as for `/admin/usage`.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../../config/schema.js'
import { requestedUsageQuery } from '../../src/usage/query.js'
import type { UsageTotals } from '../../src/usage/store.js'

export interface SpendRouteOptions {
  usage: GatewayConfig['usage']
}

interface SpendTotals {
  costUsd: number
  requests: number
  unpricedRequests: number
  promptTokens: number
  completionTokens: number
  totalTokens: number
  cacheReadTokens: number
  cacheCreationTokens: number
}

function spendOf (t: UsageTotals): SpendTotals {
  return {
    costUsd: t.costNanos / 1e9,
    requests: t.requests,
    unpricedRequests: t.unpricedRequests,
    promptTokens: t.promptTokens,
    completionTokens: t.completionTokens,
    totalTokens: t.totalTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheCreationTokens: t.cacheCreationTokens
  }
}

const spendRoute: FastifyPluginAsync<SpendRouteOptions> = async (fastify, { usage: settings }) => {
  const store = fastify.usageStore
  if (store === null) return
  const retentionMs = settings.retentionHours * 3_600_000

  fastify.get('/admin/spend', async function spendTotals (request) {
    const query = requestedUsageQuery(request.query as Record<string, unknown>, retentionMs)
    const report = await store.query(query)
    const group = query.group
    const rows = report.rows.map(row => ({ name: row.name, totals: spendOf(row.totals) }))
    rows.sort((a, b) => b.totals.costUsd - a.totals.costUsd || a.name.localeCompare(b.name))
    return {
      object: 'spend',
      since: new Date(query.since).toISOString(),
      until: new Date(query.until).toISOString(),
      group,
      source: store.kind,
      bucketSeconds: settings.bucketSeconds,
      totals: spendOf(report.totals),
      data: group === null ? [] : rows.map(row => ({ [group]: row.name, ...row.totals }))
    }
  })
}

export default spendRoute
