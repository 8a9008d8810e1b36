/**
 * What a budgeted request is: priced (its answer carries token usage the price table prices),
 * a realtime session (priced per response),
 * free (model lists, file and batch metadata, token counting, the budget endpoint itself), or
 * neither: refused with `403 route_not_budgeted` unless `budgets.allowUnpriced`.
 */
import { usageDialect } from '../usage/tokens.js'

export type RouteKind = 'priced' | 'realtime' | 'free' | 'unpriced'

const FREE_READS = /\/(?:models|files|batches)(?:\/|$)/

export function routeKind (method: string, path: string): RouteKind {
  // a realtime session (the WebSocket upgrade): charged per response.done (src/realtime/relay.ts)
  if (method === 'GET' && path.endsWith('/realtime')) return 'realtime'
  if (method === 'GET' || method === 'HEAD') {
    return FREE_READS.test(path) || path.endsWith('/gateway/budget') ? 'free' : 'unpriced'
  }
  if (method !== 'POST') return 'unpriced'
  // Anthropic's token counting is free
  if (path.endsWith('/messages/count_tokens')) return 'free'
  return usageDialect(path) !== null ? 'priced' : 'unpriced'
}
