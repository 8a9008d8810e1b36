/**
 * `/v1/*` for every method: the pass-through to the planned upstream target; `/openai/*` too, for
 * Azure-style clients (`/openai/deployments/{d}/chat/completions?api-version=…`).
 * Encapsulated, so its body parsers (raw JSON bytes, streamed everything else) stay here.
 * `/{target}/v1/*` reaches these same routes: the prefix is resolved before routing.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { registerProxyBodyParsers } from '../../src/proxy/body.js'
import { requireTarget } from '../../src/routing/require-target.js'

const proxyRoutes: FastifyPluginAsync = async (fastify) => {
  registerProxyBodyParsers(fastify)

  async function proxyHandler (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    requireTarget(request)
    return reply.forward()
  }

  fastify.all('/v1/*', proxyHandler)
  fastify.all('/openai/*', proxyHandler)
}

export default proxyRoutes
