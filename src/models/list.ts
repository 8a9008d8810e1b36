/** The model list cache's entries and interface (`fastify.modelsCache`, plugins/models-cache.ts). */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import type { UpstreamFailure } from '../proxy/upstream-errors.js'

/** One upstream answer to a model list request, as stored and replayed. */
export interface ModelList {
  status: number
  /** upstream headers as the first client saw them */
  headers: Record<string, string | string[]>
  contentType: string
  body: Buffer
  /** the parsed JSON object, when the body was one */
  json: Record<string, unknown> | null
  /** `data[]` items by id: OpenAI and Anthropic lists both have this shape */
  byId: Map<string, unknown>
  storedAt: number
}

export type ListResult =
  | { ok: true, list: ModelList, hit: boolean }
  | { ok: false, failure: UpstreamFailure }

export interface ModelsCache {
  /** The model list at `path` for this request's target and credential: cached, or fetched once. */
  list: (request: FastifyRequest, target: UpstreamTarget, path: string) => Promise<ListResult>
  /** The cached list at `path`, if there is one (never fetches). */
  peek: (request: FastifyRequest, target: UpstreamTarget, path: string) => ModelList | undefined
  size: () => number
  /** Empties the cache (in-flight fetches are not stored afterwards); returns the entries dropped. */
  clear: () => number
}

/** A model group as a model list entry, in the list's dialect (Anthropic's lists have `first_id`). */
export function groupEntry (name: string, anthropic: boolean): Record<string, unknown> {
  return anthropic
    ? { type: 'model', id: name, display_name: name, created_at: '1970-01-01T00:00:00Z' }
    : { id: name, object: 'model', created: 0, owned_by: 'gateway' }
}
