/**
 * The settle phase: once per request, whatever happened (answered, refused, the client gone,
 * the upstream failed mid-body), the plugins that account for requests run in one fixed order:
 * the metrics, then the usage record, then the access line, which carries the record.
 *
 * A request ends either with Fastify's `onResponse` (its response finished) or, when the response
 * only closed (the client left mid-stream, or the connection was cut so the client cannot take a
 * truncated body for a whole one), with the response's 'close': `onResponse` does not run for
 * those, and `onRequestAbort` has no reply to read a status from. Both lead here; the first wins.
 * WebSocket upgrades are settled by their `onResponse` only (an accepted session has its own
 * record and line, src/realtime).
 */
import fp from 'fastify-plugin'
import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'

/** `abandoned`: the response closed before it finished (src/proxy/outcome.ts `cutShort` says whether it was complete). */
export type Settler = (request: FastifyRequest, reply: FastifyReply, abandoned: boolean) => void

/** Where a settler runs: accounting first (metrics, usage and cost), the access line last. */
export type SettleStep = 'account' | 'record' | 'log'

const STEPS: readonly SettleStep[] = ['account', 'record', 'log']

declare module 'fastify' {
  interface FastifyInstance {
    /** adds a settler (at boot); within a step, in the order they were added */
    settle: { add: (step: SettleStep, name: string, settler: Settler) => void }
  }
}

const kSettled = Symbol('settled')
const kReply = Symbol('settled reply')
type Settled = FastifyRequest & { [kSettled]: boolean }
type LinkedResponse = ServerResponse & { [kReply]?: FastifyReply }

const settle: FastifyPluginAsync = async (fastify) => {
  const byStep = new Map<SettleStep, Array<{ name: string, settler: Settler }>>(STEPS.map(step => [step, []]))
  let ordered: Array<{ name: string, settler: Settler }> = []
  fastify.decorate('settle', {
    add (step: SettleStep, name: string, settler: Settler) {
      byStep.get(step)?.push({ name, settler })
      ordered = STEPS.flatMap(s => byStep.get(s) ?? [])
    }
  })
  fastify.decorateRequest(kSettled, false)

  function settleOnce (request: FastifyRequest, reply: FastifyReply, abandoned: boolean): void {
    if ((request as Settled)[kSettled]) return
    ;(request as Settled)[kSettled] = true
    for (const { name, settler } of ordered) {
      // one settler's bug must not cost the request its other records
      try {
        settler(request, reply, abandoned)
      } catch (err) {
        request.log.error({ err, settler: name }, 'settling the request failed')
      }
    }
  }

  function closed (this: LinkedResponse): void {
    const reply = this[kReply]
    if (reply !== undefined && !this.writableFinished) settleOnce(reply.request, reply, true)
  }

  // callback forms: nothing to wait for, so no promise per request
  fastify.addHook('onRequest', function watchClose (request, reply, done) {
    if (request.headers.upgrade === undefined) {
      (reply.raw as LinkedResponse)[kReply] = reply
      reply.raw.on('close', closed)
    }
    done()
  })
  fastify.addHook('onResponse', function settleAnswered (request, reply, done) {
    settleOnce(request, reply, false)
    done()
  })
}

export default fp(settle, { name: 'gateway-settle', fastify: '5.x', dependencies: ['gateway-request-state'] })
