/**
 * Shared pieces of the hardening suites: a raw TCP client for what HTTP libraries refuse to send,
 * the checks every fault ends with (the upstream connection released, the gateway still up), and
 * a seeded random generator so every "random" choice is the same on every run.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { request } from 'undici'
import type { MockUpstream } from '../../mock/upstream.js'
import { until } from '../poll.js'

export interface RawResult {
  /** every byte received, as latin1 text (one char per byte) */
  text: string
  /** the gateway closed the connection (as opposed to the bound running out) */
  closedByServer: boolean
}

/**
 * Writes `data` to a fresh connection and collects the answer until the server closes it, or
 * until `boundMs` passes (then `closedByServer` is false). `chunks` are written one by one with
 * `gapMs` between them, for slow senders.
 */
export function rawExchange (url: string, data: string | Buffer | Array<string | Buffer>, opts: { boundMs?: number, gapMs?: number } = {}): Promise<RawResult> {
  const { hostname, port } = new URL(url)
  const parts = Array.isArray(data) ? data : [data]
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    const received: Buffer[] = []
    let done = false
    const finish = (closedByServer: boolean): void => {
      if (done) return
      done = true
      clearTimeout(bound)
      clearInterval(pacer)
      socket.destroy()
      resolve({ text: Buffer.concat(received).toString('latin1'), closedByServer })
    }
    const bound = setTimeout(() => finish(false), opts.boundMs ?? 5000)
    let pacer: NodeJS.Timeout | undefined
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.on('close', () => finish(true))
    socket.on('error', () => {})
    socket.once('connect', () => {
      if (opts.gapMs === undefined) {
        for (const p of parts) socket.write(p)
        return
      }
      let i = 0
      pacer = setInterval(() => {
        if (i >= parts.length || socket.destroyed) { clearInterval(pacer); return }
        socket.write(parts[i++])
      }, opts.gapMs)
    })
  })
}

/** Status codes of every HTTP response in a raw answer, in order. */
export function statusesOf (text: string): number[] {
  // not anchored: a pipelined answer starts right after the previous body, on the same "line"
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map(m => Number(m[1]))
}

/** The JSON body of the last response in a raw answer. */
export function lastJsonBody (text: string): any {
  const start = text.lastIndexOf('\r\n\r\n')
  return JSON.parse(text.slice(start + 4))
}

/** Every request the mock received has had its connection closed or its response finished. */
export async function upstreamReleased (mock: MockUpstream, what = 'the upstream connection is released'): Promise<void> {
  await until(what, () => mock.requests.every(r => r.closed))
}

/** The gateway still answers its health probe. */
export async function stillServing (gatewayUrl: string): Promise<void> {
  const res = await request(`${gatewayUrl}/healthz`)
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { status: 'ok' })
}

/** Nothing of the gateway's insides in a client-facing text: stack frames, file paths, undici or Node error text. */
export const INTERNALS = /\bat .+\(.+:\d+:\d+\)|node:internal|node_modules|\/work\/|\.ts:\d+|undici|UND_ERR|ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|HPE_|TypeError|ReferenceError|SyntaxError|Cannot read prop/

/** mulberry32: a tiny seeded generator, enough for picking moments and samples deterministically. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
