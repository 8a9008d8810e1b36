/**
 * The load generators, all in the harness process: autocannon for throughput and soak, and small
 * undici clients where autocannon cannot measure (sub-millisecond latency: autocannon's histogram
 * counts whole milliseconds; SSE events as they arrive; aborts; a streamed 1 GiB upload).
 */
import autocannon from 'autocannon'
import { performance } from 'node:perf_hooks'
import { Agent, Pool, request, type Dispatcher } from 'undici'

export const CHAT_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello in one short sentence.' }]
})
export const STREAM_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  stream: true,
  messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello in one short sentence.' }]
})

export interface RequestSpec {
  method: 'GET' | 'POST'
  path: string
  body?: string
  headers?: Record<string, string>
}

export const NON_STREAM_CHAT: RequestSpec = { method: 'POST', path: '/v1/chat/completions', body: CHAT_BODY, headers: { 'content-type': 'application/json' } }
export const STREAM_CHAT: RequestSpec = { method: 'POST', path: '/v1/chat/completions', body: STREAM_BODY, headers: { 'content-type': 'application/json', 'x-mock-chunks': '17' } }
export const MODELS: RequestSpec = { method: 'GET', path: '/v1/models' }

/** Rotates through the client keys, one per request, as a population of clients would. */
export class KeyRing {
  #i = 0
  constructor (readonly keys: readonly string[]) {}
  next (): string {
    const key = this.keys[this.#i]
    this.#i = (this.#i + 1) % this.keys.length
    return key
  }
}

export interface CannonOptions {
  connections: number
  /** seconds; ignored when `amount` is set */
  durationS?: number
  amount?: number
  /** hard stop, whatever `amount` says */
  maxSeconds?: number
}

export interface CannonResult {
  /** 2xx responses */
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  seconds: number
  rps: number
}

/** Runs autocannon against `baseUrl`, cycling through `specs` on each connection. */
export async function cannon (baseUrl: string, specs: RequestSpec[], keys: KeyRing, opts: CannonOptions): Promise<CannonResult> {
  const requests = specs.map((spec) => ({
    method: spec.method,
    path: spec.path,
    body: spec.body,
    setupRequest (req: autocannon.Request): autocannon.Request {
      req.headers = { ...spec.headers, authorization: `Bearer ${keys.next()}` }
      return req
    }
  }))
  const started = performance.now()
  let stopTimer: NodeJS.Timeout | undefined
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const tracker = autocannon({
      url: baseUrl,
      connections: opts.connections,
      duration: opts.durationS ?? 10,
      amount: opts.amount,
      timeout: 30,
      // autocannon only notices the end of a run at a sample tick (default every second)
      sampleInt: 100,
      requests
    }, (err: Error | null, res: autocannon.Result) => { if (err !== null && err !== undefined) reject(err); else resolve(res) })
    if (opts.maxSeconds !== undefined) stopTimer = setTimeout(() => tracker.stop(), opts.maxSeconds * 1000)
  })
  clearTimeout(stopTimer)
  const seconds = (performance.now() - started) / 1000
  const ok = result['2xx']
  return { ok, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts, seconds, rps: ok / seconds }
}

function headersFor (spec: RequestSpec, key: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...spec.headers, authorization: `Bearer ${key}`, ...extra }
}

/**
 * Latency of `n` sequential requests on one keep-alive connection (concurrency 1), in ms, each
 * measured from send to the last body byte. A non-200 answer throws, unless `failed` is given:
 * then it is counted there and left out of the samples (a peer's occasional 502, bench/peers.ts).
 */
export async function sequentialLatencies (baseUrl: string, spec: RequestSpec, keys: KeyRing, n: number, failed?: { count: number }): Promise<number[]> {
  const pool = new Pool(baseUrl, { connections: 1 })
  const out: number[] = []
  try {
    for (let i = 0; i < n; i++) {
      const started = performance.now()
      const res = await pool.request({ method: spec.method, path: spec.path, body: spec.body, headers: headersFor(spec, keys.next()) })
      await res.body.arrayBuffer()
      const ms = performance.now() - started
      if (res.statusCode === 200) out.push(ms)
      else if (failed !== undefined) failed.count++
      else throw new Error(`latency probe got HTTP ${res.statusCode} from ${baseUrl}`)
    }
  } finally {
    await pool.close()
  }
  return out
}

export interface StreamTrace {
  status: number
  /** performance.now() when each complete SSE event had arrived */
  eventTimes: number[]
  /** the stream ended with `data: [DONE]` */
  done: boolean
  error?: string
}

export interface OpenStreamOptions {
  dispatcher: Dispatcher
  extraHeaders?: Record<string, string>
  /** abort after this many events (abandoned-stream scenario) */
  abortAfterEvents?: number
  /** called when the client aborts, with performance.now() */
  onAbort?: (at: number) => void
  /** called once the response headers arrived */
  onHeaders?: () => void
}

/** One streamed chat completion, with the arrival time of every SSE event (events end with a blank line). */
export async function openStream (baseUrl: string, keys: KeyRing, opts: OpenStreamOptions): Promise<StreamTrace> {
  const trace: StreamTrace = { status: 0, eventTimes: [], done: false }
  const abort = new AbortController()
  try {
    const res = await request(baseUrl + STREAM_CHAT.path, {
      method: 'POST',
      body: STREAM_BODY,
      headers: headersFor(STREAM_CHAT, keys.next(), opts.extraHeaders),
      dispatcher: opts.dispatcher,
      signal: abort.signal
    })
    trace.status = res.statusCode
    opts.onHeaders?.()
    let pending = ''
    for await (const chunk of res.body) {
      const now = performance.now()
      pending += (chunk as Buffer).toString('utf8')
      let end = pending.indexOf('\n\n')
      while (end !== -1) {
        trace.eventTimes.push(now)
        if (pending.startsWith('data: [DONE]')) trace.done = true
        pending = pending.slice(end + 2)
        end = pending.indexOf('\n\n')
      }
      if (opts.abortAfterEvents !== undefined && trace.eventTimes.length >= opts.abortAfterEvents) {
        opts.onAbort?.(performance.now())
        abort.abort()
        break
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) trace.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  }
  return trace
}

/** An agent with no connection limit: every stream gets its own socket at once. */
export function wideAgent (): Agent {
  return new Agent({ connections: null, keepAliveTimeout: 10_000, headersTimeout: 120_000, bodyTimeout: 120_000 })
}

export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[i]
}

export function sortedCopy (values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b)
}
