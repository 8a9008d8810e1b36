/**
 * Header copying for the two baselines (bench/bare-pipe.ts and bench/fastify-floor.ts): the
 * least any proxy does, hop-by-hop headers and the body framing dropped, everything else kept.
 */
const HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

export function isHopHeader (name: string): boolean {
  return HOP.has(name)
}

export function copyHeaders (from: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in from) {
    const value = from[name]
    if (value !== undefined && !HOP.has(name)) out[name] = value
  }
  return out
}
