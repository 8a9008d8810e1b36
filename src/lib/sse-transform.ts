/**
 * Server-sent events at the event level, for stream stages that rewrite or watch a live response
 * rather than on raw bytes. Chunks split lines and multi-byte characters anywhere, so the layers are:
 *
 * 1. `LineSplitter`: a StringDecoder (a character cut between two chunks is joined, never
 *    replaced by U+FFFD) and a carried-over partial line. `\n`, `\r\n` and a lone `\r` end a line
 *    (the SSE grammar), and each line keeps its own terminator so CRLF streams stay CRLF. The
 *    carry is bounded: a line longer than the bound is passed on raw as it arrives instead of
 *    being held, so a hostile upstream cannot grow memory without limit.
 * 2. `SseEventSplitter`: groups lines into events (a blank line ends one). An event's lines are
 *    held until its blank line, which costs a client nothing: it cannot act on an event before
 *    that line either. Comments between events (keep-alives) go on at once. The held size is
 *    bounded the same way; an event over the bound is passed on raw. (A non-conforming upstream
 *    that never sends blank lines is therefore held up to the bound; SDK parsers could not
 *    dispatch its events either.)
 * 3. `SseRewriteStream`: parses each event's `data` as JSON and hands the value to a rewriter.
 *    An event the rewriter leaves alone goes on byte for byte; `[DONE]`, comments, `event:`/`id:`
 *    lines and data that is not JSON are never touched.
 *
 * `SseTap` reuses layers 1 and 2 to watch a stream (e.g. for token usage) without changing or
 * delaying a byte of it.
 */
import { StringDecoder } from 'node:string_decoder'
import { Transform, type TransformCallback } from 'node:stream'

/** Largest line or event held in memory, in characters. A legitimate 1 MiB line fits easily. */
export const DEFAULT_MAX_EVENT_SIZE = 8 * 1024 * 1024

export interface LineSink {
  /** one complete line without its terminator; `eol` is '\n', '\r\n', '\r', or '' at the end of the stream */
  line: (text: string, eol: string) => void
  /**
   * Part of a line longer than the bound, passed on raw as it arrives (terminator included in
   * the last part); `ended` is true for the part that ends the line.
   */
  overflow: (text: string, ended: boolean) => void
}

export class LineSplitter {
  readonly #sink: LineSink
  readonly #max: number
  readonly #decoder = new StringDecoder('utf8')
  #parts: string[] = []
  #carried = 0
  /** the line in the carry ended with '\r' at the end of a chunk: '\r\n' or a lone '\r'? */
  #crPending = false
  /** inside a line that exceeded the bound: its bytes are being passed on raw */
  #overflowing = false

  constructor (sink: LineSink, maxLineSize = DEFAULT_MAX_EVENT_SIZE) {
    this.#sink = sink
    this.#max = maxLineSize
  }

  /** characters held for the current partial line */
  get buffered (): number {
    return this.#carried
  }

  write (chunk: Buffer | string): void {
    this.#push(typeof chunk === 'string' ? chunk : this.#decoder.write(chunk))
  }

  end (): void {
    this.#push(this.#decoder.end())
    if (this.#crPending) {
      this.#crPending = false
      this.#finishLine('', '\r')
    }
    if (this.#carried > 0 || this.#overflowing) this.#finishLine('', '')
  }

  #push (s: string): void {
    if (s.length === 0) return
    let start = 0
    if (this.#crPending) {
      this.#crPending = false
      if (s.charCodeAt(0) === 10) {
        this.#finishLine('', '\r\n')
        start = 1
      } else {
        this.#finishLine('', '\r')
      }
    }
    // indexOf results are reused until passed, so a chunk of many short lines stays linear
    let nl = s.indexOf('\n', start)
    let cr = s.indexOf('\r', start)
    while (nl !== -1 || cr !== -1) {
      if (nl !== -1 && nl < start) nl = s.indexOf('\n', start)
      if (cr !== -1 && cr < start) cr = s.indexOf('\r', start)
      if (nl === -1 && cr === -1) break
      if (cr !== -1 && (nl === -1 || cr < nl)) {
        if (cr === s.length - 1) {
          // '\r' at the end of the chunk: the next chunk tells whether it is '\r\n'
          this.#carry(s.slice(start, cr))
          this.#crPending = true
          return
        }
        const crlf = s.charCodeAt(cr + 1) === 10
        this.#finishLine(s.slice(start, cr), crlf ? '\r\n' : '\r')
        start = cr + (crlf ? 2 : 1)
      } else {
        this.#finishLine(s.slice(start, nl), '\n')
        start = nl + 1
      }
    }
    if (start < s.length) this.#carry(start === 0 ? s : s.slice(start))
  }

  #carry (text: string): void {
    if (text.length === 0) return
    if (this.#overflowing) {
      this.#sink.overflow(text, false)
      return
    }
    this.#parts.push(text)
    this.#carried += text.length
    if (this.#carried > this.#max) {
      const held = this.#take()
      this.#overflowing = true
      this.#sink.overflow(held, false)
    }
  }

  #take (): string {
    const text = this.#parts.length === 1 ? this.#parts[0] : this.#parts.join('')
    this.#parts = []
    this.#carried = 0
    return text
  }

  #finishLine (tail: string, eol: string): void {
    if (this.#overflowing) {
      this.#overflowing = false
      this.#sink.overflow(tail + eol, true)
      return
    }
    const line = this.#carried > 0 ? this.#take() + tail : tail
    this.#sink.line(line, eol)
  }
}

export interface SseLine { text: string, eol: string }

export interface SseEventSink {
  /**
   * One event: its lines, the blank line that ended it included. `terminated` is false for an
   * event cut off by the end of the stream.
   */
  event: (lines: SseLine[], terminated: boolean) => void
  /** text to pass on as it is: comments between events, over-long lines and events */
  raw: (text: string) => void
  /** told when an event grew past the bound and is being passed on raw */
  oversize?: () => void
  /**
   * Optional: an event that is exactly one `data:` line (`line`, terminated by '\n\n'), with its
   * data text. Without it such events reach `event()` as lines like any other.
   */
  dataLine?: (data: string, line: string) => void
}

export class SseEventSplitter {
  readonly #sink: SseEventSink
  readonly #max: number
  readonly #lines: LineSplitter
  readonly #decoder = new StringDecoder('utf8')
  #pending: SseLine[] = []
  #size = 0
  /** the current event grew past the bound: its remaining lines pass raw up to its blank line */
  #raw = false
  /**
   * Fast path, while no '\r' was seen: whole events are cut at '\n\n' with indexOf, and a
   * one-line `data:` event (nearly every event of an LLM stream) skips the line splitter. `#tail`
   * holds the text after the last whole event. Anything else (a comment, `event:`/`id:` lines,
   * several data lines, a blank line too many, an event over the bound) goes through the line
   * splitter, which is idle at an event boundary, so the result is the same as without the fast
   * path. The first '\r' hands the stream to the line splitter for good.
   */
  #fast = true
  #tail = ''

  constructor (sink: SseEventSink, maxEventSize = DEFAULT_MAX_EVENT_SIZE) {
    this.#sink = sink
    this.#max = maxEventSize
    this.#lines = new LineSplitter({
      line: (text, eol) => this.#line(text, eol),
      overflow: (text) => this.#overflow(text)
    }, maxEventSize)
  }

  /** characters held for the current event, partial line included */
  get buffered (): number {
    return this.#size + this.#lines.buffered + this.#tail.length
  }

  write (chunk: Buffer | string): void {
    // decoded here, not in the line splitter: the fast path and the splitter share one decoder
    const s = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk)
    if (s.length === 0) return
    if (!this.#fast) {
      this.#lines.write(s)
      return
    }
    const text = this.#tail.length > 0 ? this.#tail + s : s
    this.#tail = ''
    if (s.indexOf('\r') !== -1) {
      this.#fast = false
      this.#lines.write(text)
      return
    }
    let start = 0
    for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n', start)) {
      this.#block(text, start, end)
      start = end + 2
    }
    if (start === text.length) return
    const rest = start === 0 ? text : text.slice(start)
    if (rest.length > this.#max) {
      // the bound applies to what is held: the line splitter passes it on raw from here
      this.#fast = false
      this.#lines.write(rest)
    } else {
      this.#tail = rest
    }
  }

  end (): void {
    const rest = this.#tail + this.#decoder.end()
    this.#tail = ''
    if (rest.length > 0) this.#lines.write(rest)
    this.#lines.end()
    if (this.#pending.length > 0) this.#sink.event(this.#takePending(), false)
  }

  /** One whole event `text[start, end)`, followed in `text` by '\n\n'. */
  #block (text: string, start: number, end: number): void {
    if (end - start + 2 <= this.#max && text.startsWith('data:', start) && text.indexOf('\n', start) === end) {
      const line = text.slice(start, end)
      const data = line.slice(line.charCodeAt(5) === 32 ? 6 : 5)
      if (this.#sink.dataLine !== undefined) this.#sink.dataLine(data, line)
      else this.#sink.event([{ text: line, eol: '\n' }, { text: '', eol: '\n' }], true)
      return
    }
    this.#lines.write(text.slice(start, end + 2))
  }

  #line (text: string, eol: string): void {
    if (this.#raw) {
      if (text === '') this.#raw = false
      this.#sink.raw(text + eol)
      return
    }
    if (text === '') {
      if (this.#pending.length === 0) {
        this.#sink.raw(eol) // a blank line outside any event dispatches nothing
        return
      }
      this.#pending.push({ text, eol })
      this.#sink.event(this.#takePending(), true)
      return
    }
    if (this.#pending.length === 0 && text.charCodeAt(0) === 58 /* ':' */) {
      this.#sink.raw(text + eol) // a comment between events (keep-alive) is not held back
      return
    }
    this.#pending.push({ text, eol })
    this.#size += text.length + eol.length
    if (this.#size + this.#lines.buffered > this.#max) this.#giveUp('')
  }

  #overflow (text: string): void {
    if (this.#raw) {
      this.#sink.raw(text)
      return
    }
    this.#giveUp(text)
  }

  /** The event is too large to hold: what was held goes on raw, and so does the rest of it. */
  #giveUp (text: string): void {
    const held = this.#takePending()
    let out = ''
    for (const l of held) out += l.text + l.eol
    this.#raw = true
    this.#sink.oversize?.()
    this.#sink.raw(out + text)
  }

  #takePending (): SseLine[] {
    const lines = this.#pending
    this.#pending = []
    this.#size = 0
    return lines
  }
}

export interface SseFields {
  /** the `event:` field, if any */
  event: string | undefined
  /** `data:` lines joined with '\n'; null when the event has none */
  data: string | null
  id: string | undefined
}

/** Field parsing per the SSE grammar: `name: value` (one leading space dropped), `:` comments. */
export function parseSseFields (lines: readonly SseLine[]): SseFields {
  let event: string | undefined
  let data: string | null = null
  let id: string | undefined
  for (const { text } of lines) {
    if (text === '' || text.charCodeAt(0) === 58) continue
    const colon = text.indexOf(':')
    const name = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (name === 'data') data = data === null ? value : `${data}\n${value}`
    else if (name === 'event') event = value
    else if (name === 'id') id = value
  }
  return { event, data, id }
}

/** An event to send: `data` is serialised as JSON on one `data:` line. */
export interface SseOutEvent {
  event?: string
  data: unknown
}

export interface SseEventContext {
  /** the event's `event:` field */
  event: string | undefined
  /** sends an extra event before this one */
  insert: (extra: SseOutEvent) => void
}

/** Returned by a rewriter to remove an event from the stream (its inserts are still sent). */
export const DROP_EVENT: unique symbol = Symbol('sse drop event')

export interface SseEventRewriter {
  /**
   * Called with each event whose data is JSON. Returns undefined to pass the event on byte for
   * byte, the value to send in its place (the value may be the argument, edited in place), or
   * DROP_EVENT to remove the event.
   */
  event: (value: unknown, ctx: SseEventContext) => unknown
  /**
   * Optional fast path on the data text of a one-line `data:` event, before it is parsed: returns
   * the data text to send instead, DROP_EVENT, or undefined to go on with `event()` as usual. For
   * rewriters that can decide most events without JSON.parse and JSON.stringify.
   */
  data?: (text: string) => string | typeof DROP_EVENT | undefined
  /** called once, before `data: [DONE]` or at the end of the stream: extra events to send first */
  finish?: () => SseOutEvent[]
  /** awaited before the stream ends (e.g. a store write the next request must see) */
  beforeEnd?: () => Promise<void> | void
}

export interface SseStreamOptions {
  maxEventSize?: number
  /** told once per stream when an event was too large to rewrite and passed on unchanged */
  onOversize?: () => void
  /** told when the rewriter threw; the event passes on unchanged */
  onError?: (err: unknown) => void
}

/**
 * Runs an optional end-of-body hook that may return a promise, then `next` (always, also when the
 * hook failed: a failed store write must not cut the response).
 */
export function settle (hook: () => Promise<void> | void, onError: ((err: unknown) => void) | undefined, next: () => void): void {
  let done: Promise<void> | void
  try {
    done = hook()
  } catch (err) {
    onError?.(err)
    next()
    return
  }
  if (done === undefined) {
    next()
    return
  }
  done.then(next, (err: unknown) => {
    onError?.(err)
    next()
  })
}

/**
 * The event-level rewriter, synchronous: `write()` takes a chunk and returns the text to send
 * for it, `end()` the rest. It is a `ChunkStage`, so the forwarder runs it inside its own stream
 * hop; `SseRewriteStream` wraps it as a Transform where a stream is needed.
 */
export class SseRewriter {
  readonly #rewriter: SseEventRewriter
  readonly #events: SseEventSplitter
  readonly #opts: SseStreamOptions
  #out = ''
  #eol = '\n'
  #finished = false
  #lastTerminated = true
  /** last character sent, to know whether the output ends at a line boundary */
  #lastChar = 10
  #oversizeTold = false

  constructor (rewriter: SseEventRewriter, opts: SseStreamOptions = {}) {
    this.#rewriter = rewriter
    this.#opts = opts
    this.#events = new SseEventSplitter({
      event: (lines, terminated) => this.#event(lines, terminated),
      dataLine: (data, line) => this.#dataLine(data, line),
      raw: (text) => this.#push(text),
      oversize: () => {
        if (this.#oversizeTold) return
        this.#oversizeTold = true
        this.#opts.onOversize?.()
      }
    }, opts.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE)
  }

  /** characters held right now (for tests of the bound) */
  get buffered (): number {
    return this.#events.buffered
  }

  /** the rewriter's end-of-body hook, for a stage that can wait for it */
  get beforeEnd (): SseEventRewriter['beforeEnd'] {
    return this.#rewriter.beforeEnd
  }

  /** The text to send for this chunk ('' while an event is incomplete). */
  write (chunk: Buffer | string): string {
    this.#events.write(chunk)
    return this.#take()
  }

  /** The rest: a cut-off event, the rewriter's extra events. */
  end (): string {
    this.#events.end()
    this.#finish()
    return this.#take()
  }

  #take (): string {
    const text = this.#out
    this.#out = ''
    return text
  }

  #push (text: string): void {
    if (text.length === 0) return
    this.#out += text
    this.#lastChar = text.charCodeAt(text.length - 1)
  }

  #event (lines: SseLine[], terminated: boolean): void {
    this.#eol = lines[0].eol !== '' ? lines[0].eol : this.#eol
    this.#lastTerminated = terminated
    const fields = parseSseFields(lines)
    if (fields.data === null) return this.#emitLines(lines)
    if (fields.data === '[DONE]') {
      this.#finish()
      return this.#emitLines(lines)
    }
    this.#rewrite(lines, fields.data, fields.event)
  }

  /** The common event, one `data:` line: no line objects unless the rewriter needs the parsed value. */
  #dataLine (data: string, line: string): void {
    this.#eol = '\n'
    this.#lastTerminated = true
    if (data === '[DONE]') {
      this.#finish()
      return this.#push(line + '\n\n')
    }
    this.#rewrite(null, data, undefined, line)
  }

  /** `lines` null: the event is the one data line `line`, ended by '\n\n'. */
  #rewrite (lines: SseLine[] | null, data: string, event: string | undefined, line?: string): void {
    // a one-line event (lines null) has no '\n' in its data: the splitter cut it at its only one
    if (this.#rewriter.data !== undefined && (lines === null || !data.includes('\n'))) {
      let text: string | typeof DROP_EVENT | undefined
      try {
        text = this.#rewriter.data(data)
      } catch (err) {
        this.#opts.onError?.(err)
        return this.#original(lines, line)
      }
      if (text === DROP_EVENT) return
      if (text !== undefined) return lines !== null ? this.#emitData(lines, text) : this.#push(`data: ${text}\n\n`)
    }
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return this.#original(lines, line)
    }
    const inserts: SseOutEvent[] = []
    let result: unknown
    try {
      result = this.#rewriter.event(value, { event, insert: (extra) => { inserts.push(extra) } })
    } catch (err) {
      this.#opts.onError?.(err)
      return this.#original(lines, line)
    }
    for (const extra of inserts) this.#push(this.#serialise(extra))
    if (result === undefined) return this.#original(lines, line)
    if (result === DROP_EVENT) return
    const text = JSON.stringify(result)
    if (lines !== null) this.#emitData(lines, text)
    else this.#push(`data: ${text}\n\n`)
  }

  #original (lines: SseLine[] | null, line: string | undefined): void {
    if (lines !== null) this.#emitLines(lines)
    else this.#push(`${line ?? ''}\n\n`)
  }

  /** Extra events of the rewriter (held-back text) go out before `[DONE]` or the end. */
  #finish (): void {
    if (this.#finished) return
    this.#finished = true
    const extras = this.#rewriter.finish?.() ?? []
    if (extras.length === 0) return
    // a line or event cut off by the end of the stream needs its ending, or ours would join it
    if (this.#lastChar !== 10 && this.#lastChar !== 13) this.#push(this.#eol)
    if (!this.#lastTerminated) this.#push(this.#eol)
    for (const extra of extras) this.#push(this.#serialise(extra))
  }

  #emitLines (lines: SseLine[]): void {
    for (const l of lines) this.#push(l.text + l.eol)
  }

  /** The first data line carries the new data text; other data lines go; every other line stays. */
  #emitData (lines: SseLine[], text: string): void {
    let placed = false
    for (const l of lines) {
      if (l.text.startsWith('data:') || l.text === 'data') {
        if (placed) continue
        placed = true
        this.#push(`data: ${text}${l.eol}`)
      } else {
        this.#push(l.text + l.eol)
      }
    }
  }

  #serialise (extra: SseOutEvent): string {
    const eol = this.#eol
    const head = extra.event !== undefined ? `event: ${extra.event}${eol}` : ''
    return `${head}data: ${JSON.stringify(extra.data)}${eol}${eol}`
  }
}

/** `SseRewriter` as a Transform, for a pipeline (and for a rewriter with an async `beforeEnd`). */
export class SseRewriteStream extends Transform {
  readonly #core: SseRewriter
  readonly #onError: ((err: unknown) => void) | undefined

  constructor (rewriter: SseEventRewriter, opts: SseStreamOptions = {}) {
    super()
    this.#core = new SseRewriter(rewriter, opts)
    this.#onError = opts.onError
  }

  /** characters held right now (for tests of the bound) */
  get buffered (): number {
    return this.#core.buffered
  }

  // a throw here would leave the stream's callbacks (a decoder's, a socket's): the stream fails instead
  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let text: string
    try {
      text = this.#core.write(chunk)
    } catch (err) {
      cb(err as Error)
      return
    }
    if (text.length > 0) this.push(text, 'utf8')
    cb()
  }

  override _flush (cb: TransformCallback): void {
    let text: string
    try {
      text = this.#core.end()
    } catch (err) {
      cb(err as Error)
      return
    }
    if (text.length > 0) this.push(text, 'utf8')
    settle(() => this.#core.beforeEnd?.(), this.#onError, () => cb())
  }
}

export interface SseTapEvent extends SseFields {
  /** false when the stream ended in the middle of this event */
  terminated: boolean
}

/**
 * A passive stage: every chunk goes on unchanged and at once, while its events are parsed on
 * the side and handed to `onEvent` (for usage accounting, metrics, logs).
 */
export class SseTap extends Transform {
  readonly #events: SseEventSplitter
  #failed = false

  constructor (onEvent: (event: SseTapEvent) => void, maxEventSize = DEFAULT_MAX_EVENT_SIZE) {
    super()
    this.#events = new SseEventSplitter({
      event: (lines, terminated) => onEvent({ ...parseSseFields(lines), terminated }),
      dataLine: (data) => onEvent({ event: undefined, data, id: undefined, terminated: true }),
      raw: () => {}
    }, maxEventSize)
  }

  // a watcher that fails stops watching; the stream goes on unchanged
  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#failed) {
      try {
        this.#events.write(chunk)
      } catch {
        this.#failed = true
      }
    }
    cb(null, chunk)
  }

  override _flush (cb: TransformCallback): void {
    if (!this.#failed) {
      try {
        this.#events.end()
      } catch {
        this.#failed = true
      }
    }
    cb()
  }
}
