/**
 * Prometheus metrics: counts every request when it ends (or when its client goes away), from the
 * final status, the error class and the response headers alone, so no other plugin has to report
 * to it. `fastify.metrics` is there for what only others know: the realtime relay calls
 * `realtimeSessionOpened()`/`realtimeSessionClosed()`, the usage plugin `countTokens()`.
 *
 * The page itself is served by routes/metrics.ts on the main listener (admin token), or, with
 * `metrics.separate`, by a plain listener of its own started here (loopback by default, no token).
 */
import fp from 'fastify-plugin'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { GatewayMetrics } from '../src/metrics/gateway-metrics.js'
import { routeLabel } from '../src/metrics/routes.js'
import { pathOnly } from '../src/logging.js'
import { cutShort, type Outcome } from '../src/proxy/outcome.js'
import type { ResponseStart } from '../src/proxy/stages.js'

export interface MetricsOptions {
  metrics: GatewayConfig['metrics']
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the metrics registry and helpers; null when metrics are off */
    metrics: GatewayMetrics | null
    /** the separate metrics listener's address, when there is one and it listens */
    metricsAddress: () => AddressInfo | null
  }
}

/** this request's event stream is counted as open */
const kStreamOpen = Symbol('metrics stream open')
type Counted = FastifyRequest & { [kStreamOpen]: boolean }
function observeEnd (metrics: GatewayMetrics, request: FastifyRequest, reply: FastifyReply, aborted: boolean): void {
  if ((request as Counted)[kStreamOpen]) metrics.streamEnded()
  const outcome = request.outcome as Outcome | null
  const incomplete = aborted && cutShort(request, reply)
  if (incomplete && outcome !== null) outcome.errorClass ??= 'client_abort'
  const route = routeLabel(request)
  metrics.observe({
    // routing picks a target for every request; an unknown route never used it
    target: route === 'unmatched' ? 'none' : (request.outcome?.target ?? request.upstream?.target)?.name ?? 'none',
    route,
    // nginx's 499: the client closed the connection before it got an answer
    status: incomplete && !reply.raw.headersSent ? 499 : reply.statusCode,
    durationMs: reply.elapsedTime,
    ttfbMs: outcome?.ttfbMs ?? null,
    errorClass: outcome?.errorClass ?? (incomplete ? 'client_abort' : null),
    upstreamStatus: outcome?.status ?? 0,
    cache: reply.getHeader('x-cache')
  })
}

function startListener (fastify: FastifyInstance, metrics: GatewayMetrics, opts: GatewayConfig['metrics']): Server {
  const server = createServer((req, res) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || pathOnly(req.url ?? '') !== opts.path) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    metrics.text().then((text) => {
      res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text)
    }, (err: unknown) => {
      fastify.log.error({ err }, 'metrics could not be collected')
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n')
    })
  })
  fastify.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const address = server.address() as AddressInfo
    fastify.log.info({ url: `http://${address.address}:${address.port}${opts.path}` }, 'metrics listener started')
  })
  fastify.addHook('onClose', async () => {
    if (!server.listening) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return server
}

const metricsPlugin: FastifyPluginAsync<MetricsOptions> = async (fastify, { metrics: opts }) => {
  if (!opts.enabled) {
    fastify.decorate('metrics', null)
    fastify.decorate('metricsAddress', () => null)
    return
  }
  const metrics = new GatewayMetrics(opts)
  fastify.decorate('metrics', metrics)
  fastify.decorateRequest(kStreamOpen, false)

  const server = opts.separate ? startListener(fastify, metrics, opts) : null
  fastify.decorate('metricsAddress', () => (server?.listening === true ? server.address() as AddressInfo : null))

  // An event stream is counted as open when the upstream answered with one: a stage that never
  // applies, so it works for answers the forwarder writes itself (no onSend hook runs for those)
  fastify.forwarder.addStage({
    name: 'metrics-open-streams',
    position: 'near-client',
    make (start: ResponseStart): null {
      if (start.isEventStream) {
        (start.request as Counted)[kStreamOpen] = true
        metrics.streamStarted()
      }
      return null
    }
  })
  // refusals are settled too, whichever hook refused. An upgrade that was answered over HTTP (a
  // refused realtime session) is a request like any other; an accepted one is a session, counted
  // by the realtime gauge and its own usage record
  fastify.settle.add('account', 'metrics', function countRequest (request, reply, abandoned) {
    if (abandoned || request.headers.upgrade === undefined || reply.statusCode !== 101) observeEnd(metrics, request, reply, abandoned)
  })
}

export default fp(metricsPlugin, { name: 'gateway-metrics', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-forwarder', 'gateway-settle'] })
