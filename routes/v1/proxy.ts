/**
 * `/v1/*` for every method: the pass-through to the planned upstream target; `/openai/*` too, for
 * Azure-style clients (`/openai/deployments/{d}/chat/completions?api-version=…`).
 * Encapsulated, so its body parsers (raw JSON bytes, streamed everything else) stay here.
 * `/{target}/v1/*` reaches these same routes: the prefix is resolved before routing.
 * `POST /v1/messages/count_tokens` is answered by the gateway when the target does not speak
 * Messages (it has no such endpoint; docs/translation.md).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { registerProxyBodyParsers } from '../../src/proxy/body.js'
import { requireTarget } from '../../src/routing/require-target.js'
import { translationFor } from '../../src/translate/index.js'
import { countMessageTokens } from '../../src/translate/count-tokens.js'

const proxyRoutes: FastifyPluginAsync = async (fastify) => {
  registerProxyBodyParsers(fastify)

  async function proxyHandler (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    requireTarget(request)
    return reply.forward()
  }

  async function countTokensHandler (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    requireTarget(request)
    const target = request.upstream.target
    const json = request.proxyBody?.json
    if (target === null || json == null || translationFor('messages', target) === null) return reply.forward()
    return reply.send(await countMessageTokens(json, target.provider))
  }

  fastify.post('/v1/messages/count_tokens', countTokensHandler)
  fastify.all('/v1/*', proxyHandler)
  fastify.all('/openai/*', proxyHandler)
}

export default proxyRoutes
