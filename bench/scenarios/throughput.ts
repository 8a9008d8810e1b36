/**
 * Scenarios 1–4 and 8: requests per second and CPU time per request (1–3), added latency at
 * concurrency 1 (4), and a bounded soak (8). Paths are measured in interleaved rounds, so that a
 * neighbour's burst on this shared machine lands on all of them rather than on one.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchPath, Group, RunContext, Scenario } from '../context.js'
import { cannon, type KeyRing, MODELS, NON_STREAM_CHAT, percentile, sequentialLatencies, sortedCopy, STREAM_CHAT, type RequestSpec } from '../load.js'
import { cpuMicros, MiB, rssBytes, sampleRss } from '../processes.js'
import { fmt, ratio, type Row } from '../report.js'

const CPU_TARGET = 1.3
const LATENCY_TARGET = 1.3
/** against a peer (a Go proxy, bench/peers.ts): the gateway costs no more than it */
const PEER_TARGET = 1.0
const SOAK_RSS_TARGET = 1.10
/**
 * seconds without load before RSS is read "after" the soak: past the gateway's default idle
 * collection (`server.idleGcMs`, 60 s; plugins/idle-memory.ts), which is what gives memory back
 */
const SOAK_QUIET_S = 65
/** an earlier reading, before that collection: what V8 gives back by itself */
const SOAK_EARLY_S = 10

interface Totals { ok: number, failed: number, seconds: number, cpuUs: number }

/** One path a throughput round drives: the harness's own paths, or a peer with the keys it accepts. */
interface Driven { name: string, url: string, pid?: number, keys: KeyRing }

type Measured = Record<'direct' | 'pipe' | 'gateway' | 'floor', Totals> & { peers: Map<string, Totals>, logLinesPerRequest: number }

async function measureThroughput (group: Group, spec: RequestSpec, ctx: RunContext, withPeers: boolean): Promise<Measured> {
  const { sizes, keys } = ctx
  const own: BenchPath[] = [group.direct, group.pipe, group.floor, group.gateway]
  const peers = withPeers ? group.peers : []
  const paths: Driven[] = [...own.map((p) => ({ ...p, keys })), ...peers]
  const totals = new Map(paths.map((p) => [p.name, zero()]))
  // JIT warm-up, not counted
  for (const path of paths) await cannon(path.url, [spec], path.keys, { connections: sizes.connections, durationS: sizes.warmS })
  group.gatewayProcess.truncateLog()
  for (let round = 0; round < sizes.rounds; round++) {
    for (const path of paths) {
      const cpu0 = path.pid !== undefined ? cpuMicros(path.pid) : 0
      const r = await cannon(path.url, [spec], path.keys, { connections: sizes.connections, durationS: sizes.measureS })
      const cpu1 = path.pid !== undefined ? cpuMicros(path.pid) : 0
      const t = totals.get(path.name)!
      t.ok += r.ok
      t.failed += r.non2xx + r.errors + r.timeouts
      t.seconds += r.seconds
      t.cpuUs += cpu1 - cpu0
    }
  }
  // the access log is written asynchronously: give it a moment to land before counting
  await sleep(300)
  const of = (name: string): Totals => totals.get(name)!
  const gateway = of('gateway')
  const logLinesPerRequest = group.gatewayProcess.logLines() / Math.max(1, gateway.ok + gateway.failed)
  return {
    direct: of('direct'),
    pipe: of('pipe'),
    floor: of('floor'),
    gateway,
    peers: new Map(peers.map((p) => [p.name, of(p.name)])),
    logLinesPerRequest
  }
}

function zero (): Totals {
  return { ok: 0, failed: 0, seconds: 0, cpuUs: 0 }
}

const rps = (x: Totals): number => x.ok / x.seconds
const cpu = (x: Totals): number => x.cpuUs / Math.max(1, x.ok)

/**
 * Rows comparing the gateway with each peer (the peer's figure in the pipe column). `targetPeer`:
 * the peer the issue sets a CPU target against in this scenario (gateway ≤ 1.0× its CPU per request).
 */
function peerRows (name: string, t: Measured, targetPeer: string | undefined): Row[] {
  const rows: Row[] = []
  for (const [peer, p] of t.peers) {
    const cpuRatio = cpu(t.gateway) / cpu(p)
    rows.push(
      { scenario: name, measure: `vs ${peer}: requests/s (peer in the pipe column)`, pipe: fmt(rps(p), 0), gateway: fmt(rps(t.gateway), 0), ratio: ratio(rps(t.gateway), rps(p)) },
      {
        scenario: name,
        measure: `vs ${peer}: proxy CPU µs/request (peer in the pipe column)`,
        pipe: fmt(cpu(p), 0),
        gateway: fmt(cpu(t.gateway), 0),
        ratio: ratio(cpu(t.gateway), cpu(p)),
        ...(peer === targetPeer ? { target: `≤ ${PEER_TARGET.toFixed(1)}× ${peer}`, pass: cpuRatio <= PEER_TARGET } : {})
      },
      { scenario: name, measure: `vs ${peer}: failed requests (peer in the pipe column)`, pipe: String(p.failed), gateway: String(t.gateway.failed) }
    )
  }
  return rows
}

interface PeerUse {
  /** the peers run in this scenario too */
  withPeers: boolean
  /** the one the CPU target is against */
  targetPeer?: string
}

function throughputScenario (id: number, title: string, spec: RequestSpec, cpuTarget: boolean, note?: string, peerUse: PeerUse = { withPeers: false }): Scenario {
  return {
    id,
    title,
    mock: 'process',
    async run (group, ctx) {
      const t = await measureThroughput(group, spec, ctx, peerUse.withPeers)
      const cpuRatio = cpu(t.gateway) / cpu(t.pipe)
      const name = `${id}. ${title}`
      const rows: Row[] = [
        { scenario: name, measure: 'requests/s', direct: fmt(rps(t.direct), 0), pipe: fmt(rps(t.pipe), 0), gateway: fmt(rps(t.gateway), 0), ratio: ratio(rps(t.gateway), rps(t.pipe)) },
        {
          scenario: name,
          measure: 'proxy CPU µs/request',
          pipe: fmt(cpu(t.pipe), 0),
          gateway: fmt(cpu(t.gateway), 0),
          ratio: ratio(cpu(t.gateway), cpu(t.pipe)),
          ...(cpuTarget ? { target: `≤ ${CPU_TARGET}× pipe`, pass: cpuRatio <= CPU_TARGET } : { target: note })
        },
        {
          scenario: name,
          measure: 'failed requests',
          direct: String(t.direct.failed),
          pipe: String(t.pipe.failed),
          gateway: String(t.gateway.failed),
          target: '0',
          pass: t.gateway.failed === 0
        },
        {
          // the same work as the pipe, as one bare Fastify route: what Fastify itself costs
          scenario: name,
          measure: 'CPU µs/request vs the Fastify floor (floor in the pipe column)',
          pipe: fmt(cpu(t.floor), 0),
          gateway: fmt(cpu(t.gateway), 0),
          ratio: ratio(cpu(t.gateway), cpu(t.floor))
        },
        { scenario: name, measure: 'gateway log lines per request', gateway: fmt(t.logLinesPerRequest) },
        ...peerRows(name, t, peerUse.targetPeer)
      ]
      return rows
    }
  }
}

// issue 19's targets: non-streaming against jb-proxy-llm, streaming against aigc-proxy
export const nonStreamChat = throughputScenario(1, 'non-streaming chat, small body', NON_STREAM_CHAT, true, undefined, { withPeers: true, targetPeer: 'jb-proxy-llm' })
export const streamChat = throughputScenario(2, 'streaming chat, 20 chunks', STREAM_CHAT, true, undefined, { withPeers: true, targetPeer: 'aigc-proxy' })
export const models = throughputScenario(3, '/v1/models', MODELS, false, 'none: a models-cache hit, no upstream request')

/** Scenario 4: p50/p99 at concurrency 1, sequential requests, interleaved rounds per path. */
export const latency: Scenario = {
  id: 4,
  title: 'added latency at concurrency 1',
  mock: 'process',
  async run (group, ctx) {
    const { sizes, keys } = ctx
    const paths: Driven[] = [...[group.direct, group.pipe, group.gateway].map((p) => ({ ...p, keys })), ...group.peers]
    const samples: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p.name, []]))
    // a peer's failures are counted, not fatal: a Go client may reuse an upstream connection the
    // mock is closing (its keep-alive ends after 5 s idle, Go's after 90 s) and answer 502
    const peerFailed = new Map(group.peers.map((p) => [p.name, { count: 0 }]))
    // the same JIT warm-up as the throughput scenarios (this one may run alone), then the sequential path
    for (const path of paths) await cannon(path.url, [NON_STREAM_CHAT], path.keys, { connections: sizes.connections, durationS: sizes.warmS })
    for (const path of paths) await sequentialLatencies(path.url, NON_STREAM_CHAT, path.keys, Math.min(200, sizes.latencyRequests), peerFailed.get(path.name))
    const perRound = Math.ceil(sizes.latencyRequests / sizes.latencyRounds)
    for (let round = 0; round < sizes.latencyRounds; round++) {
      for (const path of paths) samples[path.name].push(...await sequentialLatencies(path.url, NON_STREAM_CHAT, path.keys, perRound, peerFailed.get(path.name)))
    }
    const p = (name: string, q: number): number => percentile(sortedCopy(samples[name]), q)
    const added = (name: string, q: number): number => p(name, q) - p('direct', q)
    const name = `4. ${this.title}`
    const addedRatio = added('gateway', 50) / added('pipe', 50)
    return [
      { scenario: name, measure: 'p50 ms', direct: fmt(p('direct', 50), 3), pipe: fmt(p('pipe', 50), 3), gateway: fmt(p('gateway', 50), 3) },
      { scenario: name, measure: 'p99 ms', direct: fmt(p('direct', 99), 3), pipe: fmt(p('pipe', 99), 3), gateway: fmt(p('gateway', 99), 3) },
      {
        scenario: name,
        measure: 'added p50 ms (minus direct)',
        pipe: fmt(added('pipe', 50), 3),
        gateway: fmt(added('gateway', 50), 3),
        ratio: ratio(added('gateway', 50), added('pipe', 50)),
        target: `≤ ${LATENCY_TARGET}× pipe`,
        pass: addedRatio <= LATENCY_TARGET
      },
      {
        scenario: name,
        measure: 'added p99 ms (minus direct)',
        pipe: fmt(added('pipe', 99), 3),
        gateway: fmt(added('gateway', 99), 3),
        ratio: ratio(added('gateway', 99), added('pipe', 99))
      },
      { scenario: name, measure: 'requests per path', direct: String(samples.direct.length), pipe: String(samples.pipe.length), gateway: String(samples.gateway.length) },
      // issue 19: the gateway adds no more than either Go proxy
      ...group.peers.flatMap((peer): Row[] => [
        {
          scenario: name,
          measure: `vs ${peer.name}: added p50 ms (peer in the pipe column)`,
          pipe: fmt(added(peer.name, 50), 3),
          gateway: fmt(added('gateway', 50), 3),
          ratio: ratio(added('gateway', 50), added(peer.name, 50)),
          target: `≤ ${PEER_TARGET.toFixed(1)}× ${peer.name}`,
          pass: added('gateway', 50) <= added(peer.name, 50) * PEER_TARGET
        },
        { scenario: name, measure: `vs ${peer.name}: added p99 ms (peer in the pipe column)`, pipe: fmt(added(peer.name, 99), 3), gateway: fmt(added('gateway', 99), 3), ratio: ratio(added('gateway', 99), added(peer.name, 99)) },
        { scenario: name, measure: `vs ${peer.name}: requests / failed (peer in the pipe column)`, pipe: `${samples[peer.name].length} / ${peerFailed.get(peer.name)?.count ?? 0}`, gateway: `${samples.gateway.length} / 0` }
      ])
    ]
  }
}

/**
 * Scenario 8: a long run of mixed chat requests (non-streaming and streaming, alternating on
 * every connection), bounded in count and in time. RSS is read when warm (after a warm-up and a
 * pause), sampled throughout, and read again after a pause at the end.
 */
export const soak: Scenario = {
  id: 8,
  title: 'bounded soak',
  mock: 'process',
  async run (group, ctx) {
    const { sizes, keys, log } = ctx
    const pid = group.gateway.pid ?? 0
    const specs = [NON_STREAM_CHAT, STREAM_CHAT]
    const warmAmount = Math.max(sizes.connections * 2, Math.round(sizes.soakRequests * 0.05))
    await cannon(group.gateway.url, specs, keys, { connections: sizes.connections, amount: warmAmount, maxSeconds: sizes.soakMaxSeconds / 4 })
    await sleep(sizes.quick ? 500 : 3000)
    const warm = rssBytes(pid)
    const sampler = sampleRss(pid, 500)
    log(`  soak: ${sizes.soakRequests} requests, at most ${sizes.soakMaxSeconds} s`)
    const r = await cannon(group.gateway.url, specs, keys, { connections: sizes.connections, amount: sizes.soakRequests, maxSeconds: sizes.soakMaxSeconds })
    const { peak, samples } = sampler.stop()
    group.gatewayProcess.truncateLog()
    // V8 hands memory back some seconds after allocation stops (its memory reducer), not at once
    const quiet: number[] = []
    for (let s = 0; s < (sizes.quick ? 1 : SOAK_QUIET_S); s++) {
      await sleep(1000)
      quiet.push(rssBytes(pid))
    }
    log(`  soak: RSS during the quiet period, MiB: ${quiet.map((b) => (b / MiB).toFixed(0)).join(' ')}`)
    const after = quiet[quiet.length - 1]
    const early = quiet[Math.min(SOAK_EARLY_S, quiet.length) - 1]
    const median = percentile(sortedCopy(samples), 50)
    // a leak grows with the request count; garbage V8 has not collected yet does not
    const half = Math.floor(samples.length / 2)
    const firstHalf = percentile(sortedCopy(samples.slice(0, half)), 50)
    const secondHalf = percentile(sortedCopy(samples.slice(half)), 50)
    const name = `8. ${this.title}`
    const failed = r.non2xx + r.errors + r.timeouts
    return [
      { scenario: name, measure: 'requests done (of asked) in s', gateway: `${fmt(r.ok + failed, 0)} (of ${fmt(sizes.soakRequests, 0)}) in ${fmt(r.seconds, 0)}` },
      { scenario: name, measure: 'failed requests', gateway: String(failed), target: '0', pass: failed === 0 },
      { scenario: name, measure: 'RSS warm MiB', gateway: fmt(warm / MiB, 1) },
      { scenario: name, measure: 'RSS during MiB (median / peak)', gateway: `${fmt(median / MiB, 1)} / ${fmt(peak / MiB, 1)}` },
      { scenario: name, measure: 'RSS median, first half → second half MiB', gateway: `${fmt(firstHalf / MiB, 1)} → ${fmt(secondHalf / MiB, 1)}` },
      { scenario: name, measure: `RSS after ${SOAK_EARLY_S} s quiet, MiB`, gateway: `${fmt(early / MiB, 1)} (${fmt((early / warm - 1) * 100, 1)} %)` },
      {
        scenario: name,
        measure: `RSS after ${sizes.quick ? 1 : SOAK_QUIET_S} s quiet, MiB`,
        gateway: `${fmt(after / MiB, 1)} (${fmt((after / warm - 1) * 100, 1)} %)`,
        target: `≤ warm + ${Math.round((SOAK_RSS_TARGET - 1) * 100)} %`,
        pass: after <= warm * SOAK_RSS_TARGET
      }
    ]
  }
}
