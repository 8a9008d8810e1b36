/**
 * `/v1/*` for every method: the pass-through to the selected upstream target.
 * Encapsulated, so its body parsers (raw JSON bytes, streamed everything else) stay here.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { forward } from '../../src/proxy/forward.js'
import { registerProxyBodyParsers } from '../../src/proxy/body.js'

const proxyRoutes: FastifyPluginAsync = async (fastify) => {
  registerProxyBodyParsers(fastify)

  async function proxyHandler (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const gw = request.gw
    gw.target ??= fastify.upstreams.default
    if (gw.upstreamPath === '') gw.upstreamPath = request.url
    return forward(request, reply)
  }

  fastify.all('/v1/*', proxyHandler)
}

export default proxyRoutes
