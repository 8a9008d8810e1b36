/**
 * Streaming scenarios: per-chunk delay on a paced stream (5), 1,000 concurrent open streams (6),
 * abandoned streams (9).
 *
 * 5 and 9 need the mock's own per-stream records (when each chunk was written, when the abort was
 * noticed), so for them the mock runs inside the harness process: the mock's timestamps and the
 * client's are then read from the same clock (performance.now()) with no cross-process
 * conversion. Both scenarios are light (a few dozen paced streams), so sharing the harness's event
 * loop with the client costs microseconds, and it does so equally for the direct, pipe and gateway
 * paths, which are measured the same way. The gateway and the pipe stay separate processes.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { MockStream, MockUpstream } from '../../mock/upstream.js'
import type { BenchPath, Group, RunContext, Scenario } from '../context.js'
import { openStream, percentile, sortedCopy, wideAgent, type StreamTrace } from '../load.js'
import { MiB, rssBytes, sampleRss } from '../processes.js'
import { fmt, ratio } from '../report.js'

const CHUNK_DELAY_TARGET_MS = 1
const OPEN_STREAMS_RSS_TARGET = 256 * MiB
const LATE_AFTER_ABORT_MS = 100

/**
 * The mock's send times of the events the client sees. The gateway asks the upstream for usage
 * (stream_options.include_usage) and removes that extra usage-only chunk, the one before [DONE],
 * so the client gets what it asked for: its send time has no client event to pair with.
 */
function clientVisible (chunkTimes: number[]): number[] {
  return chunkTimes.length === PACED_EVENTS + 1 ? [...chunkTimes.slice(0, -2), chunkTimes[chunkTimes.length - 1]] : chunkTimes
}

/** 61 content chunks + role + stop + [DONE] = 64 SSE events. */
const PACED_CONTENT_CHUNKS = 61
const PACED_EVENTS = 64
const PACED_GAP_MS = 20

function requireMock (group: Group): MockUpstream {
  if (group.mock === undefined) throw new Error('this scenario needs the mock in the harness process')
  return group.mock
}

/** The mock's record of the stream a client sent with `x-request-id: id`. */
function mockStreamFor (mock: MockUpstream, id: string): MockStream | undefined {
  const req = mock.requests.find((r) => r.headers['x-request-id'] === id)
  return req === undefined ? undefined : mock.streams.find((s) => s.requestId === req.id)
}

interface PacedResult {
  /** events 2…64 of every stream: the per-chunk relay delay */
  delays: number[]
  /** event 1 of every stream: it leaves the mock right after the headers, so its delay includes the proxy's response start */
  firstDelays: number[]
  errors: number
}

async function pacedDelays (mock: MockUpstream, path: BenchPath, ctx: RunContext): Promise<PacedResult> {
  const { sizes, keys } = ctx
  const dispatcher = wideAgent()
  const delays: number[] = []
  const firstDelays: number[] = []
  let errors = 0
  try {
    for (let round = 0; round < sizes.pacedRounds; round++) {
      mock.reset()
      const ids: string[] = []
      const runs: Array<Promise<StreamTrace>> = []
      for (let i = 0; i < sizes.pacedStreams; i++) {
        const id = `bench5-${path.name}-${round}-${i}`
        ids.push(id)
        runs.push(openStream(path.url, keys, {
          dispatcher,
          extraHeaders: { 'x-request-id': id, 'x-mock-chunks': String(PACED_CONTENT_CHUNKS), 'x-mock-delay-ms': String(PACED_GAP_MS) }
        }))
        // stagger the streams across the 20 ms gap so that their chunks do not all leave at once
        await sleep(PACED_GAP_MS / sizes.pacedStreams)
      }
      const traces = await Promise.all(runs)
      traces.forEach((trace, i) => {
        const sent = mockStreamFor(mock, ids[i])
        const times = sent === undefined ? [] : clientVisible(sent.chunkTimes)
        if (trace.error !== undefined || !trace.done || times.length !== PACED_EVENTS || trace.eventTimes.length !== PACED_EVENTS) {
          errors++
          return
        }
        firstDelays.push(trace.eventTimes[0] - times[0])
        for (let k = 1; k < PACED_EVENTS; k++) delays.push(trace.eventTimes[k] - times[k])
      })
    }
  } finally {
    await dispatcher.close()
    mock.reset()
  }
  return { delays, firstDelays, errors }
}

/**
 * Scenario 5: for every SSE event, the time it reached the client minus the time the mock wrote
 * it. The first event of each stream is reported on its own row: it follows the response headers
 * at once, so it measures the proxy's response start (scenario 4's business), not chunk relaying.
 */
export const pacedChunkDelay: Scenario = {
  id: 5,
  title: 'per-chunk delay, paced stream (64 chunks, 20 ms apart)',
  mock: 'harness',
  async run (group, ctx) {
    const mock = requireMock(group)
    const results: Record<string, PacedResult> = {}
    for (const path of [group.direct, group.pipe, group.gateway]) results[path.name] = await pacedDelays(mock, path, ctx)
    const p = (name: string, q: number): number => percentile(sortedCopy(results[name].delays), q)
    const first = (name: string): string => {
      const s = sortedCopy(results[name].firstDelays)
      return `${fmt(percentile(s, 50), 3)} / ${fmt(percentile(s, 99), 3)}`
    }
    const name = `5. ${this.title}`
    // "added": what the proxy adds to the transit the direct path already has (the target)
    const addedP99 = p('gateway', 99) - p('direct', 99)
    return [
      { scenario: name, measure: 'chunk: client receive − mock send, p50 ms', direct: fmt(p('direct', 50), 3), pipe: fmt(p('pipe', 50), 3), gateway: fmt(p('gateway', 50), 3) },
      {
        scenario: name,
        measure: 'chunk: client receive − mock send, p99 ms',
        direct: fmt(p('direct', 99), 3),
        pipe: fmt(p('pipe', 99), 3),
        gateway: fmt(p('gateway', 99), 3),
        ratio: ratio(p('gateway', 99), p('pipe', 99))
      },
      {
        scenario: name,
        measure: 'added per-chunk delay p99 ms (minus direct)',
        pipe: fmt(p('pipe', 99) - p('direct', 99), 3),
        gateway: fmt(addedP99, 3),
        target: `< ${CHUNK_DELAY_TARGET_MS} ms`,
        pass: addedP99 < CHUNK_DELAY_TARGET_MS && results.gateway.errors === 0
      },
      { scenario: name, measure: 'first event of a stream, p50 / p99 ms', direct: first('direct'), pipe: first('pipe'), gateway: first('gateway') },
      {
        scenario: name,
        measure: 'chunks measured (broken streams)',
        direct: `${results.direct.delays.length} (${results.direct.errors})`,
        pipe: `${results.pipe.delays.length} (${results.pipe.errors})`,
        gateway: `${results.gateway.delays.length} (${results.gateway.errors})`
      }
    ]
  }
}

interface OpenStreamsResult { errors: number, peakOpen: number, rssBefore: number, rssPeak: number, seconds: number }

async function holdOpenStreams (path: BenchPath, ctx: RunContext): Promise<OpenStreamsResult> {
  const { sizes, keys } = ctx
  const pid = path.pid ?? 0
  const dispatcher = wideAgent()
  const rssBefore = rssBytes(pid)
  const sampler = sampleRss(pid, 100)
  let open = 0
  let peakOpen = 0
  const started = performance.now()
  const runs: Array<Promise<StreamTrace>> = []
  for (let i = 0; i < sizes.openStreams; i++) {
    runs.push(openStream(path.url, keys, {
      dispatcher,
      extraHeaders: { 'x-mock-chunks': '20', 'x-mock-delay-ms': String(sizes.openStreamDelayMs) },
      onHeaders: () => { open++; peakOpen = Math.max(peakOpen, open) }
    }).then((trace) => { if (trace.status !== 0) open--; return trace }))
  }
  const traces = await Promise.all(runs)
  const seconds = (performance.now() - started) / 1000
  const { peak } = sampler.stop()
  await dispatcher.close()
  const errors = traces.filter((t) => t.status !== 200 || t.error !== undefined || !t.done).length
  return { errors, peakOpen, rssBefore, rssPeak: peak, seconds }
}

/** Scenario 6: N streams (20 chunks, paced so that each lasts seconds) opened at once. */
export const openStreams: Scenario = {
  id: 6,
  title: 'concurrent open streams',
  mock: 'process',
  async run (group, ctx) {
    const pipe = await holdOpenStreams(group.pipe, ctx)
    const gateway = await holdOpenStreams(group.gateway, ctx)
    const name = `6. ${ctx.sizes.openStreams.toLocaleString('en-US')} ${this.title}`
    return [
      {
        scenario: name,
        measure: 'failed streams',
        pipe: String(pipe.errors),
        gateway: String(gateway.errors),
        target: '0',
        pass: gateway.errors === 0
      },
      { scenario: name, measure: 'streams open at once (peak)', pipe: String(pipe.peakOpen), gateway: String(gateway.peakOpen) },
      {
        scenario: name,
        measure: 'proxy RSS MiB, before → peak',
        pipe: `${fmt(pipe.rssBefore / MiB, 0)} → ${fmt(pipe.rssPeak / MiB, 0)}`,
        gateway: `${fmt(gateway.rssBefore / MiB, 0)} → ${fmt(gateway.rssPeak / MiB, 0)}`,
        target: `peak < ${OPEN_STREAMS_RSS_TARGET / MiB} MiB`,
        pass: gateway.rssPeak < OPEN_STREAMS_RSS_TARGET
      },
      { scenario: name, measure: 'seconds for all streams', pipe: fmt(pipe.seconds, 1), gateway: fmt(gateway.seconds, 1) }
    ]
  }
}

interface AbandonResult { late: number, afterAbort: number, noticedMs: number[], unmatched: number }

async function abandonStreams (mock: MockUpstream, path: BenchPath, ctx: RunContext): Promise<AbandonResult> {
  const { sizes, keys } = ctx
  const dispatcher = wideAgent()
  mock.reset()
  const abortAt = new Map<string, number>()
  const runs: Array<Promise<StreamTrace>> = []
  for (let i = 0; i < sizes.abandonedStreams; i++) {
    const id = `bench9-${path.name}-${i}`
    runs.push(openStream(path.url, keys, {
      dispatcher,
      // long enough to still be running well after the abort
      extraHeaders: { 'x-request-id': id, 'x-mock-chunks': '200', 'x-mock-delay-ms': '10' },
      abortAfterEvents: 5,
      onAbort: (at) => abortAt.set(id, at)
    }))
  }
  await Promise.all(runs)
  // a stream the abort did not reach would go on writing every 10 ms: give it time to show
  await sleep(LATE_AFTER_ABORT_MS * 4)
  const result: AbandonResult = { late: 0, afterAbort: 0, noticedMs: [], unmatched: 0 }
  for (const [id, at] of abortAt) {
    const sent = mockStreamFor(mock, id)
    if (sent === undefined) { result.unmatched++; continue }
    result.late += sent.chunkTimes.filter((t) => t > at + LATE_AFTER_ABORT_MS).length
    result.afterAbort += sent.chunkTimes.filter((t) => t > at).length
    if (sent.abortedAt !== undefined) result.noticedMs.push(sent.abortedAt - at)
    else if (!sent.finished) result.unmatched++
  }
  result.unmatched += sizes.abandonedStreams - abortAt.size
  await dispatcher.close()
  mock.reset()
  return result
}

/** Scenario 9: the client reads 5 events of a long paced stream, then aborts. */
export const abandonedStreams: Scenario = {
  id: 9,
  title: 'abandoned streams',
  mock: 'harness',
  async run (group, ctx) {
    const mock = requireMock(group)
    const r: Record<string, AbandonResult> = {}
    for (const path of [group.direct, group.pipe, group.gateway]) r[path.name] = await abandonStreams(mock, path, ctx)
    const noticed = (x: AbandonResult): string => {
      const s = sortedCopy(x.noticedMs)
      return s.length === 0 ? 'n/a' : `${fmt(percentile(s, 50), 1)} / ${fmt(s[s.length - 1], 1)}`
    }
    const name = `9. ${this.title} (${ctx.sizes.abandonedStreams})`
    return [
      {
        scenario: name,
        measure: `upstream chunks sent > ${LATE_AFTER_ABORT_MS} ms after the abort`,
        direct: String(r.direct.late),
        pipe: String(r.pipe.late),
        gateway: String(r.gateway.late),
        target: '0',
        pass: r.gateway.late === 0 && r.gateway.unmatched === 0
      },
      { scenario: name, measure: 'upstream chunks sent after the abort (any delay)', direct: String(r.direct.afterAbort), pipe: String(r.pipe.afterAbort), gateway: String(r.gateway.afterAbort) },
      { scenario: name, measure: 'abort reached the mock, p50 / max ms', direct: noticed(r.direct), pipe: noticed(r.pipe), gateway: noticed(r.gateway) },
      { scenario: name, measure: 'streams not matched or not aborted', direct: String(r.direct.unmatched), pipe: String(r.pipe.unmatched), gateway: String(r.gateway.unmatched) }
    ]
  }
}
