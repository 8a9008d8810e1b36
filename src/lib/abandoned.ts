/**
 * "The client went away before the response was complete", for plugins that must account for
 * every request (metrics, usage records): such a request ends without `onResponse`, and
 * Fastify's `onRequestAbort` hook has no reply to read the status from. One 'close' listener per
 * request serves every plugin that asked (registered once, on the first call).
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export type AbandonedHandler = (request: FastifyRequest, reply: FastifyReply) => void

const kReply = Symbol('abandoned reply')
type LinkedResponse = ServerResponse & { [kReply]?: FastifyReply }

declare module 'fastify' {
  interface FastifyInstance {
    abandonedHandlers: AbandonedHandler[]
  }
}

/** Calls `handler` for each request whose response closed before it was finished (upgrades excepted). */
export function onAbandoned (fastify: FastifyInstance, handler: AbandonedHandler): void {
  if (fastify.hasDecorator('abandonedHandlers')) {
    fastify.abandonedHandlers.push(handler)
    return
  }
  const handlers: AbandonedHandler[] = [handler]
  fastify.decorate('abandonedHandlers', handlers)

  function closed (this: LinkedResponse): void {
    const reply = this[kReply]
    if (reply === undefined || this.writableFinished) return
    for (const h of handlers) h(reply.request, reply)
  }
  fastify.addHook('onRequest', function watchAbandoned (request, reply, done) {
    if (request.headers.upgrade === undefined) {
      (reply.raw as LinkedResponse)[kReply] = reply
      reply.raw.on('close', closed)
    }
    done()
  })
}

/**
 * The response was cut short: it closed before it finished, and it is not an event stream whose
 * last event had reached the client (a client may close at `[DONE]` before the body's end).
 */
export function cutShort (request: FastifyRequest, reply: FastifyReply): boolean {
  return !reply.raw.writableFinished && request.outcome?.streamEnd?.complete !== true
}
