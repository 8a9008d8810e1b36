import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Exchange } from './exchange.js'
import type { MockStream } from './types.js'

/** Chunks written before a `*-mid-stream` fault strikes. */
const CHUNKS_BEFORE_FAULT = 2

/**
 * Tokens of `x-mock-hold`. A token released before any stream waits on it
 * stays released, so tests need not race the stream to call `release()`.
 */
export class HoldRegistry {
  readonly #released = new Set<string>()
  readonly #waiting = new Map<string, Set<() => void>>()

  release (token: string): void {
    this.#released.add(token)
    const waiters = this.#waiting.get(token)
    if (waiters === undefined) return
    this.#waiting.delete(token)
    for (const wake of waiters) wake()
  }

  /** Resolves once `token` is released; rejects when `signal` aborts first. */
  wait (token: string, signal: AbortSignal): Promise<void> {
    if (this.#released.has(token)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      let waiters = this.#waiting.get(token)
      if (waiters === undefined) {
        waiters = new Set()
        this.#waiting.set(token, waiters)
      }
      const onAbort = (): void => {
        waiters.delete(wake)
        reject(signal.reason)
      }
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      waiters.add(wake)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Forgets released tokens; streams already waiting keep waiting. */
  clear (): void {
    this.#released.clear()
  }
}

/**
 * Where to cut a chunk for split-network mode: preferably on a UTF-8
 * continuation byte at or after the middle (which splits a character),
 * otherwise simply the middle, which is inside the SSE line anyway.
 */
export function splitPoint (buf: Buffer): number {
  const middle = buf.length >> 1
  for (let i = middle; i < buf.length - 1; i++) {
    if ((buf[i] & 0xc0) === 0x80) return i
  }
  for (let i = middle - 1; i > 0; i--) {
    if ((buf[i] & 0xc0) === 0x80) return i
  }
  return Math.max(middle, 1)
}

function isAbortError (err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError'
}

function newStream (requestId: number, chunksPlanned: number): MockStream {
  return { requestId, chunksPlanned, chunksSent: 0, finished: false, aborted: false, chunkTimes: [], chunksAfterAbort: 0 }
}

/** Resolves once `chunk` has been handed to the operating system. */
function writeFlushed (res: ServerResponse, chunk: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(chunk, (err) => { if (err == null) resolve(); else reject(err) })
  })
}

/** Writes one chunk, in two socket writes in split-network mode; false means "wait for drain". */
async function writeChunk (res: ServerResponse, chunk: string | Buffer, split: boolean, signal: AbortSignal): Promise<boolean> {
  if (!split) return res.write(chunk)
  const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
  if (buf.length < 2) return res.write(buf)
  const cut = splitPoint(buf)
  // Each half is written once the write before it has left: writes made in one turn can leave as
  // one HTTP chunk, and a half must be its own chunk
  await writeFlushed(res, buf.subarray(0, cut))
  signal.throwIfAborted()
  await writeFlushed(res, buf.subarray(cut))
  return true
}

/**
 * Streams `count` chunks from `chunkAt` on an already started response:
 * honours the per-request delay, `x-mock-hold` (on the last chunk),
 * split-network writes, backpressure and the `*-mid-stream` faults, and
 * records everything in a MockStream. Client aborts stop it promptly.
 */
export async function pace (ex: Exchange, count: number, chunkAt: (index: number) => string | Buffer): Promise<void> {
  const { res, controls } = ex
  const stream = newStream(ex.record.id, count)
  ex.state.trackStream(stream)
  const abort = new AbortController()
  const { signal } = abort
  let brokenByFault = false
  res.once('finish', () => { stream.finished = true })
  res.once('close', () => {
    if (!res.writableFinished && !brokenByFault) {
      stream.aborted = true
      stream.abortedAt = performance.now()
    }
    abort.abort()
  })
  // Headers go out at once when the first chunk may take a while, as real servers do.
  if (controls.delayMs > 0 || controls.holdToken !== undefined) res.flushHeaders()

  const fault = controls.fault === 'reset-mid-stream' || controls.fault === 'hang-mid-stream' ? controls.fault : undefined
  const limit = fault === undefined ? count : Math.min(CHUNKS_BEFORE_FAULT, count)
  try {
    for (let i = 0; i < limit; i++) {
      if (i > 0 && controls.delayMs > 0) await sleep(controls.delayMs, undefined, { signal })
      if (i === count - 1 && controls.holdToken !== undefined) await ex.state.holds.wait(controls.holdToken, signal)
      if (stream.aborted) {
        stream.chunksAfterAbort++
        return
      }
      stream.chunkTimes.push(performance.now())
      stream.chunksSent++
      const chunk = chunkAt(i)
      // Before a fault, wait for each chunk to leave: destroying the socket discards buffered writes.
      if (fault !== undefined) await writeFlushed(res, chunk)
      else if (!await writeChunk(res, chunk, controls.splitNetwork, signal)) await once(res, 'drain', { signal })
    }
  } catch (err) {
    if (isAbortError(err)) return
    throw err
  }
  if (fault === undefined) {
    res.end()
    return
  }
  if (fault === 'reset-mid-stream') {
    brokenByFault = true
    res.destroy()
  }
  // hang-mid-stream: the response stays open until the client gives up.
}
