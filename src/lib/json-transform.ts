/**
 * The JSON-response counterpart of the SSE stage: a whole `application/json` body is collected
 * (bounded), parsed, handed to a rewrite function and sent again as one chunk with its exact
 * length. A body the rewrite leaves alone goes on byte for byte, so numbers, spacing and key
 * order of untouched responses never change.
 *
 * Over the bound the stage gives up: what it holds goes on unchanged and so does the rest, so a
 * huge response costs at most the bound in memory and is never cut. The same happens when the
 * bytes held by every rewriting response together would pass a shared `HeldBytes` budget: many
 * large answers at once cannot add up to many times the per-response bound.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { settle } from './sse-transform.js'

export const DEFAULT_MAX_JSON_BYTES = 32 * 1024 * 1024

/** Bytes held at once by every JSON rewrite of one gateway, against one bound. */
export class HeldBytes {
  readonly max: number
  #used = 0

  constructor (max: number) {
    this.max = max
  }

  get used (): number {
    return this.#used
  }

  /** Takes `n` bytes if they fit under the bound; false (nothing taken) if they do not. */
  take (n: number): boolean {
    if (this.#used + n > this.max) return false
    this.#used += n
    return true
  }

  give (n: number): void {
    this.#used -= n
  }
}

export interface JsonRewriteOptions {
  /** returns undefined to keep the body as it is, or the value to send instead */
  rewrite: (value: unknown) => unknown
  maxBytes?: number
  /** called with the final length just before the one chunk is pushed (to set content-length) */
  onLength?: (bytes: number) => void
  /** told when the body was larger than the bound and passed on unchanged */
  onOversize?: () => void
  /** told when the rewrite threw; the body passes on unchanged */
  onError?: (err: unknown) => void
  /** awaited before the body is sent (e.g. a store write the next request must see) */
  beforeEnd?: () => Promise<void> | void
  /** the budget shared with every other rewriting response */
  held?: HeldBytes
  /** told when the shared budget was full and the body passed on unchanged */
  onHeldFull?: () => void
}

export class JsonRewriteStream extends Transform {
  readonly #opts: JsonRewriteOptions
  readonly #max: number
  #chunks: Buffer[] = []
  #size = 0
  #passing = false
  /** bytes taken from the shared budget */
  #taken = 0

  constructor (opts: JsonRewriteOptions) {
    super()
    this.#opts = opts
    this.#max = opts.maxBytes ?? DEFAULT_MAX_JSON_BYTES
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#passing) {
      cb(null, chunk)
      return
    }
    const held = this.#opts.held
    const fits = this.#size + chunk.length <= this.#max
    if (fits && (held === undefined || held.take(chunk.length))) {
      this.#taken += chunk.length
      this.#chunks.push(chunk)
      this.#size += chunk.length
      cb()
      return
    }
    if (fits) this.#opts.onHeldFull?.()
    else this.#opts.onOversize?.()
    this.#passing = true
    const out = this.#chunks.length === 0 ? chunk : Buffer.concat([...this.#chunks, chunk], this.#size + chunk.length)
    this.#chunks = []
    this.#release()
    cb(null, out)
  }

  /** Gives the held bytes back to the shared budget. */
  #release (): void {
    if (this.#taken === 0) return
    this.#opts.held?.give(this.#taken)
    this.#taken = 0
  }

  override _destroy (err: Error | null, cb: (error?: Error | null) => void): void {
    this.#chunks = []
    this.#release()
    cb(err)
  }

  override _flush (cb: TransformCallback): void {
    if (this.#passing) {
      cb()
      return
    }
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#size)
    this.#chunks = []
    const out = this.#rewritten(body) ?? body
    settle(() => this.#opts.beforeEnd?.(), this.#opts.onError, () => {
      this.#opts.onLength?.(out.length)
      this.#release()
      cb(null, out)
    })
  }

  #rewritten (body: Buffer): Buffer | undefined {
    if (body.length === 0) return undefined
    let value: unknown
    try {
      value = JSON.parse(body.toString('utf8'))
    } catch {
      return undefined // not JSON after all: untouched
    }
    try {
      const result = this.#opts.rewrite(value)
      return result === undefined ? undefined : Buffer.from(JSON.stringify(result))
    } catch (err) {
      this.#opts.onError?.(err)
      return undefined
    }
  }
}
