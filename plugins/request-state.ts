/**
 * The per-request state of the lifecycle, one owner per phase (DESIGN.md §3), declared once:
 * - `request.client`: who the caller is (admit: plugins/auth.ts);
 * - `request.upstream`: where the request goes (plan: plugins/routing.ts);
 * - `request.outcome`: what happened (attempt and deliver: the forwarder; read when it settles);
 * - `request.proxyBody`: the body as it goes upstream (the body parsers, plugins/upload-limits.ts);
 * - `request.routeUrl`: the matched route's URL pattern (without a target prefix), read once.
 * Plugin-private state lives under each plugin's own Symbol.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { ClientIdentity } from '../src/auth/client.js'
import { newPlan, type UpstreamPlan } from '../src/upstream/plan.js'
import { newOutcome, type Outcome } from '../src/proxy/outcome.js'
import type { ProxyBody } from '../src/proxy/proxy-body.js'
import { apiRoutePattern } from '../src/routing/paths.js'

declare module 'fastify' {
  interface FastifyRequest {
    client: ClientIdentity | null
    upstream: UpstreamPlan
    outcome: Outcome
    proxyBody: ProxyBody | null
    /** the matched route's URL pattern without a target prefix (undefined: no route matched) */
    routeUrl: string | undefined
  }
}

const requestState: FastifyPluginAsync = async (fastify) => {
  fastify.decorateRequest('client', null)
  fastify.decorateRequest('upstream', null as unknown as UpstreamPlan)
  fastify.decorateRequest('outcome', null as unknown as Outcome)
  fastify.decorateRequest('proxyBody', null)
  fastify.decorateRequest('routeUrl', undefined)
  // callback form, not async: an async hook costs a promise and a microtask on every request
  fastify.addHook('onRequest', function initRequestState (request, _reply, done) {
    request.outcome = newOutcome(performance.now())
    request.upstream = newPlan(request.url)
    // Fastify's `request.routeOptions` getter builds a fresh object on every read: read once
    request.routeUrl = apiRoutePattern(request.routeOptions.url)
    done()
  })
}

export default fp(requestState, { name: 'gateway-request-state', fastify: '5.x' })
