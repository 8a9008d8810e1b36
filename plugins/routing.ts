/**
 * Chooses the upstream target of each request (`request.upstream.target`) and the path it is sent
 * (`request.upstream.path`).
 *
 * Order of precedence: a `/{target}/v1/…` path prefix (seen before routing, src/routing/paths.ts),
 * then the Host header — a configured prefix (seed 002's `openai.api.`), the first label
 * (`oa.example.com` → `oa`, seed 003's README) or the part of it before a dash
 * (`oa-anything.example.com` → `oa`, seed 003's code) —, then the default target. No match and no
 * default → 404 when a route needs a target. `X-Target-Host` (seed 003), when enabled, overrides
 * all of these for allowlisted hosts only (src/routing/target-host.ts).
 *
 * Host and path are read in `onRequest` (cheap, synchronous). The override, the per-key
 * allowed-targets check and the path mapping run in `preValidation`: after every `onRequest`
 * hook, so after client authentication whatever the plugin order, and after the JSON body was
 * read, since Azure's deployment path depends on the model.
 */
import fp from 'fastify-plugin'
import { isIP } from 'node:net'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import type { UpstreamTarget } from '../src/upstream/target.js'
import { isSafeRequestPath, mapUpstreamPath, pathNeedsModel, withoutFirstSegment } from '../src/routing/paths.js'
import { isMultipart } from '../src/uploads/limiter.js'
import { allowList, checkTargetHost, type AllowList } from '../src/routing/target-host.js'
import { AmbiguousHostError, InvalidPathError, TargetHostRefusedError } from '../src/routing/errors.js'
import { assertAllowed } from '../src/routing/require-target.js'
import { planByModel, type ModelRouter } from '../src/routing/model-groups.js'

export interface RoutingOptions {
  routing: GatewayConfig['routing']
}

/** The Host name without port or trailing dot, lower-case; '' for IP literals (they select nothing). */
function hostnameOf (request: FastifyRequest): string {
  const host = request.host
  if (typeof host !== 'string' || host === '' || host.startsWith('[')) return ''
  const colon = host.indexOf(':')
  const name = (colon === -1 ? host : host.slice(0, colon)).toLowerCase().replace(/\.$/, '')
  return isIP(name) !== 0 ? '' : name
}

function hostLines (rawHeaders: readonly string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].length === 4 && rawHeaders[i].toLowerCase() === 'host') n++
  return n
}

interface HostRouter {
  match: (hostname: string) => UpstreamTarget | undefined
}

function createHostRouter (byName: ReadonlyMap<string, UpstreamTarget>): HostRouter {
  const prefixes = [...byName.values()]
    .flatMap(t => t.hostPrefixes.map(p => [p, t] as const))
    .sort((a, b) => b[0].length - a[0].length)
  return {
    match (hostname) {
      if (hostname === '') return undefined
      for (const [prefix, target] of prefixes) if (hostname.startsWith(prefix)) return target
      const dot = hostname.indexOf('.')
      const label = dot === -1 ? hostname : hostname.slice(0, dot)
      const exact = byName.get(label)
      if (exact !== undefined) return exact
      // `oa-anything`: the longest part before a dash that names a target
      for (let dash = label.lastIndexOf('-'); dash > 0; dash = label.lastIndexOf('-', dash - 1)) {
        const target = byName.get(label.slice(0, dash))
        if (target !== undefined) return target
      }
      return undefined
    }
  }
}

const routing: FastifyPluginAsync<RoutingOptions> = async (fastify, { routing: opts }) => {
  const { byName } = fastify.upstreams
  const fallback = opts.defaultTarget === '' ? null : byName.get(opts.defaultTarget) ?? null
  const hosts = opts.byHost ? createHostRouter(byName) : null
  const override = opts.targetHeader.enabled ? targetHeaderResolver(byName, opts.targetHeader.allowHosts, fastify.upstreams.forHost) : null
  if (override !== null) fastify.log.info({ allowHosts: override.entries }, 'X-Target-Host override enabled')
  // null when no target declares `models` and no group is configured: nothing routes by model
  const models = fastify.modelRouting.active ? fastify.modelRouting : null

  // callback form: a sync lookup, no promise per request
  fastify.addHook('onRequest', function selectTarget (request, _reply, done) {
    // refused before any body is read: a path a normalising upstream would read as another path,
    // and two Host lines, where a proxy in front may have routed by the other one (RFC 9112 §3.2:
    // 400). Health probes and the admin API are outside this plugin's scope: they forward nothing
    if (!isSafeRequestPath(request.url)) throw new InvalidPathError()
    if (hostLines(request.raw.rawHeaders) > 1) throw new AmbiguousHostError()
    const plan = request.upstream
    // a `/{target}/…` route (TARGET_PREFIX): the API path is what follows the name
    const named = (request.params as { target?: string } | undefined)?.target
    let target: UpstreamTarget | undefined
    if (named !== undefined) {
      plan.apiPath = withoutFirstSegment(request.url)
      target = byName.get(named)
      // an unknown name is refused like an unknown route, after authentication (requireTarget)
      if (target === undefined) plan.unknownTarget = true
    } else if (hosts !== null) target = hosts.match(hostnameOf(request))
    plan.target = target ?? (named === undefined ? fallback : null)
    // neither path nor Host chose it: the model may (after the body is read: preValidation)
    if (models !== null && target === undefined && named === undefined) plan.byModel = true
    done()
  })

  if (override === null) {
    // no X-Target-Host override: nothing to wait for, so the sync callback form
    fastify.addHook('preValidation', function authorizeTarget (request, _reply, done) {
      mapTarget(request, models)
      done()
    })
    return
  }
  fastify.addHook('preValidation', async function authorizeTargetOverride (request) {
    const value = request.headers['x-target-host']
    if (value !== undefined) {
      request.upstream.target = await override.resolve(value, request.upstream.target)
      request.upstream.byModel = false
    }
    mapTarget(request, models)
  })
}

/**
 * Routes by model when nothing else chose the target, checks the client may use the chosen
 * target and maps the upstream path for it.
 */
function mapTarget (request: FastifyRequest, models: ModelRouter | null): void {
  const plan = request.upstream
  if (plan.byModel) planByModel(request, models as ModelRouter)
  const target = plan.target
  if (target === null) return
  assertAllowed(request, target)
  const url = plan.apiPath
  plan.path = mapUpstreamPath(target, url, plan.model)
  // a form names its model in a field: the path is mapped (and, routed by model, the target
  // chosen) again once the field was read
  if (plan.model !== null || !isMultipart(request.headers)) return
  const route = plan.byModel && models !== null && models.byGlob ? models.formRoute : null
  if (route !== null || pathNeedsModel(target, url)) plan.formModel = { url, value: null, route }
}

interface TargetHeaderResolver {
  entries: readonly string[]
  resolve: (value: string | string[], current: UpstreamTarget | null) => Promise<UpstreamTarget>
}

/**
 * An allowlisted `X-Target-Host` names a configured target by its host (the request keeps that
 * target's keys and settings), or else a bare host reached with the client's own credentials.
 */
function targetHeaderResolver (
  byName: ReadonlyMap<string, UpstreamTarget>,
  configured: readonly string[],
  forHost: (authority: string, checked: boolean) => UpstreamTarget
): TargetHeaderResolver {
  const byAuthority = new Map<string, UpstreamTarget>()
  for (const t of byName.values()) if (!byAuthority.has(t.authority)) byAuthority.set(t.authority, t)
  // default allowlist: the hosts of the configured targets
  const entries = configured.length > 0 ? configured : [...byAuthority.keys()]
  const allow: AllowList = allowList(entries)
  return {
    entries,
    async resolve (value, current) {
      const decision = await checkTargetHost(value, allow)
      if (decision === null) throw new TargetHostRefusedError()
      const authority = decision.kind === 'checked' ? decision.hostname : decision.authority
      if (current !== null && current.authority === authority) return current
      return byAuthority.get(authority) ?? forHost(authority, decision.kind === 'checked')
    }
  }
}

export default fp(routing, { name: 'gateway-routing', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-upstreams', 'gateway-model-groups'] })
