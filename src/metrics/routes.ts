/**
 * The `route` label: the registered route for the gateway's own routes, and for the `/v1/*`
 * pass-through the API endpoint the path belongs to (`/v1/models/gpt-4o` → `/v1/models`), from a
 * fixed list, so a client cannot create label values by inventing paths.
 */
import type { FastifyRequest } from 'fastify'
import { apiRoutePattern } from '../routing/paths.js'

/** First path segment after /v1/ → label; segments whose second part matters map to a Map. */
const ENDPOINTS = new Map<string, string | Map<string, string>>()

for (const name of ['completions', 'embeddings', 'responses', 'models', 'moderations', 'files', 'uploads', 'batches',
  'assistants', 'threads', 'vector_stores', 'realtime', 'complete', 'containers', 'conversations', 'evals', 'organization']) {
  ENDPOINTS.set(name, `/v1/${name}`)
}
for (const [first, seconds] of [
  ['chat', ['completions']],
  ['audio', ['speech', 'transcriptions', 'translations']],
  ['images', ['generations', 'edits', 'variations']],
  ['messages', ['count_tokens', 'batches']],
  ['fine_tuning', ['jobs', 'checkpoints']]
] as const) {
  const sub = new Map<string, string>()
  for (const second of seconds) sub.set(second, `/v1/${first}/${second}`)
  sub.set('', `/v1/${first}`)
  ENDPOINTS.set(first, sub)
}

export const OTHER_ROUTE = '/v1/other'

/**
 * An Azure-style path as the OpenAI path of the same operation: `/openai/deployments/{d}/x` and
 * `/openai/x` → `/v1/x` (no query string); null for any other path.
 */
export function azureOperationPath (path: string): string | null {
  const at = path.indexOf('/openai/')
  if (at === -1 || path.includes('/v1/')) return null
  const rest = path.slice(at + 8)
  if (!rest.toLowerCase().startsWith('deployments/')) return `/v1/${rest}`
  const operation = rest.indexOf('/', 12)
  return operation === -1 ? OTHER_ROUTE : `/v1${rest.slice(operation)}`
}

/** The deployment named by an Azure-style path (`/openai/deployments/{d}/…`), decoded; else null. */
export function azureDeployment (path: string): string | null {
  const match = /\/openai\/deployments\/([^/?]+)\//i.exec(path)
  if (match === null) return null
  try {
    return decodeURIComponent(match[1])
  } catch {
    return match[1]
  }
}

/** The endpoint label of a `/v1/…` path, or of an Azure-style `/openai/…` one (no query string). */
export function endpointLabel (path: string): string {
  const azure = azureOperationPath(path)
  if (azure !== null) path = azure
  const at = path.indexOf('/v1/')
  if (at === -1) return OTHER_ROUTE
  const start = at + 4
  let end = path.indexOf('/', start)
  if (end === -1) end = path.length
  const entry = ENDPOINTS.get(path.slice(start, end))
  if (entry === undefined) return OTHER_ROUTE
  if (typeof entry === 'string') return entry
  let next = path.indexOf('/', end + 1)
  if (next === -1) next = path.length
  const second = end < path.length ? path.slice(end + 1, next) : ''
  return entry.get(second) ?? entry.get('') as string
}

export function routeLabel (request: FastifyRequest): string {
  // read once per request by plugins/request-state.ts (routeOptions builds an object per read)
  const url = request.outcome != null ? request.routeUrl : apiRoutePattern(request.routeOptions.url)
  if (url === undefined) return 'unmatched'
  if (!url.endsWith('*')) return url
  const path = request.upstream?.apiPath ?? request.url
  const q = path.indexOf('?')
  return endpointLabel(q === -1 ? path : path.slice(0, q))
}
