/**
 * Whether an event stream's last event reached the client. A client may close its connection as
 * soon as it read the stream's terminal event (`data: [DONE]`, Anthropic's `message_stop`, the
 * Responses API's `response.completed`), before the body formally ended: the upstream's gzip
 * trailer or its chunked terminator can arrive a moment later. Such a stream is complete, not
 * a client abort.
 *
 * The same watch notices an upstream error reported inside a `200` stream (OpenAI's
 * `data: {"error":…}`, Anthropic's `event: error`, the Responses API's `response.failed`), which
 * ends such a stream: the request is then an error in its record, metrics and access line.
 *
 * The watch sees every chunk the client is sent and keeps only the start of the newest event
 * and whether the output ends at an event boundary, so it costs a boundary search per chunk and
 * holds a few hundred characters at most.
 */
import type { ChunkStage } from '../proxy/chunk-stages.js'

/** characters of an event's start kept: enough for its `event:` line and the start of its data */
const HEAD = 160

/** Events after which a stream ends: its `event:` field, `[DONE]`, or the `type` its data starts with. */
const TERMINAL = /^(?:data: ?\[DONE\]|event: ?(?:message_stop|error|response\.(?:completed|failed|incomplete))\r?$|data: ?\{"(?:type": ?"(?:message_stop|error|response\.(?:completed|failed|incomplete))"|error"))/m

/** Events that report a failure of the upstream (a subset of TERMINAL). */
const FAILURE = /^(?:event: ?(?:error|response\.failed)\r?$|data: ?\{"(?:type": ?"(?:error|response\.failed)"|error"))/m

const CR = 13
const LF = 10

/** Whether an event's text reports an upstream failure (an error event, `response.failed`). */
export function reportsFailure (event: string): boolean {
  return FAILURE.test(event)
}

type Chunk = Buffer | string

function codeAt (chunk: Chunk, i: number): number {
  return typeof chunk === 'string' ? chunk.charCodeAt(i) : chunk[i]
}

function text (chunk: Chunk, start: number, end: number): string {
  return typeof chunk === 'string' ? chunk.slice(start, end) : chunk.toString('latin1', start, end)
}

/**
 * The position just after the last blank line that ends at or before `end` in `chunk` (a blank
 * line ends an event: `\n\n`, or `\n\r\n` in a CRLF stream), or -1.
 */
function lastBoundary (chunk: Chunk, end: number): number {
  // a scan back from the end, not lastIndexOf: V8's String lastIndexOf flattens the (often
  // concatenated) chunk and searches it in C++, far dearer than this loop over one event
  for (let i = end - 1; i >= 1; i--) {
    if (codeAt(chunk, i) !== LF) continue
    const before = codeAt(chunk, i - 1)
    if (before === LF) return i + 1
    if (before === CR && i >= 2 && codeAt(chunk, i - 2) === LF) return i + 1
  }
  return -1
}

export class StreamEndWatch {
  /** the start of the newest event sent (up to HEAD characters) */
  #head = ''
  /** the output so far ends at an event boundary: the newest event was sent whole */
  #atBoundary = true
  /** the last characters sent (a blank line may be completed by the next chunk) */
  #tail = ''
  readonly #onFailure: () => void
  #failureTold = false

  /** `onFailure`: told once when a whole event reporting an upstream failure was sent */
  constructor (onFailure: () => void = () => {}) {
    this.#onFailure = onFailure
  }

  /** True when the newest event sent was a terminal event, and it was sent whole. */
  get complete (): boolean {
    return this.#atBoundary && this.#head.length > 0 && TERMINAL.test(this.#head)
  }

  /** The watch as a passive stage, for a chain of stream stages. */
  stage (): ChunkStage {
    return {
      passive: true,
      write: (chunk) => {
        this.write(chunk)
        return chunk
      },
      end: () => ''
    }
  }

  write (chunk: Chunk): void {
    const n = chunk.length
    if (n === 0) return
    // a blank line completed across chunks ('\n' | '\n', '\n\r' | '\n', …): where it ends in this one
    const kept = this.#tail.length
    const joined = this.#tail + text(chunk, 0, Math.min(n, 2))
    const seam = lastBoundary(joined, joined.length)
    const edge = seam > kept ? seam - kept : -1
    const last = Math.max(lastBoundary(chunk, n), edge)
    if (last < n) {
      // the chunk ends inside an event: it began after the last boundary (or earlier)
      this.#startOrExtend(chunk, last, n)
      this.#atBoundary = false
    } else {
      // the chunk ends an event: it began after the boundary before this one (or earlier)
      const before = Math.max(lastBoundary(chunk, n - 2), edge < n ? edge : -1)
      this.#startOrExtend(chunk, before, lastTerminatorStart(chunk, n))
      this.#atBoundary = true
      if (!this.#failureTold && (this.#head.includes('error') || this.#head.includes('failed'))) this.#checkFailure()
    }
    this.#tail = n >= 2 ? text(chunk, n - 2, n) : this.#tail.slice(-1) + text(chunk, 0, n)
  }

  #checkFailure (): void {
    if (this.#failureTold || !FAILURE.test(this.#head)) return
    this.#failureTold = true
    this.#onFailure()
  }

  /** The newest event begins at `start` in this chunk (-1: it began before) and runs to `end`. */
  #startOrExtend (chunk: Chunk, start: number, end: number): void {
    if (start === -1 && !this.#atBoundary) {
      if (this.#head.length < HEAD) this.#head += text(chunk, 0, Math.min(end, HEAD - this.#head.length))
      return
    }
    const from = start === -1 ? 0 : start
    // a chunk that is only the blank line of an event begun before keeps that event's head
    if (from >= end) return
    this.#head = text(chunk, from, Math.min(end, from + HEAD))
  }
}

/** Where the blank line that ends `chunk` begins (its first line terminator is kept in the event). */
function lastTerminatorStart (chunk: Chunk, n: number): number {
  return n >= 2 && codeAt(chunk, n - 2) === CR ? n - 2 : n - 1
}
