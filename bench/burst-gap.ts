/**
 * CPU per request over the first seconds of a burst that follows a quiet gap: what the idle
 * collection (plugins/idle-memory.ts, `GATEWAY_IDLE_GC_MS`) costs the traffic after it. Several
 * gateway variants take turns: each gets a burst cut into windows, then waits for the others and
 * the gap. V8's garbage-collection trace (`--trace-gc`) in each gateway's log counts the full
 * collections.
 *
 *   node --import tsx bench/burst-gap.ts [--bursts 4] [--windows 4] [--window-s 1.5] [--gap-s 7]
 *        [--variant 'name:KEY=V,…' …]        (default: idle collection after 5 s, and off)
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { cannon, KeyRing, NON_STREAM_CHAT } from './load.js'
import { clientKeys } from './gateway-env.js'
import { buildDist, cpuMicros, killAll, removeBenchDir, spawnMock, type ServerProcess } from './processes.js'
import { parseVariant, spawnGatewayVariant } from './variants.js'

const { values } = parseArgs({
  options: {
    bursts: { type: 'string', default: '4' },
    windows: { type: 'string', default: '4' },
    'window-s': { type: 'string', default: '1.5' },
    'gap-s': { type: 'string', default: '7' },
    variant: { type: 'string', multiple: true, default: ['idle-gc-5s:GATEWAY_IDLE_GC_MS=5000', 'no-idle-gc:GATEWAY_IDLE_GC_MS=0'] },
    'skip-build': { type: 'boolean', default: false }
  }
})

function fullCollections (logFile: string): number {
  return (readFileSync(logFile, 'utf8').match(/Mark-Compact/g) ?? []).length
}

async function main (): Promise<void> {
  if (!values['skip-build']) buildDist()
  const keys = new KeyRing(clientKeys())
  const procs: ServerProcess[] = []
  try {
    const mock = await spawnMock('dist')
    procs.push(mock)
    const gateways: Array<{ name: string, proc: ServerProcess }> = []
    for (const v of values.variant.map(parseVariant)) {
      const proc = await spawnGatewayVariant(v, mock.url, ['--trace-gc'])
      procs.push(proc)
      gateways.push({ name: v.name, proc })
    }
    process.stdout.write(`| burst | gateway | µs/request per ${values['window-s']} s window | full GCs in the burst / in the gap before it |\n| --- | --- | --- | --- |\n`)
    const gcSeen = new Map(gateways.map((g) => [g.name, fullCollections(g.proc.logFile)]))
    for (let burst = 0; burst < Number(values.bursts); burst++) {
      for (const g of gateways) {
        const before = fullCollections(g.proc.logFile)
        const windows: string[] = []
        let c0 = cpuMicros(g.proc.pid)
        for (let w = 0; w < Number(values.windows); w++) {
          const r = await cannon(g.proc.url, [NON_STREAM_CHAT], keys, { connections: 16, durationS: Number(values['window-s']) })
          const c1 = cpuMicros(g.proc.pid)
          windows.push(((c1 - c0) / Math.max(1, r.ok)).toFixed(0))
          c0 = c1
        }
        const after = fullCollections(g.proc.logFile)
        process.stdout.write(`| ${burst} | ${g.name} | ${windows.join(' → ')} | ${after - before} / ${before - (gcSeen.get(g.name) ?? 0)} |\n`)
        gcSeen.set(g.name, after)
      }
      await sleep(Number(values['gap-s']) * 1000)
    }
  } finally {
    for (const p of procs.reverse()) await p.stop()
    killAll()
    removeBenchDir()
  }
}

await main()
