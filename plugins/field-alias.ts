/**
 * Seed 004's `field_aliases`: JSON request body keys renamed at every depth before the body goes
 * upstream, globally and per upstream target; optionally renamed back in JSON and event-stream
 * responses, so a client speaking OpenAI field names can use an upstream that names them
 * differently.
 *
 * Off (no aliases configured) this plugin adds no hook: bodies are neither parsed nor re-serialised
 * beyond what the core does. On, a body is re-serialised only when a key was actually renamed.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { aliasMap, mergeAliases, renameKeys, reverseAliases, TooDeepError, type AliasMap } from '../src/lib/alias-map.js'
import { askForIdentity, rewriteHook, type ResponseRewrite, type RewriteLimits } from '../src/proxy/response-rewrite.js'
import type { StageMaker } from '../src/proxy/stages.js'
import { JsonTooDeepError } from '../src/errors.js'

export interface FieldAliasOptions {
  transforms: Pick<GatewayConfig['transforms'], 'fieldAliases' | 'fieldAliasesByTarget' | 'reverseFieldAliases'>
  /** shared with the other rewriting plugins (one bound on the JSON bytes they hold together) */
  limits: RewriteLimits
}

interface Maps {
  forward: AliasMap
  /** null when responses are not renamed back */
  reverse: AliasMap | null
  hook: StageMaker | null
}

function buildMaps (forward: AliasMap, reverse: boolean, limits: RewriteLimits): Maps {
  if (!reverse || forward.size === 0) return { forward, reverse: null, hook: null }
  // ambiguity is refused at config load (checkTransforms); reverseAliases refuses it again here
  const back = reverseAliases(forward)
  return { forward, reverse: back, hook: rewriteHook('field-alias', limits, () => reverseRewrite(back)) }
}

/** Renaming back works the same on a whole JSON body and on each event of a stream. */
function reverseRewrite (map: AliasMap): ResponseRewrite {
  const rename = (value: unknown): unknown => {
    const r = renameKeys(value, map)
    return r.changed ? r.value : undefined
  }
  return { json: rename, sse: { event: rename } }
}

const fieldAlias: FastifyPluginAsync<FieldAliasOptions> = async (fastify: FastifyInstance, { transforms, limits }) => {
  const global = aliasMap(transforms.fieldAliases)
  const byTarget = new Map<string, Maps>()
  for (const [target, record] of Object.entries(transforms.fieldAliasesByTarget)) {
    byTarget.set(target, buildMaps(mergeAliases(global, aliasMap(record)), transforms.reverseFieldAliases, limits))
  }
  if (global.size === 0 && [...byTarget.values()].every(m => m.forward.size === 0)) return
  const globalMaps = buildMaps(global, transforms.reverseFieldAliases, limits)

  /** The target may be chosen by a routing plugin before this hook; without one it is the default. */
  function mapsFor (request: FastifyRequest): Maps {
    const name = request.upstream.target?.name ?? fastify.upstreams.default.name
    return byTarget.get(name) ?? globalMaps
  }

  fastify.addHook('preHandler', async function renameFieldAliases (request) {
    const body = request.proxyBody
    const maps = mapsFor(request)
    if (body?.json != null && maps.forward.size > 0) {
      let renamed
      try {
        renamed = renameKeys(body.json, maps.forward)
      } catch (err) {
        if (err instanceof TooDeepError) throw new JsonTooDeepError()
        throw err
      }
      if (renamed.changed) body.replace(renamed.value as Record<string, unknown>)
    }
    // renamed back: the answer must come readable
    if (maps.hook !== null && request.headers.upgrade === undefined) askForIdentity(request)
  })

  // closest to the upstream: the upstream's names are translated before other stages read them
  fastify.forwarder.addStage({
    name: 'field-alias',
    position: 'near-upstream',
    make (start) {
      const hook = mapsFor(start.request).hook
      return hook === null ? null : hook(start)
    }
  })
}

export default fp(fieldAlias, { name: 'gateway-field-alias', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-upstreams', 'gateway-forwarder'] })
