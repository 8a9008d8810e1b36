/**
 * CORS for browser clients, as seeds 002 and 004 do: a preflight (`OPTIONS` with
 * `Access-Control-Request-Method`) is answered 204 before any other check (it carries no
 * credentials), and every response carries the allow-origin header.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'

export interface CorsOptions {
  cors: GatewayConfig['cors']
}

const METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS'
const EXPOSED = 'x-request-id, x-cache, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests'

const corsPlugin: FastifyPluginAsync<CorsOptions> = async (fastify, { cors }) => {
  if (cors.origins.length === 0) return
  const any = cors.origins.includes('*')
  const allowed = new Set(cors.origins)
  const allowHeaders = cors.allowHeaders.join(', ')
  const maxAge = String(cors.maxAgeSeconds)

  function originFor (request: FastifyRequest): string | null {
    const origin = request.headers.origin
    if (any) return '*'
    return typeof origin === 'string' && allowed.has(origin) ? origin : null
  }

  // callback form: a promise per request for a few header writes is most of this hook's cost
  fastify.addHook('onRequest', function corsHeaders (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const origin = originFor(request)
    if (origin === null) return done()
    reply.header('access-control-allow-origin', origin)
    if (!any) reply.header('vary', 'Origin')
    reply.header('access-control-expose-headers', EXPOSED)
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      reply.header('access-control-allow-methods', METHODS)
      reply.header('access-control-allow-headers', allowHeaders)
      reply.header('access-control-max-age', maxAge)
      // answered here: the rest of the chain does not run (done() is not called)
      reply.code(204).send()
      return
    }
    done()
  })
}

export default fp(corsPlugin, { name: 'gateway-cors', fastify: '5.x', dependencies: ['gateway-request-state'] })
