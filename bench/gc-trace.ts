/**
 * What the garbage collector does per request: pipe, Fastify floor and gateway variants, one after
 * another on one mock, each under `--trace-gc-nvp`, warmed and then measured under the same load.
 * For each: bytes allocated per request, the share of the young generation that survives a
 * scavenge, bytes promoted per scavenge, and GC pause per request (main thread).
 *
 *   node --import tsx bench/gc-trace.ts [--stream] [--warm 10] [--seconds 6] [--connections 16]
 *                                      [--variant 'name:KEY=V,…' …] [--floor 'name:FLOOR_RELAY=…' …]
 *                                      [--no-baselines] [--budgets] [--sequence] [--grep RE]
 *                                      [--before DIR] [--repeat N]
 *
 * --warm 0 measures from start-up on. A variant's NODE_ARGS=… are node flags for that gateway
 * (bench/variants.ts), e.g. `NODE_ARGS=--trace-pretenuring-statistics` with `--grep tenure`.
 * --before DIR runs a saved build (a copy of dist/) too; --repeat N starts every gateway N times,
 * since whether a process's young objects survive can be decided by what happened at its start.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { cannon, KeyRing, NON_STREAM_CHAT, STREAM_CHAT } from './load.js'
import { budgetedKeys, clientKeys } from './gateway-env.js'
import { killAll, removeBenchDir, spawnBaseline, spawnMock, type ServerProcess } from './processes.js'
import { parseVariant, spawnGatewayVariant, spawnSavedBuild } from './variants.js'

const { values } = parseArgs({
  options: {
    stream: { type: 'boolean', default: false },
    warm: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '16' },
    variant: { type: 'string', multiple: true, default: [] },
    /** Fastify floor variants, `name:KEY=V,…` (e.g. FLOOR_RELAY=dispatch) */
    floor: { type: 'string', multiple: true, default: [] },
    'no-baselines': { type: 'boolean', default: false },
    /** every gateway variant with budgets on every key (bench/gateway-env.ts `budgetedKeys`) */
    budgets: { type: 'boolean', default: false },
    /** a saved build (a copy of dist/) run as the gateway 'before', as many times as --repeat */
    before: { type: 'string' },
    /** start each gateway (and 'before') this many times: a process's GC mode can be set at start-up */
    repeat: { type: 'string', default: '1' },
    /** each collection's survival, in order (to see when a process changes mode) */
    sequence: { type: 'boolean', default: false },
    /** the gateway's log lines matching this (e.g. V8's --trace-pretenuring-statistics lines) */
    grep: { type: 'string' }
  }
})

interface GcTotals { scavenges: number, markCompacts: number, allocated: number, survived: number, promoted: number, pauseMs: number }

interface Collection { kind: string, allocated: number, promoted: number, copied: number, pauseMs: number }

/** The `--trace-gc-nvp` lines of a log (`pause=… gc=s … allocated=… promoted=… semi_space_copied=…`). */
function collections (text: string): Collection[] {
  return text.split('\n').flatMap((line) => {
    const kind = /\bgc=(\w+)/.exec(line)?.[1]
    if (kind === undefined) return []
    const num = (key: string): number => Number(new RegExp(`\\b${key}=([\\d.]+)`).exec(line)?.[1] ?? 0)
    return [{ kind, allocated: num('allocated'), promoted: num('promoted'), copied: num('semi_space_copied'), pauseMs: num('pause') }]
  })
}

function gcTotals (all: readonly Collection[]): GcTotals {
  const t: GcTotals = { scavenges: 0, markCompacts: 0, allocated: 0, survived: 0, promoted: 0, pauseMs: 0 }
  for (const c of all) {
    if (c.kind === 's') t.scavenges++
    else if (c.kind === 'mc' || c.kind === 'mmc') t.markCompacts++
    t.allocated += c.allocated
    t.survived += c.copied + c.promoted
    t.promoted += c.promoted
    t.pauseMs += c.pauseMs
  }
  return t
}

/** --sequence: each collection in order, `kind:survived %`; --grep RE: the gateway's log lines that match. */
function printLog (name: string, text: string, all: readonly Collection[]): void {
  if (values.sequence) {
    console.error(`${name}: ${all.map(c => `${c.kind}:${(100 * (c.promoted + c.copied) / Math.max(c.allocated, 1)).toFixed(0)}`).join(' ')}`)
  }
  if (values.grep !== undefined) {
    const re = new RegExp(values.grep)
    console.error(`${name}:\n${text.split('\n').filter(l => re.test(l)).join('\n')}`)
  }
}

async function measure (name: string, server: ServerProcess, spec: typeof NON_STREAM_CHAT, keys: KeyRing): Promise<string> {
  const connections = Number(values.connections)
  if (Number(values.warm) > 0) {
    await cannon(server.url, [spec], keys, { connections, durationS: Number(values.warm) })
    server.truncateLog()
  }
  const run = await cannon(server.url, [spec], keys, { connections, durationS: Number(values.seconds) })
  const text = readFileSync(server.logFile, 'utf8')
  const all = collections(text)
  const t = gcTotals(all)
  printLog(name, text, all)
  const n = run.ok
  const kb = (bytes: number): string => (bytes / 1024).toFixed(1)
  return [
    name.padEnd(14),
    String(n).padStart(7),
    kb(t.allocated / n).padStart(8),
    `${(100 * t.survived / Math.max(t.allocated, 1)).toFixed(1)} %`.padStart(8),
    kb(t.promoted / Math.max(t.scavenges, 1)).padStart(10),
    String(t.scavenges).padStart(5),
    String(t.markCompacts).padStart(4),
    (1000 * t.pauseMs / n).toFixed(2).padStart(8)
  ].join(' ')
}

async function main (): Promise<void> {
  const spec = values.stream ? STREAM_CHAT : NON_STREAM_CHAT
  const keys = new KeyRing(clientKeys())
  const trace = ['--trace-gc-nvp']
  const mock = await spawnMock('dist')
  const rows = ['path            requests  KB/req  survived  KB promoted/scavenge  scav  mc  pause µs/req']
  try {
    if (!values['no-baselines']) {
      for (const kind of ['pipe', 'floor'] as const) {
        const server = await spawnBaseline(kind, 'dist', mock.url, trace)
        rows.push(await measure(kind, server, spec, keys))
        await server.stop()
      }
    }
    for (const text of values.floor) {
      const variant = parseVariant(text)
      const server = await spawnBaseline('floor', 'dist', mock.url, trace, variant.env, variant.name)
      rows.push(await measure(variant.name, server, spec, keys))
      await server.stop()
    }
    const repeat = Number(values.repeat)
    const budgets: Record<string, string> = values.budgets ? { GATEWAY_CLIENT_KEYS: budgetedKeys() } : {}
    for (let i = 1; i <= repeat; i++) {
      const suffix = repeat === 1 ? '' : `-${i}`
      if (values.before !== undefined) {
        const server = await spawnSavedBuild(values.before, mock.url, trace, budgets)
        rows.push(await measure(`before${suffix}`, server, spec, keys))
        await server.stop()
      }
      for (const text of values.variant.length > 0 ? values.variant : ['gateway:']) {
        const variant = parseVariant(text)
        Object.assign(variant.env, budgets, { NODE_ARGS: [...trace, variant.env.NODE_ARGS ?? ''].join(' ') })
        const server = await spawnGatewayVariant(variant, mock.url)
        rows.push(await measure(`${variant.name}${suffix}`, server, spec, keys))
        await server.stop()
      }
    }
  } finally {
    await mock.stop()
    killAll()
    removeBenchDir()
  }
  console.log(rows.join('\n'))
}

await main()
