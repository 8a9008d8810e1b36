/**
 * THE ONE PLACE that decides how the benchmarked gateway is configured: its environment, and
 * therefore which parts of the "default production chain" (issue 3: auth with 100 client keys,
 * IP allow/deny check, rate limit set high, access log at info) are on for the numbers.
 *
 * When a plugin of the chain lands (auth, ip-filter, rate-limit), set its `on` to true below and
 * correct its env names if they differ from the guess: nothing else in bench/ changes. The harness
 * already sends `Authorization: Bearer <one of clientKeys()>` on every request, and docs/performance.md
 * lists which parts were on, verified where a probe can tell (see `probeChain` in bench/run.ts).
 */
import { createHash } from 'node:crypto'

export const CLIENT_KEY_COUNT = 100

/** The key the gateway sends upstream; the mock ignores it, but the gateway's secret redactor sees it. */
export const UPSTREAM_KEY = 'sk-bench-upstream-0123456789abcdef'

/** 100 deterministic client keys, shaped like real ones (long, random-looking). */
export function clientKeys (count = CLIENT_KEY_COUNT): string[] {
  const keys: string[] = []
  for (let i = 0; i < count; i++) {
    keys.push(`gwk-${createHash('sha256').update(`bench-client-${i}`).digest('hex').slice(0, 40)}`)
  }
  return keys
}

export interface ChainPart {
  /** what docs/performance.md calls it */
  name: string
  /** false while the plugin is not merged: its env is then not applied (unknown settings would be ignored or refused) */
  on: boolean
  /** why it is off, or how it is set */
  note: string
  env: (keys: readonly string[]) => Record<string, string>
}

/** The production chain, in the gateway's plugin order. */
export const CHAIN: readonly ChainPart[] = [
  {
    name: 'IP allow/deny check',
    on: true,
    note: 'allow 127.0.0.1/32 and ::1, deny 203.0.113.0/24: every request is checked and passes',
    // allow loopback, deny a documentation range: the check runs on every request and lets ours through
    env: () => ({ GATEWAY_IP_ALLOW: '127.0.0.1/32,::1', GATEWAY_IP_DENY: '203.0.113.0/24' })
  },
  {
    name: 'auth: 100 client keys',
    on: true,
    note: '100 keys in GATEWAY_CLIENT_KEYS; every request sends one of them',
    env: (keys) => ({ GATEWAY_CLIENT_KEYS: keys.join(',') })
  },
  {
    name: 'rate limit, set high',
    on: true,
    note: '100,000,000 per minute per key: counted on every request, never refused',
    // high enough that no benchmark ever meets it: we measure the cost of counting, not of refusing
    env: () => ({ GATEWAY_RATE_LIMIT_REQUESTS: '100000000', GATEWAY_RATE_LIMIT_INTERVAL_MS: '60000' })
  },
  {
    name: 'access log at info',
    on: true,
    note: 'one JSON line per request, to a file (as a log shipper would read it)',
    env: () => ({ GATEWAY_LOG_LEVEL: 'info' })
  }
]

/**
 * The gateway's environment for a benchmark against `upstreamUrl`, listening on `port`. Built from an empty
 * environment (plus PATH/HOME), so nothing from the caller's shell changes the numbers.
 */
export function gatewayEnv (upstreamUrl: string, port: number, keys: readonly string[] = clientKeys()): Record<string, string> {
  const env: Record<string, string> = {
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    GATEWAY_UPSTREAM_URL: upstreamUrl,
    // production has an upstream key: the gateway swaps the client's credentials for it
    GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY,
    // scenario 6 holds 1,000 streams open at once; the default (256 sockets per origin) would queue the rest
    GATEWAY_UPSTREAM_CONNECTIONS: '1100',
    // the harness stops the gateway between groups; do not wait 30 s for aborted streams
    GATEWAY_SHUTDOWN_GRACE_MS: '2000'
  }
  for (const part of CHAIN) if (part.on) Object.assign(env, part.env(keys))
  return env
}

/**
 * The same keys as `GATEWAY_CLIENT_KEYS` JSON, each with budgets that never refuse (a USD budget
 * per day and a token budget per minute, far above what a run spends): the budget scenario
 * measures reserving and settling on every request, not refusing.
 */
export function budgetedKeys (keys: readonly string[] = clientKeys()): string {
  return JSON.stringify(keys.map((key, i) => ({ name: `key-${i + 1}`, key, budgets: [{ usd: 1e9, period: 'day' }, { tokens: 1e12, period: 'minute' }] })))
}
