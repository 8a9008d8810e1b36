/**
 * Per-request state shared by the gateway's plugins: who the client is, which upstream the
 * request goes to, the parsed JSON body, and the hooks that want to see the response. It is one
 * typed decorator (`request.gw`) instead of ad-hoc properties, so every plugin reads and writes
 * the same declared shape (STYLE.md §2.3).
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ClientIdentity } from '../src/auth/client.js'
import type { GatewayState } from '../src/proxy/state.js'

declare module 'fastify' {
  interface FastifyRequest {
    gw: GatewayState
  }
}

export function newState (): GatewayState {
  return {
    startedAt: performance.now(),
    client: null,
    target: null,
    upstreamPath: '',
    rawBody: null,
    json: null,
    bodyChanged: false,
    bodyAdditions: null,
    bodyStream: null,
    formModel: null,
    model: null,
    stream: false,
    responseHooks: [],
    realtimeHooks: [],
    upstreamStatus: 0,
    upstreamKeyName: null,
    ttfbMs: null,
    errorClass: null,
    routeUrl: undefined,
    logFields: null,
    streamEnd: null
  }
}

/**
 * The client key a request was authenticated with, or null for a caller without one: plain
 * pass-through mode, or an unknown caller let through by `auth.passThroughUnknown`. Those share
 * no key's scope; the rate limit and context ids scope them by address or credential instead.
 */
export function keyedClient (request: FastifyRequest): ClientIdentity | null {
  const client = request.gw?.client ?? null
  return client !== null && client.passThrough !== true ? client : null
}

const requestState: FastifyPluginAsync = async (fastify) => {
  fastify.decorateRequest('gw', null as unknown as GatewayState)
  // callback form, not async: an async hook costs a promise and a microtask on every request
  fastify.addHook('onRequest', function initRequestState (request, _reply, done) {
    const gw = newState()
    // Fastify's `request.routeOptions` getter builds a fresh object on every read: read once
    gw.routeUrl = request.routeOptions.url
    request.gw = gw
    done()
  })
}

export default fp(requestState, { name: 'gateway-request-state', fastify: '5.x' })
