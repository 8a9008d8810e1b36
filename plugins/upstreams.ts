/**
 * The upstreams the gateway forwards to, each with its own keep-alive undici Agent.
 *
 * Upstream TLS is verified: undici verifies by default, and unlike @fastify/reply-from we never
 * turn it off (STYLE.md §3.1). A self-signed upstream is trusted only through `caFile`.
 * Connect timeout lives on the Agent; time-to-first-byte and the idle gap between chunks are
 * separate per-request timeouts (STYLE.md §3.3), so a healthy long stream is never cut.
 */
import fp from 'fastify-plugin'
import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import type { FastifyPluginAsync } from 'fastify'
import { Agent, type Dispatcher } from 'undici'
import type { GatewayConfig } from '../config/schema.js'
import { startMockUpstream } from '../src/mock/upstream.js'

export type Provider = 'openai' | 'anthropic' | 'azure' | 'openai-compatible'

export interface UpstreamTarget {
  name: string
  /** scheme://host[:port] */
  origin: string
  /** path prefix from the configured URL, without trailing slash ('' for none) */
  basePath: string
  provider: Provider
  /** upstream keys; empty → client credentials pass through */
  keys: string[]
  dispatcher: Dispatcher
  firstByteTimeoutMs: number
  idleTimeoutMs: number
}

export interface Upstreams {
  default: UpstreamTarget
  byName: Map<string, UpstreamTarget>
}

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: Upstreams
  }
}

export interface UpstreamsOptions {
  upstream: GatewayConfig['upstream']
}

export function createAgent (opts: { caFile: string, connectTimeoutMs: number, connections: number }): Agent {
  const ca = opts.caFile !== '' ? [...rootCertificates, readFileSync(opts.caFile, 'utf8')] : undefined
  return new Agent({
    connections: opts.connections,
    keepAliveTimeout: 30_000,
    connect: { timeout: opts.connectTimeoutMs, rejectUnauthorized: true, ...(ca !== undefined ? { ca } : {}) }
  })
}

const upstreams: FastifyPluginAsync<UpstreamsOptions> = async (fastify, { upstream }) => {
  let url = upstream.url
  if (url === 'mock') {
    // the embedded default: a gateway that answers without any API key
    const mock = await startMockUpstream({ record: false })
    fastify.addHook('onClose', async () => { await mock.close() })
    fastify.log.warn({ upstream: mock.url }, 'upstream is the embedded mock (demo mode)')
    url = mock.url
  }
  const parsed = new URL(url)
  const agent = createAgent(upstream)
  const target: UpstreamTarget = {
    name: 'default',
    origin: parsed.origin,
    basePath: parsed.pathname.replace(/\/+$/, ''),
    provider: 'openai',
    keys: upstream.key !== '' ? [upstream.key] : [],
    dispatcher: agent,
    firstByteTimeoutMs: upstream.firstByteTimeoutMs,
    idleTimeoutMs: upstream.idleTimeoutMs
  }
  fastify.decorate('upstreams', { default: target, byName: new Map([[target.name, target]]) })
  fastify.addHook('onClose', async () => { await agent.close() })
}

export default fp(upstreams, { name: 'gateway-upstreams', fastify: '5.x' })
