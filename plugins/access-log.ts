/**
 * One access line per request (method, path without query, status, duration, upstream, model,
 * stream flag), also for responses cut short (`cutShort: true`), on stdout and, with BASE_PATH,
 * in the access log file, with the request's usage record merged in (one line per request, see
 * `request.outcome.record`). Registered at the root: every request has a line, health probes and admin
 * calls included. A route with `config: { accessLog: 'failures' }` (the health probes) has a line
 * only when it failed. Request and answer dumps are plugins/body-log.ts. Keys never reach these
 * lines: every serialised line passes the logger's secret filter (src/logging.ts).
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { kPlainFields, pathOnly } from '../src/logging.js'
import type { UpstreamPlan } from '../src/upstream/plan.js'
import { cutShort } from '../src/proxy/outcome.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'failures': a line only for a failed request (health probes answer every few seconds) */
    accessLog?: 'failures'
  }
}

/** a probe's request: its line is written only when it failed (route option `accessLog`) */
const kQuiet = Symbol('quiet when healthy')
type Quiet = FastifyRequest & { [kQuiet]: boolean }

/** The route-level hook of a quiet route: set at registration, nothing per request elsewhere. */
function markQuiet (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  (request as Quiet)[kQuiet] = true
  done()
}

function withHook<T> (hooks: T | T[] | undefined, hook: T): T[] {
  return hooks === undefined ? [hook] : Array.isArray(hooks) ? [...hooks, hook] : [hooks, hook]
}

const accessLog: FastifyPluginAsync = async (fastify) => {
  const accessFile = fastify.hasDecorator('logFiles') ? fastify.logFiles?.access ?? null : null
  fastify.decorateRequest(kQuiet, false)

  // per-route behaviour decided once, when the route is registered (as @fastify/rate-limit does)
  fastify.addHook('onRoute', function quietRoutes (route: RouteOptions) {
    if (route.config?.accessLog === 'failures') route.onRequest = withHook(route.onRequest, markQuiet)
  })

  function writeAccessLine (request: FastifyRequest, reply: FastifyReply, cutShort: boolean): void {
    if ((request as Quiet)[kQuiet] && reply.statusCode < 400 && !cutShort) return
    const plan = request.upstream as UpstreamPlan | null
    const record = request.outcome?.record as Record<string | symbol, unknown> | null | undefined
    let line: Record<string | symbol, unknown>
    if (record !== null && record !== undefined) {
      // the usage record has every field of the access line (the same status and duration
      // rules) but the target's name under `upstream`: it becomes the line, no second object
      line = record
      line.upstream = plan?.target?.name
      if (cutShort) line.cutShort = true
    } else {
      line = {
        method: request.method,
        path: pathOnly(request.upstream?.apiPath ?? request.url),
        // nothing was answered: nginx's "client closed request" rather than a 200 never sent
        status: cutShort && !reply.raw.headersSent ? 499 : reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
        upstream: plan?.target?.name,
        model: plan?.model ?? undefined,
        stream: request.proxyBody?.json != null ? request.proxyBody.wantsStream : undefined,
        client: request.client?.name,
        // an upstream failure mid-body was classified before the socket was cut; else the client left
        errorClass: request.outcome?.errorClass ?? (cutShort ? 'client_abort' : undefined)
      }
      if (cutShort) line.cutShort = true
    }
    // plain JSON values only: one JSON.stringify writes them (src/logging.ts)
    line[kPlainFields] = true
    request.log.info(line, 'request completed')
    accessFile?.info({ reqId: request.id, ...line }, 'request completed')
  }

  // the last step of settling: the usage record, written before, becomes this line
  fastify.settle.add('log', 'access-line', function accessLine (request, reply, abandoned) {
    writeAccessLine(request, reply, abandoned && cutShort(request, reply))
  })
}

export default fp(accessLog, { name: 'gateway-access-log', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-settle'] })
