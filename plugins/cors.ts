/**
 * CORS for browser clients, for the configured origins only (none by default). A preflight
 * (`OPTIONS` with `Access-Control-Request-Method`) carries no credentials and is answered 204
 * before authentication; it is registered after the address checks, so a denied or blacklisted
 * address is refused like any other request. Every response to an allowed origin carries the
 * allow-origin header and exposes the headers the SDKs and browser apps read.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'

export interface CorsOptions {
  cors: GatewayConfig['cors']
}

const METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS'

/**
 * Response headers a page may read: the request ids, the gateway's rate-limit answer and the
 * upstream's own rate-limit headers (OpenAI's and Anthropic's names), and those the SDKs read
 * to decide on a retry or a poll.
 */
const EXPOSED = [
  'x-request-id', 'x-upstream-request-id', 'request-id', 'x-cache',
  'retry-after', 'retry-after-ms', 'x-should-retry', 'openai-poll-after-ms', 'openai-processing-ms', 'anthropic-workspace-id',
  ...['requests', 'tokens'].flatMap(kind => ['limit', 'remaining', 'reset'].map(part => `x-ratelimit-${part}-${kind}`)),
  ...['limit', 'remaining', 'reset'].map(part => `x-gateway-ratelimit-${part}`),
  ...['requests', 'tokens', 'input-tokens', 'output-tokens'].flatMap(kind => ['limit', 'remaining', 'reset'].map(part => `anthropic-ratelimit-${kind}-${part}`))
].join(', ')

/** `allowHeaders` split into exact names (answered as listed) and `prefix*` entries. */
export function headerPolicy (allowHeaders: readonly string[]): { exact: string, prefixes: string[] } {
  const prefixes = allowHeaders.filter(h => h.endsWith('*')).map(h => h.slice(0, -1).toLowerCase())
  return { exact: allowHeaders.filter(h => !h.endsWith('*')).join(', '), prefixes }
}

/** The exact names, plus each requested header that one of the prefixes allows. */
export function allowedRequestHeaders (policy: { exact: string, prefixes: string[] }, requested: string | undefined): string {
  if (requested === undefined || policy.prefixes.length === 0) return policy.exact
  const extra = requested.split(',').map(h => h.trim().toLowerCase())
    .filter(h => h !== '' && policy.prefixes.some(p => h.startsWith(p)))
  return extra.length === 0 ? policy.exact : [policy.exact, ...extra].filter(Boolean).join(', ')
}

const corsPlugin: FastifyPluginAsync<CorsOptions> = async (fastify, { cors }) => {
  if (cors.origins.length === 0) return
  const any = cors.origins.includes('*')
  const allowed = new Set(cors.origins)
  const policy = headerPolicy(cors.allowHeaders)
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
      const requested = request.headers['access-control-request-headers']
      reply.header('access-control-allow-methods', METHODS)
      reply.header('access-control-allow-headers', allowedRequestHeaders(policy, typeof requested === 'string' ? requested : undefined))
      if (policy.prefixes.length > 0) reply.header('vary', any ? 'Access-Control-Request-Headers' : 'Origin, Access-Control-Request-Headers')
      reply.header('access-control-max-age', maxAge)
      // answered here: the rest of the chain does not run (done() is not called)
      reply.code(204).send()
      return
    }
    done()
  })
}

export default fp(corsPlugin, { name: 'gateway-cors', fastify: '5.x', dependencies: ['gateway-request-state'] })
