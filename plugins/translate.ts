/**
 * Dialect translation's answer side: one response stage that turns a translated attempt's answer
 * (JSON, event stream or error) into the client's dialect (src/translate/). The request side is
 * decided per attempt where the attempt is built (src/proxy/forward.ts). Registered after the
 * usage plugin: usage is read in the upstream's dialect, before translation.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { answerStage, type StageLimits } from '../src/translate/stage.js'

export interface TranslateOptions {
  limits: StageLimits
}

const translate: FastifyPluginAsync<TranslateOptions> = async (fastify, { limits }) => {
  fastify.forwarder.addStage({
    name: 'translate',
    position: 'near-client',
    make (start) {
      const translation = start.request.upstream.translation
      return translation === null ? null : answerStage(translation.direction, translation.answer, start, limits)
    }
  })
}

export default fp(translate, { name: 'gateway-translate', fastify: '5.x', dependencies: ['gateway-forwarder'] })
