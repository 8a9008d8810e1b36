/**
 * Which part of the gateway costs what: one mock, the bare pipe and several gateways, each with
 * one part of the chain switched off, measured in interleaved rounds in one run (CPU µs per
 * request from /proc, as `npm run bench` does), next to the bare pipe and the Fastify floor
 * (bench/fastify-floor.ts: the pipe as one bare Fastify route). For profiling rounds.
 *
 *   npm run bench:ablate -- [--stream] [--rounds 4] [--seconds 3] [--skip-build] [--trace]
 *                           [--variant 'name:KEY=V,KEY=V' ...] [--profile] [--before DIR] [--peers]
 *
 * --profile: gateways and the Fastify floor under --cpu-prof (bench/out/profiles/ablate-<name>).
 * --trace: each round's figure as it is measured.
 * A variant's NODE_ARGS=… (space-separated) are node flags for that gateway (bench/variants.ts).
 * --variant reply-from (or reply-from-NAME:RF_STAGE=none): the forwarding built on @fastify/reply-from
 * (bench/reply-from.ts) instead of a gateway, for docs/adr/0001-forwarder.md.
 * --before DIR: also run a saved build (a copy of dist/, e.g. made before a change) as 'before'.
 * --peers: also the Go proxies whose binaries BENCH_PEER_AIGC_PROXY / BENCH_PEER_JB_PROXY_LLM name
 * (bench/peers.ts), and a second table: each path's per-round ratio to each peer.
 *
 * The table gives each path's CPU over all rounds and, more robust on a shared machine, the median
 * of its per-round ratios to the pipe measured in the same round.
 *
 * --budgets: the budget scenario instead of the default variants: the full chain with and without
 * budgets on every key (bench/gateway-env.ts `budgetedKeys`), in memory, and, when redis-server is
 * installed, the same two with Redis (a redis-server started here); plus each budget variant's
 * per-round ratio to the same chain without budgets (the issue's target: at most 1.10×).
 *
 * Without --variant: full chain, no usage records, no metrics, log at warn, and all three off.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildDist, cpuMicros, ROOT, killAll, removeBenchDir, spawnBaseline, spawnMock, spawnServer, freePort, type ServerProcess } from './processes.js'
import { cannon, KeyRing, NON_STREAM_CHAT, STREAM_CHAT } from './load.js'
import { budgetedKeys, clientKeys } from './gateway-env.js'
import { parseVariant, spawnGatewayVariant, spawnSavedBuild, type Variant } from './variants.js'
import { choosePeers, peerLines, spawnPeer } from './peers.js'

const { values } = parseArgs({
  options: {
    stream: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
    'skip-build': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    variant: { type: 'string', multiple: true, default: [] },
    /** a saved build (a copy of dist/) to run as the variant 'before', for before/after in one run */
    before: { type: 'string' },
    /** also the Go peers given by BENCH_PEER_* (bench/peers.ts) */
    peers: { type: 'boolean', default: false },
    /** each round's µs/request on stderr as it is measured */
    trace: { type: 'boolean', default: false },
    /** the budget scenario: with and without budgets, memory and Redis */
    budgets: { type: 'boolean', default: false }
  }
})

const DEFAULT_VARIANTS = [
  'full:',
  'no-usage:GATEWAY_USAGE=false',
  'no-metrics:GATEWAY_METRICS=false',
  'log-warn:GATEWAY_LOG_LEVEL=warn',
  'bare-chain:GATEWAY_USAGE=false,GATEWAY_METRICS=false,GATEWAY_LOG_LEVEL=warn'
]

function median (sorted: readonly number[]): number {
  return sorted[Math.floor((sorted.length - 1) / 2)] / 2 + sorted[Math.ceil((sorted.length - 1) / 2)] / 2
}

/** `a`'s per-round µs/request over `b`'s, measured in the same rounds: median (min–max). */
function roundRatios (a: readonly number[], b: readonly number[]): string {
  const ratios = a.map((v, i) => v / b[i]).sort((x, y) => x - y)
  return `${median(ratios).toFixed(2)}× (${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)})`
}

/** The peers given by BENCH_PEER_*; a usage error (none given) ends the run at once, before the build, without a stack. */
function peersOrExit (): ReturnType<typeof choosePeers> {
  try {
    return choosePeers()
  } catch (err) {
    process.stderr.write(`bench:ablate: ${(err as Error).message}\n`)
    process.exit(1)
  }
}

/** The budget scenario's variants, and the pairs whose ratio it reports. */
function budgetVariants (redisUrl: string | null): { variants: Variant[], pairs: Array<[string, string]> } {
  const budgets = { GATEWAY_CLIENT_KEYS: budgetedKeys() }
  const variants: Variant[] = [{ name: 'full', env: {} }, { name: 'budgets-memory', env: budgets }]
  const pairs: Array<[string, string]> = [['budgets-memory', 'full']]
  if (redisUrl !== null) {
    variants.push({ name: 'redis', env: { REDIS_URL: redisUrl } }, { name: 'budgets-redis', env: { REDIS_URL: redisUrl, ...budgets } })
    pairs.push(['budgets-redis', 'redis'])
  }
  return { variants, pairs }
}

/** A redis-server for the budget scenario, or null when none is installed. */
async function spawnRedis (): Promise<ServerProcess | null> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    process.stderr.write('bench:ablate --budgets: redis-server is not installed, the Redis variants are left out\n')
    return null
  }
  const port = await freePort()
  return await spawnServer({ name: 'redis', command: 'redis-server', args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], env: {}, tcpUrl: `http://127.0.0.1:${port}` })
}

async function main (): Promise<void> {
  const peers = values.peers ? peersOrExit() : undefined
  if (!values['skip-build']) buildDist()
  const allKeys = clientKeys()
  const keys = new KeyRing(allKeys)
  const spec = values.stream ? STREAM_CHAT : NON_STREAM_CHAT
  const procs: ServerProcess[] = []
  let pairs: Array<[string, string]> = []
  try {
    let variants = (values.variant.length > 0 ? values.variant : DEFAULT_VARIANTS).map(parseVariant)
    if (values.budgets) {
      const redis = await spawnRedis()
      if (redis !== null) procs.push(redis)
      ;({ variants, pairs } = budgetVariants(redis === null ? null : redis.url.replace('http://', 'redis://')))
    }
    const mock = await spawnMock('dist')
    procs.push(mock)
    const paths: Array<{ name: string, proc: ServerProcess, keys?: KeyRing, peer?: boolean }> = []
    const pipe = await spawnBaseline('pipe', 'dist', mock.url)
    procs.push(pipe)
    paths.push({ name: 'pipe', proc: pipe })
    const floor = await spawnBaseline('floor', 'dist', mock.url, values.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/out/profiles', 'ablate-fastify-floor')}`] : [])
    procs.push(floor)
    paths.push({ name: 'fastify-floor', proc: floor })
    if (values.before !== undefined) {
      const gw = await spawnSavedBuild(values.before, mock.url)
      procs.push(gw)
      paths.push({ name: 'before', proc: gw })
    }
    for (const v of variants) {
      const gw = await spawnGatewayVariant(v, mock.url, values.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/out/profiles', `ablate-${v.name}`)}`] : [])
      procs.push(gw)
      paths.push({ name: v.name, proc: gw })
    }
    for (const choice of peers?.chosen ?? []) {
      const peer = await spawnPeer(choice, mock.url, allKeys)
      procs.push(peer.process)
      paths.push({ name: peer.name, proc: peer.process, keys: peer.keys, peer: true })
    }
    const opts = { connections: Number(values.connections), durationS: Number(values.seconds) }
    for (const p of paths) await cannon(p.proc.url, [spec], p.keys ?? keys, { ...opts, durationS: 2 })
    const totals = new Map(paths.map((p) => [p.name, { cpu: 0, ok: 0, failed: 0, perRound: [] as number[] }]))
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const p of paths) {
        const c0 = cpuMicros(p.proc.pid)
        const r = await cannon(p.proc.url, [spec], p.keys ?? keys, opts)
        const t = totals.get(p.name)!
        const cpu = cpuMicros(p.proc.pid) - c0
        t.cpu += cpu
        t.ok += r.ok
        t.failed += r.non2xx + r.errors + r.timeouts
        t.perRound.push(cpu / Math.max(1, r.ok))
        if (values.trace) process.stderr.write(`round ${round} ${p.name}: ${(cpu / Math.max(1, r.ok)).toFixed(0)} µs, ${r.ok} requests\n`)
      }
    }
    const base = totals.get('pipe')!
    const pipeCpu = base.cpu / base.ok
    process.stdout.write(`\n${values.stream ? 'streaming' : 'non-streaming'} chat, ${values.rounds} rounds × ${values.seconds} s\n\n` +
      '| path | µs/request | × pipe | × pipe, median of rounds (min–max) | failed |\n| --- | ---: | ---: | ---: | ---: |\n')
    for (const [name, t] of totals) {
      const us = t.cpu / Math.max(1, t.ok)
      // each round's ratio against the pipe's in the same round: a neighbour's burst that lands on
      // one round moves one ratio, not the total
      process.stdout.write(`| ${name} | ${us.toFixed(0)} | ${(us / pipeCpu).toFixed(2)}× | ${roundRatios(t.perRound, base.perRound)} | ${t.failed} |\n`)
    }
    if (pairs.length > 0) {
      process.stdout.write('\nBudgets: CPU per request over the same chain without them, median of the per-round ratios (min–max); target ≤ 1.10×\n\n')
      for (const [a, b] of pairs) process.stdout.write(`- ${a} ÷ ${b}: ${roundRatios(totals.get(a)!.perRound, totals.get(b)!.perRound)}\n`)
    }
    const peerPaths = paths.filter((p) => p.peer === true)
    if (peers !== undefined) {
      process.stdout.write(`\n${peerLines(peers.chosen, peers.notes).join('\n')}\n`)
      if (peerPaths.length > 0) {
        process.stdout.write('\nEach path against each peer: median of the per-round ratios of µs/request (min–max)\n\n' +
          `| path | ${peerPaths.map((p) => `× ${p.name}`).join(' | ')} |\n| --- |${' ---: |'.repeat(peerPaths.length)}\n`)
        for (const p of paths) {
          if (p.peer === true) continue
          const cells = peerPaths.map((q) => roundRatios(totals.get(p.name)!.perRound, totals.get(q.name)!.perRound))
          process.stdout.write(`| ${p.name} | ${cells.join(' | ')} |\n`)
        }
      }
    }
  } finally {
    for (const p of procs.reverse()) await p.stop()
    killAll()
    removeBenchDir()
  }
}

await main()
