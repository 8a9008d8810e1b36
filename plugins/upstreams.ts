/**
 * The upstreams the gateway forwards to: the `default` target (the `upstream` section) and every
 * named target (`targets`), each with its provider, key pool, extra headers, path mapping and its
 * own keep-alive undici dispatcher — direct, or through its outbound proxy.
 *
 * Upstream TLS is verified: undici verifies by default, and unlike @fastify/reply-from we never
 * turn it off (STYLE.md §3.1), not even through a proxy. A self-signed upstream is trusted only
 * through `caFile`. Connect timeout lives on the dispatcher; time-to-first-byte and the idle gap
 * between chunks are separate per-request timeouts (STYLE.md §3.3), so a healthy long stream is
 * never cut.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { Agent, Dispatcher } from 'undici'
import type { GatewayConfig } from '../config/schema.js'
import { inferProvider, normalizeKeys, type TargetConfig } from '../config/sections/targets.js'
import { KeyPool } from '../src/routing/key-pool.js'
import { createDispatcher, resolveProxy, type OutboundSettings } from '../src/routing/outbound.js'
import { compileRewrites } from '../src/routing/paths.js'
import { pinnedLookup } from '../src/routing/target-host.js'
import type { SecretFilter } from '../src/lib/secret-filter.js'
import type { Provider, UpstreamTarget, Upstreams } from '../src/upstream/target.js'

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: Upstreams
  }
}

export interface UpstreamsOptions {
  upstream: GatewayConfig['upstream']
  targets: GatewayConfig['targets']
  outbound: OutboundSettings
  /** the configured secrets (config/secrets.ts), filtered out of every upstream answer */
  secrets: SecretFilter | null
}

/** The outbound proxy for a target's upstream connections, for the realtime relay's WebSocket dial. */
export function proxyUrlFor (target: UpstreamTarget): string | null {
  return target.proxyUrl
}

/** Kept for callers that want a plain verified Agent (no proxy). */
export function createAgent (opts: { caFile: string, connectTimeoutMs: number, connections: number }): Agent {
  return createDispatcher({ ...opts, proxyUrl: null }) as Agent
}

/** per-host pinned tunnels kept open for X-Target-Host hosts reached through a proxy */
const PINNED_TUNNELS = 64

/** Anthropic's API refuses requests without a version; clients that omit it get the stable one. */
const PROVIDER_DEFAULT_HEADERS: Partial<Record<Provider, Record<string, string>>> = {
  anthropic: { 'anthropic-version': '2023-06-01' }
}

type TargetSettings = Omit<TargetConfig, 'url'> & Required<Pick<TargetConfig, 'caFile' | 'connectTimeoutMs' | 'firstByteTimeoutMs' | 'idleTimeoutMs' | 'connections'>>

function lowerCaseKeys (record: Record<string, string>): Record<string, string> | null {
  const entries = Object.entries(record)
  return entries.length === 0 ? null : Object.fromEntries(entries.map(([k, v]) => [k.toLowerCase(), v]))
}

function buildTarget (name: string, url: string, s: TargetSettings, outbound: OutboundSettings, secrets: SecretFilter | null): UpstreamTarget {
  const parsed = new URL(url)
  const provider = (s.provider === 'auto' ? inferProvider(url) : s.provider)
  const keys = normalizeKeys(s.keys, name)
  const proxyUrl = resolveProxy(url, s.proxy, outbound)
  return {
    name,
    origin: parsed.origin,
    authority: parsed.host.toLowerCase(),
    basePath: parsed.pathname.replace(/\/+$/, ''),
    provider,
    dialects: s.dialects,
    keys: keys.map(k => k.key),
    pool: keys.length > 0 ? new KeyPool(keys, s.keyCooldownMs) : null,
    headers: lowerCaseKeys(s.headers),
    defaultHeaders: PROVIDER_DEFAULT_HEADERS[provider] ?? null,
    rewrites: compileRewrites(s.pathRewrites),
    azure: provider === 'azure' ? { apiVersion: s.azure.apiVersion, deployments: new Map(Object.entries(s.azure.deployments)) } : null,
    hostPrefixes: s.hostPrefixes,
    dispatcher: createDispatcher({ caFile: s.caFile, connectTimeoutMs: s.connectTimeoutMs, connections: s.connections, proxyUrl }),
    proxyUrl,
    lookup: null,
    caFile: s.caFile,
    firstByteTimeoutMs: s.firstByteTimeoutMs,
    idleTimeoutMs: s.idleTimeoutMs,
    secrets
  }
}

const upstreams: FastifyPluginAsync<UpstreamsOptions> = async (fastify, { upstream, targets, outbound, secrets }) => {
  let mockUrl: string | null = null
  async function resolveUrl (url: string): Promise<string> {
    if (url !== 'mock') return url
    if (mockUrl === null) {
      // the embedded default: a gateway that answers without any API key. Loaded only when asked:
      // the mock is a development tool, not part of the gateway's own code
      const { startMockUpstream } = await import('../mock/upstream.js')
      const mock = await startMockUpstream({ record: false })
      fastify.addHook('onClose', async () => { await mock.close() })
      fastify.log.warn({ upstream: mock.url }, 'upstream is the embedded mock (demo mode)')
      mockUrl = mock.url
    }
    return mockUrl
  }

  const byName = new Map<string, UpstreamTarget>()
  byName.set('default', buildTarget('default', await resolveUrl(upstream.url), upstream, outbound, secrets))
  for (const [name, t] of Object.entries(targets)) {
    const settings = {
      ...t,
      caFile: t.caFile ?? upstream.caFile,
      connectTimeoutMs: t.connectTimeoutMs ?? upstream.connectTimeoutMs,
      firstByteTimeoutMs: t.firstByteTimeoutMs ?? upstream.firstByteTimeoutMs,
      idleTimeoutMs: t.idleTimeoutMs ?? upstream.idleTimeoutMs,
      connections: t.connections ?? upstream.connections
    }
    byName.set(name, buildTarget(name, await resolveUrl(t.url), settings, outbound, secrets))
  }
  for (const t of byName.values()) {
    if (t.proxyUrl !== null) fastify.log.info({ upstream: t.name }, 'upstream reached through an outbound proxy')
  }

  // X-Target-Host hosts share the direct and the pinned dispatcher, created on first use, and one
  // pinned lookup. Through a proxy a checked host is pinned by a tunnel to its checked address,
  // under its own name for TLS: one dispatcher per such host, the least recently used closed
  // (in-flight requests finish first) beyond PINNED_TUNNELS.
  const adHoc = new Map<string, Dispatcher>()
  const tunnels = new LRUCache<string, Dispatcher>({ max: PINNED_TUNNELS, dispose: (d) => { d.close().catch(() => {}) } })
  const pinned = pinnedLookup()
  function adHocDispatcher (origin: string, checked: boolean): { dispatcher: Dispatcher, proxyUrl: string | null } {
    const proxyUrl = resolveProxy(origin, '', outbound)
    const hostname = new URL(origin).hostname
    const tunnelled = proxyUrl !== null && checked
    const kind = tunnelled ? `${proxyUrl} ${hostname}` : proxyUrl !== null ? `proxy ${proxyUrl}` : checked ? 'pinned' : 'direct'
    const cache = tunnelled ? tunnels : adHoc
    let dispatcher = cache.get(kind)
    if (dispatcher === undefined) {
      dispatcher = createDispatcher({
        caFile: upstream.caFile,
        connectTimeoutMs: upstream.connectTimeoutMs,
        connections: upstream.connections,
        proxyUrl,
        ...(checked ? { lookup: pinned } : {}),
        ...(tunnelled ? { pinnedHost: hostname } : {})
      })
      cache.set(kind, dispatcher)
    }
    return { dispatcher, proxyUrl }
  }

  function forHost (authority: string, checked: boolean): UpstreamTarget {
    const origin = `https://${authority}`
    const provider = inferProvider(origin)
    const { dispatcher, proxyUrl } = adHocDispatcher(origin, checked)
    return {
      name: 'x-target-host',
      origin,
      authority,
      basePath: '',
      provider,
      // a host named per request: its dialects are unknown, so nothing is translated
      dialects: ['chat', 'responses', 'messages'],
      keys: [],
      pool: null,
      headers: null,
      defaultHeaders: PROVIDER_DEFAULT_HEADERS[provider] ?? null,
      rewrites: null,
      azure: null,
      hostPrefixes: [],
      dispatcher,
      proxyUrl,
      // directly, or through a proxy with a tunnel to the checked address (routes/v1/realtime.ts)
      lookup: checked ? pinned : null,
      caFile: upstream.caFile,
      firstByteTimeoutMs: upstream.firstByteTimeoutMs,
      idleTimeoutMs: upstream.idleTimeoutMs,
      // answers from every host are checked alike
      secrets
    }
  }

  fastify.decorate('upstreams', { default: byName.get('default') as UpstreamTarget, byName, forHost })
  fastify.addHook('onClose', async () => {
    await Promise.all([...byName.values()].map(t => t.dispatcher.close()))
    await Promise.all([...adHoc.values(), ...tunnels.values()].map(d => d.close()))
  })
}

export default fp(upstreams, { name: 'gateway-upstreams', fastify: '5.x' })
