/**
 * `GET /v1/realtime`: OpenAI's Realtime API relayed over WebSockets.
 *
 * The upgrade request goes through every onRequest hook of its scopes first (IP filter, auth, rate limit):
 * a hook that answers refuses with that HTTP status and the socket is never accepted. Then the
 * client is accepted, the upstream socket is dialled and messages flow both ways
 * (src/realtime/relay.ts). One `realtime session closed` line is logged per session and its
 * summary counted in the metrics and the usage record.
 */
import { readFileSync } from 'node:fs'
import type { Agent } from 'node:http'
import { rootCertificates } from 'node:tls'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { GatewayConfig } from '../../config/schema.js'
import type { ClientIdentity } from '../../src/auth/client.js'
import type { UpstreamTarget } from '../../src/upstream/target.js'
import { UpgradeRequiredError } from '../../src/errors.js'
import { upstreamKeyFor } from '../../src/routing/credentials.js'
import { requireTarget } from '../../src/routing/require-target.js'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { keyFromProtocols, offeredProtocols, upstreamProtocols } from '../../src/realtime/protocols.js'
import { thrownSummary } from '../../src/lib/guarded.js'
import { RealtimeRelay, relayFailureEvent, type RelayResult } from '../../src/realtime/relay.js'
import type { RealtimeSessionSummary } from '../../src/realtime/summary.js'
import { dialUpstream, PinnedProxyAgent, realtimeHeaders, realtimeUrl } from '../../src/realtime/upstream.js'
import { trackRelay } from '../../src/realtime/websocket-options.js'

export interface RealtimeRouteOptions {
  realtime: GatewayConfig['realtime']
  /**
   * Outbound proxy for the upstream dial: returns the http(s) Agent to dial `target` through,
   * or undefined to connect directly. Default: the target's own proxy (the same settings as its
   * HTTP requests), tunnelled with CONNECT.
   */
  dialAgent?: (target: UpstreamTarget) => Agent | undefined
}

/**
 * One CONNECT-tunnelling agent per proxy URL, shared by every session through it; for a pinned
 * host (a checked X-Target-Host, `target.lookup` set) one that tunnels to the checked address.
 */
function proxyAgents (): (target: UpstreamTarget) => Agent | undefined {
  const agents = new Map<string, Agent>()
  return (target) => {
    if (target.proxyUrl === null) return undefined
    const key = target.lookup !== null ? `pinned ${target.proxyUrl}` : target.proxyUrl
    let agent = agents.get(key)
    if (agent === undefined) {
      agent = target.lookup !== null ? new PinnedProxyAgent(target.proxyUrl, target.lookup) : new HttpsProxyAgent(target.proxyUrl, { keepAlive: false })
      agents.set(key, agent)
    }
    return agent
  }
}

/** Root store plus the target's extra CA, read once per file. */
function caStore (): (target: UpstreamTarget) => string[] | undefined {
  const byFile = new Map<string, string[]>()
  return (target) => {
    if (target.caFile === '') return undefined
    let ca = byFile.get(target.caFile)
    if (ca === undefined) {
      ca = [...rootCertificates, readFileSync(target.caFile, 'utf8')]
      byFile.set(target.caFile, ca)
    }
    return ca
  }
}

function modelOf (url: string): string | null {
  const query = url.indexOf('?')
  return query === -1 ? null : new URLSearchParams(url.slice(query + 1)).get('model')
}

/**
 * No upstream key applies and the caller's own credentials are its upstream credentials: no
 * client authentication at all, or an unknown caller that auth let through (`passThrough`).
 */
function ownCredentials (request: FastifyRequest, key: string | null): boolean {
  if (key !== null) return false
  const client = request.client as (ClientIdentity & { passThrough?: boolean }) | null
  return client === null || client.passThrough === true
}

function report (request: FastifyRequest, summary: RealtimeSessionSummary, account: (summary: RealtimeSessionSummary) => void): void {
  const { usage, requestId: _id, ...rest } = summary
  request.log.info({
    ...rest,
    durationMs: Math.round(summary.durationMs),
    tokens: usage === null ? undefined : { input: usage.inputTokens, output: usage.outputTokens, total: usage.totalTokens, responses: usage.responses }
  }, 'realtime session closed')
  try {
    account(summary)
  } catch (err) {
    request.log.error({ err }, 'realtime session accounting failed')
  }
}

const realtimeRoutes: FastifyPluginAsync<RealtimeRouteOptions> = async (fastify, opts) => {
  const { realtime } = opts
  const dialAgent = opts.dialAgent ?? proxyAgents()
  const caFor = caStore()

  /**
   * Metrics and usage records for a session: the gauge counts open sessions, and one usage record
   * per session carries the relay's token totals (the sum of every `response.done`, the only
   * usage a realtime session reports, every token category of it, so the record can be priced).
   */
  function accountSession (request: FastifyRequest): (summary: RealtimeSessionSummary) => void {
    fastify.metrics?.realtimeSessionOpened()
    const usage = fastify.usageRecorder?.realtimeSession(request) ?? null
    return (summary) => {
      fastify.metrics?.realtimeSessionClosed()
      if (usage === null) return
      if (summary.usage !== null) usage.add(summary.usage.counts)
      usage.end({ status: 101, errorClass: request.outcome.errorClass })
    }
  }

  /**
   * The upgraded socket's handler: a throw while setting the session up ends this one session
   * (an `error` event, a 1011 close, one log line), as a throw in the relay's listeners does.
   */
  function relayRealtime (socket: WebSocket, request: FastifyRequest): void {
    try {
      startRelay(socket, request)
    } catch (err) {
      request.log.error({ cause: thrownSummary(err) }, 'realtime relay failed')
      if (socket.readyState === socket.OPEN) {
        socket.send(relayFailureEvent())
        socket.close(1011, 'gateway error')
      }
    }
  }

  function startRelay (socket: WebSocket, request: FastifyRequest): void {
    const plan = request.upstream
    const account = accountSession(request)
    const target = plan.target as UpstreamTarget // checked by requireTarget before the upgrade
    const offered = offeredProtocols(request.headers['sec-websocket-protocol'])
    const key = upstreamKeyFor(request, target)
    const creds = { key, passThrough: ownCredentials(request, key), protocolKey: keyFromProtocols(offered), client: request.client }
    const relay = new RealtimeRelay(socket, {
      limits: realtime,
      log: request.log,
      budget: fastify.hasDecorator('budgets') ? fastify.budgets?.realtimeCharge(request) : null,
      dial: () => dialUpstream({
        url: realtimeUrl(target, plan.path),
        // the key sub-protocol is the client's gateway credential: never offered upstream
        protocols: upstreamProtocols(offered, socket.protocol),
        headers: realtimeHeaders(request.headers, target, creds, request.id),
        maxPayload: realtime.maxPayload,
        ca: caFor(target),
        agent: dialAgent(target),
        lookup: target.lookup ?? undefined
      }),
      onDone: (result: RelayResult) => report(request, {
        requestId: request.id,
        client: request.client?.name ?? null,
        target: target.name,
        model: modelOf(request.url),
        protocol: socket.protocol,
        durationMs: relay.durationMs,
        ...result
      }, account)
    })
    trackRelay(socket, relay)
    relay.start()
  }

  // An upgrade refused by a hook registered before @fastify/websocket (so its marker never ran)
  // would leave the socket open: the HTTP parser is gone, nothing else will ever close it.
  fastify.addHook('onResponse', async function closeRefusedUpgrade (request) {
    const socket = request.raw.socket
    if (request.raw.headers.upgrade !== undefined && socket !== null && !socket.destroyed) socket.destroy()
  })

  fastify.route({
    method: 'GET',
    url: '/v1/realtime',
    // the session's model, for the allowed-models check (src/auth/allowed-models.ts) and the logs
    preValidation: async function realtimeModel (request) { request.upstream.model = modelOf(request.url) },
    // no target, or one this key may not use: refused over HTTP, before the upgrade
    preHandler: async function realtimeTarget (request) { requireTarget(request) },
    // a plain GET (no Upgrade header) is told what the endpoint wants
    handler: async function realtimeWithoutUpgrade () {
      throw new UpgradeRequiredError()
    },
    wsHandler: relayRealtime
  })
}

export default realtimeRoutes
