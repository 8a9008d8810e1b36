/**
 * Answers left unread, found by one periodic sweep over the responses in progress rather than a
 * timer on each socket. A socket timeout is refreshed on every read and write of its socket and
 * set and cleared for every request; the sweep costs a set entry and a 'close' listener per
 * response, and a look at each open response every `tickMs`.
 *
 * A response is stalled when bytes wait for its client (its socket's `writableLength`) and none
 * of them moved to the client for `ms`: then `onStall` is called once and the response is no
 * longer watched. Bytes still moving, or nothing waiting (an upstream thinking quietly before its
 * next event), restart the count. A response whose end was written is not watched any more: the
 * gateway already has everything from its upstream, and the socket is Node's again.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface Watched {
  sweep: StallSweep
  res: ServerResponse
  socket: Socket
  onStall: () => void
  /** bytes handed to the kernel at the last look (-1: not looked at yet) */
  flushed: number
  /** when bytes last moved or nothing waited */
  since: number
  /** where it is in the sweep's list; -1 once it has left */
  slot: number
}

/** the entry of a watched response, for the one 'close' listener every response shares */
const kEntry = Symbol('stall sweep entry')
type WatchedResponse = ServerResponse & { [kEntry]?: Watched }

/** A closed response leaves its sweep (one function for all: no closure per response). */
function forget (this: WatchedResponse): void {
  const entry = this[kEntry]
  if (entry !== undefined) entry.sweep.forget(entry)
}

/**
 * The watched responses are a plain array, an entry leaving by swapping the last one into its
 * slot, not a Set: a Set with an add and a delete on every request keeps dead responses alive
 * through young-generation collections (docs/performance.md, "Tables rebuilt on every request").
 */
export class StallSweep {
  readonly #ms: number
  readonly #tickMs: number
  readonly #watched: Watched[] = []
  #timer: NodeJS.Timeout | null = null

  constructor (ms: number) {
    this.#ms = ms
    // a stall is found between ms and ms + tick after bytes last moved
    this.#tickMs = Math.max(10, Math.min(1000, Math.floor(ms / 4)))
  }

  /** responses watched right now (for tests) */
  get size (): number {
    return this.#watched.length
  }

  watch (res: ServerResponse, socket: Socket, onStall: () => void): void {
    const entry: Watched = { sweep: this, res, socket, onStall, flushed: -1, since: Date.now(), slot: this.#watched.length }
    this.#watched.push(entry)
    ;(res as WatchedResponse)[kEntry] = entry
    res.on('close', forget)
    if (this.#timer === null) this.#timer = setInterval(() => { this.#sweep() }, this.#tickMs).unref()
  }

  forget (entry: Watched): void {
    const { slot } = entry
    if (slot === -1) return
    entry.slot = -1
    const last = this.#watched.pop() as Watched
    if (last !== entry) {
      this.#watched[slot] = last
      last.slot = slot
    }
  }

  #sweep (): void {
    const now = Date.now()
    // backwards: an entry that leaves is replaced by the last one, which was already looked at
    for (let i = this.#watched.length - 1; i >= 0; i--) {
      // (should a stall handler make others leave at once, the list may have shrunk below i)
      if (i >= this.#watched.length) continue
      const entry = this.#watched[i]
      const { res, socket } = entry
      if (res.writableEnded || socket.destroyed) {
        this.forget(entry)
        continue
      }
      const waiting = socket.writableLength
      const flushed = socket.bytesWritten - waiting
      if (waiting === 0 || flushed !== entry.flushed) {
        entry.flushed = flushed
        entry.since = now
        continue
      }
      if (now - entry.since < this.#ms) continue
      this.forget(entry)
      try {
        entry.onStall()
      } catch {
        // the socket is being destroyed either way; one response's failure stays its own
        socket.destroy()
      }
    }
    if (this.#watched.length === 0 && this.#timer !== null) {
      clearInterval(this.#timer)
      this.#timer = null
    }
  }

  /** Stops the sweep (the server closes). */
  close (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    for (const entry of this.#watched) entry.slot = -1
    this.#watched.length = 0
  }
}
