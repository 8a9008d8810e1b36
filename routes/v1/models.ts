/**
 * `GET /v1/models` from the model list cache (plugins/models-cache.ts), for OpenAI clients and for
 * Anthropic clients (`anthropic-version`), each cached separately; `X-Cache: HIT|MISS` says which.
 * `GET /v1/models/{id}` is answered from a cached list when it holds that model, and forwarded
 * otherwise. A client restricted to some models (`allowedModels`) sees only those.
 * Other methods on these paths go to the pass-through proxy.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ModelNotAllowedError } from '../../src/errors.js'
import { addUpstreamHeaders, yieldLimitHeaders } from '../../src/proxy/headers.js'
import { requireTarget } from '../../src/routing/require-target.js'
import { registerProxyBodyParsers } from '../../src/proxy/body.js'
import { pathOnly } from '../../src/logging.js'
import { groupEntry, type ModelList } from '../../src/models/list.js'

const NO_GROUPS: readonly string[] = []

/** The list path a `…/models/{id}` path belongs to. */
export function listPathOf (upstreamPath: string): string {
  const path = pathOnly(upstreamPath)
  const at = path.indexOf('/models/')
  return at === -1 ? path : path.slice(0, at + '/models'.length)
}

/**
 * The list limited to the models a client may use (Anthropic's first_id/last_id follow), with the
 * model groups' names (`groups`) after the upstream's models.
 */
function visibleBody (list: ModelList, allowed: readonly string[] | undefined, groups: readonly string[]): Buffer | string {
  const data = list.json?.data
  if ((allowed === undefined && groups.length === 0) || list.json === null || !Array.isArray(data)) return list.body
  const anthropic = 'first_id' in list.json
  const all = groups.length === 0 ? data : [...data, ...groups.filter(g => !list.byId.has(g)).map(g => groupEntry(g, anthropic))]
  const kept = allowed === undefined ? all : all.filter((m: { id?: unknown }) => typeof m?.id === 'string' && allowed.includes(m.id))
  const out: Record<string, unknown> = { ...list.json, data: kept }
  if ('first_id' in out) out.first_id = kept[0]?.id ?? null
  if ('last_id' in out) out.last_id = kept.at(-1)?.id ?? null
  return JSON.stringify(out)
}

function sendList (reply: FastifyReply, list: ModelList, hit: boolean, allowed: readonly string[] | undefined, groups: readonly string[]): FastifyReply {
  reply.code(list.status)
  if (hit) {
    reply.header('content-type', list.contentType || 'application/json')
    reply.header('age', String(Math.max(0, Math.floor((Date.now() - list.storedAt) / 1000))))
  } else {
    if (list.status === 429) yieldLimitHeaders(reply)
    addUpstreamHeaders(reply, list.headers)
  }
  reply.header('x-cache', hit ? 'HIT' : 'MISS')
  // errors are the upstream's own words: never filtered
  return reply.send(list.status >= 200 && list.status < 300 ? visibleBody(list, allowed, groups) : list.body)
}

const modelsRoutes: FastifyPluginAsync = async (fastify) => {
  // a GET with a body must not be parsed away before forward() streams it
  registerProxyBodyParsers(fastify)
  // the model groups are models of every list whose target was not fixed by a path or Host (where
  // a group's name routes to the group)
  const groups = [...fastify.modelRouting.groups.keys()]
  const groupsFor = (request: FastifyRequest): readonly string[] => request.upstream.byModel ? groups : NO_GROUPS

  fastify.get('/v1/models', async function listModels (request, reply) {
    // the routed target: 404 when none matched, 403 when the key may not use it, as for the proxy
    const target = requireTarget(request)
    const result = await fastify.modelsCache.list(request, target, request.upstream.path)
    if (!result.ok) {
      request.outcome.errorClass = result.failure.errorClass
      throw result.failure.error
    }
    if (!result.hit) request.outcome.status = result.list.status
    return sendList(reply, result.list, result.hit, request.client?.allowedModels, groupsFor(request))
  })

  fastify.get('/v1/models/*', async function getModel (request, reply) {
    // the routed target: 404 when none matched, 403 when the key may not use it, as for the proxy
    const target = requireTarget(request)
    const id = (request.params as { '*': string })['*']
    const allowed = request.client?.allowedModels
    if (allowed !== undefined && !allowed.includes(id)) {
      request.outcome.errorClass = 'model_not_allowed'
      throw new ModelNotAllowedError(id.slice(0, 200))
    }
    if (groupsFor(request).includes(id)) {
      reply.header('content-type', 'application/json')
      return reply.send(JSON.stringify(groupEntry(id, request.headers['anthropic-version'] !== undefined)))
    }
    const list = fastify.modelsCache.peek(request, target, listPathOf(request.upstream.path))
    const model = list?.byId.get(id)
    if (list === undefined || model === undefined) {
      reply.header('x-cache', 'MISS')
      return reply.forward()
    }
    reply.header('content-type', list.contentType || 'application/json')
    reply.header('x-cache', 'HIT')
    return reply.send(JSON.stringify(model))
  })
}

export default modelsRoutes
