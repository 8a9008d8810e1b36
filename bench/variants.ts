/**
 * Gateway variants for the experiment scripts (ablate, burst-gap, syscalls, perf-record,
 * gc-trace): `name:KEY=V,KEY=V` on the command line, each started as its own gateway process next
 * to the others on one mock; and a saved build (`--before DIR`) started the same way.
 * `NODE_ARGS=…` (space-separated) are node flags for that gateway (V8 flags, `--trace-gc`).
 * A variant named `reply-from` (or `reply-from-…`) is not the gateway but the same forwarding built
 * on @fastify/reply-from (bench/reply-from.ts), with its own settings (`RF_STAGE=none`).
 */
import { join, resolve } from 'node:path'
import { gatewayEnv } from './gateway-env.js'
import { freePort, scriptArgs, spawnServer, type ServerProcess } from './processes.js'

export interface Variant { name: string, env: Record<string, string> }

export function parseVariant (text: string): Variant {
  const colon = text.indexOf(':')
  const name = colon === -1 ? text : text.slice(0, colon)
  const env: Record<string, string> = {}
  for (const pair of (colon === -1 ? '' : text.slice(colon + 1)).split(',')) {
    const eq = pair.indexOf('=')
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return { name, env }
}

/** The built gateway (`dist/`) with the benchmark's production chain and the variant's settings. */
export async function spawnGatewayVariant (variant: Variant, mockUrl: string, nodeArgs: readonly string[] = []): Promise<ServerProcess> {
  const own = variant.env.NODE_ARGS?.split(' ').filter(Boolean) ?? []
  if (isReplyFrom(variant)) {
    return await spawnServer({
      name: variant.name,
      args: [...nodeArgs, ...own, ...scriptArgs('dist', 'bench/reply-from.ts')],
      env: { ...variant.env, PIPE_UPSTREAM_URL: mockUrl },
      readyUrl: (l) => l['reply-from'] as string | undefined
    })
  }
  const port = await freePort()
  return await spawnServer({
    name: `gw-${variant.name}`,
    args: [...nodeArgs, ...own, ...scriptArgs('dist', 'src/cli.ts')],
    env: { ...gatewayEnv(mockUrl, port), ...variant.env },
    healthUrl: `http://127.0.0.1:${port}`
  })
}

/** A saved build (a copy of `dist/`, made before a change) with the same settings, for before/after in one run. */
export async function spawnSavedBuild (dir: string, mockUrl: string, nodeArgs: readonly string[] = [], env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort()
  return await spawnServer({
    name: 'gw-before',
    args: [...nodeArgs, join(resolve(dir), 'src/cli.js')],
    env: { ...gatewayEnv(mockUrl, port), ...env },
    healthUrl: `http://127.0.0.1:${port}`
  })
}

function isReplyFrom (variant: Variant): boolean {
  return variant.name === 'reply-from' || variant.name.startsWith('reply-from-')
}
