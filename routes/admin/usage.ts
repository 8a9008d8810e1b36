/**
 * `GET /admin/usage?since=…&until=…&group=key|model|target`: request and token totals from the
 * usage store (this gateway's memory, or Redis shared by every replica), behind the admin token.
 *
 * Answer: `{ object, since, until, group, source, bucketSeconds, totals, data: [{ <group>: name, …totals }] }`,
 * rows sorted by total tokens. Times are bucket-aligned: a bucket counts when its start is in range.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../../config/schema.js'
import { requestedUsageQuery } from '../../src/usage/query.js'
import type { UsageTotals } from '../../src/usage/store.js'

export interface UsageRouteOptions {
  usage: GatewayConfig['usage']
}

const usageRoute: FastifyPluginAsync<UsageRouteOptions> = async (fastify, { usage: settings }) => {
  const store = fastify.usageStore
  if (store === null) return
  const retentionMs = settings.retentionHours * 3_600_000

  fastify.get('/admin/usage', async function usageTotals (request) {
    const query = requestedUsageQuery(request.query as Record<string, unknown>, retentionMs)
    const report = await store.query(query)
    const group = query.group
    // cost is /admin/spend's (routes/admin/spend.ts)
    const tokens = ({ costNanos: _c, unpricedRequests: _u, ...rest }: UsageTotals): Omit<UsageTotals, 'costNanos' | 'unpricedRequests'> => rest
    return {
      object: 'usage',
      since: new Date(query.since).toISOString(),
      until: new Date(query.until).toISOString(),
      group,
      source: store.kind,
      bucketSeconds: settings.bucketSeconds,
      totals: tokens(report.totals),
      data: group === null ? [] : report.rows.map(row => ({ [group]: row.name, ...tokens(row.totals) }))
    }
  })
}

export default usageRoute
