/**
 * Synchronous response stages. A stage that maps each chunk to the text to send for it (and has
 * nothing to wait for at the end) does not need a Transform of its own: the forwarder calls it
 * from the one stream hop every event stream already has, so a rewritten stream costs no extra
 * stream, no pipeline() (an AbortController per response) and no extra 'data' event per chunk:
 * the same rewrite costs less than half as much this way (docs/performance.md, round 4).
 *
 * Where a Transform is needed after all (a decoder or a tap in the same chain), `asTransform`
 * wraps the stage.
 */
import { Transform, type TransformCallback } from 'node:stream'

export interface ChunkStage {
  /** what to send for this chunk ('' when the stage holds it, e.g. an incomplete event) */
  write: (chunk: Buffer | string) => Buffer | string
  /** what is left once the body ended */
  end: () => Buffer | string
  /** a tap: every byte passes unchanged, so the body keeps its Content-Length */
  passive?: boolean
}

export function isChunkStage (stage: ChunkStage | Transform): stage is ChunkStage {
  return typeof (stage as Transform).pipe !== 'function'
}

/** True when some stage may change the body's bytes (its Content-Length no longer holds). */
export function changesBody (stages: ReadonlyArray<ChunkStage | Transform>): boolean {
  return stages.some((stage) => !isChunkStage(stage) || stage.passive !== true)
}

/** One chunk through every stage, upstream side first. */
export function writeStages (stages: readonly ChunkStage[], chunk: Buffer | string): Buffer | string {
  let out = chunk
  for (let i = 0; i < stages.length && out.length > 0; i++) out = stages[i].write(out)
  return out
}

/** The end of the body through every stage: what stage i has left passes through stages after it. */
export function endStages (stages: readonly ChunkStage[]): Buffer | string {
  let out: Buffer | string = ''
  for (const stage of stages) {
    const through: Buffer | string = out.length > 0 ? stage.write(out) : ''
    const rest = stage.end()
    out = joinChunks(through, rest)
  }
  return out
}

/** A chunk, then the body's end, through every stage (`ending`: this is the last chunk). */
export function runStages (stages: readonly ChunkStage[], chunk: Buffer | string, ending: boolean): Buffer | string {
  const out = writeStages(stages, chunk)
  return ending ? joinChunks(out, endStages(stages)) : out
}

/** Two pieces of body as one (text stays text: no encoding until the socket needs it). */
function joinChunks (a: Buffer | string, b: Buffer | string): Buffer | string {
  if (b.length === 0) return a
  if (a.length === 0) return b
  if (typeof a === 'string' && typeof b === 'string') return a + b
  return Buffer.concat([typeof a === 'string' ? Buffer.from(a) : a, typeof b === 'string' ? Buffer.from(b) : b])
}

/**
 * A stage that throws is a bug, not the client's problem: told to `onError` once, and the rest of
 * the body passes on unchanged (as the forwarder's relay does with its synchronous stages). It
 * never throws out of the stream's callbacks, which run inside a decoder's or socket's handler.
 */
class ChunkStageStream extends Transform {
  readonly #stage: ChunkStage
  readonly #onError: (err: unknown) => void
  #failed = false

  constructor (stage: ChunkStage, onError: (err: unknown) => void) {
    super()
    this.#stage = stage
    this.#onError = onError
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#failed) {
      cb(null, chunk)
      return
    }
    let out: Buffer | string
    try {
      out = this.#stage.write(chunk)
    } catch (err) {
      this.#fail(err)
      out = chunk
    }
    cb(null, out.length > 0 ? out : undefined)
  }

  override _flush (cb: TransformCallback): void {
    let out: Buffer | string = ''
    try {
      if (!this.#failed) out = this.#stage.end()
    } catch (err) {
      this.#fail(err)
    }
    cb(null, out.length > 0 ? out : undefined)
  }

  #fail (err: unknown): void {
    this.#failed = true
    this.#onError(err)
  }
}

export function asTransform (stage: ChunkStage | Transform, onError: (err: unknown) => void): Transform {
  return isChunkStage(stage) ? new ChunkStageStream(stage, onError) : stage
}
