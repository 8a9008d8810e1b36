/**
 * The forwarder: `reply.forward(options?)` sends the request to the target its plan chose and
 * the answer back (attempt and deliver, src/proxy/forward.ts and src/proxy/delivery.ts), and
 * `fastify.forwarder` holds the response stages, registered once at boot by the plugins that
 * read or rewrite answers, and `fetch()` for the gateway's own calls to an upstream (the models
 * cache). Registered at the root, before the plugins that add stages.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { forward, type ForwardOptions } from '../src/proxy/forward.js'
import { StageRegistry, type StageEntry } from '../src/proxy/stages.js'
import { fetchFromUpstream, type UpstreamFetch, type FetchedAnswer } from '../src/proxy/fetch.js'
import type { UpstreamTarget } from '../src/upstream/target.js'

export interface Forwarder {
  /** adds a response stage (at boot): its position and the order of registration fix where it runs */
  addStage: (entry: StageEntry) => void
  /** the stages in the order they run, upstream side first */
  readonly stages: readonly StageEntry[]
  /** a whole, bounded answer from `target` on the request's behalf (its credentials, its key) */
  fetch: (request: FastifyRequest, target: UpstreamTarget, options: UpstreamFetch) => Promise<FetchedAnswer>
}

declare module 'fastify' {
  interface FastifyInstance {
    forwarder: Forwarder
  }
  interface FastifyReply {
    /** forwards the request as planned (`request.upstream`) and delivers the answer */
    forward: (options?: ForwardOptions) => Promise<FastifyReply | undefined>
  }
}

const forwarder: FastifyPluginAsync = async (fastify) => {
  const registry = new StageRegistry()
  fastify.decorate('forwarder', {
    addStage: (entry: StageEntry) => registry.add(entry),
    get stages () { return registry.ordered },
    fetch: fetchFromUpstream
  })
  fastify.decorateReply('forward', function forwardRequest (this: FastifyReply, options?: ForwardOptions) {
    return forward(this.request, this, registry, options)
  })
}

export default fp(forwarder, { name: 'gateway-forwarder', fastify: '5.x', dependencies: ['gateway-request-state'] })
