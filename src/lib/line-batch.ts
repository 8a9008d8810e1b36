/**
 * Log lines gathered into one write of about 4 KiB, in front of a pino destination (sonic-boom).
 * sonic-boom batches on its own (`minLength`), but measures the byte length of its whole pending
 * buffer on every line, so its cost per line grows with the batch; here a line is one string
 * append, and the destination sees one write per batch. A quiet gateway still writes its lines
 * within `flushMs`; `flushSync` (at exit) and `end` write what is left.
 */
export interface BatchTarget {
  write: (chunk: string) => boolean
  flushSync: () => void
  flush?: (cb?: (err?: Error | null) => void) => void
  end: () => void
  destroyed?: boolean
}

export class LineBatch {
  readonly #target: BatchTarget
  readonly #size: number
  readonly #timer: NodeJS.Timeout
  #pending = ''

  constructor (target: BatchTarget, size = 4096, flushMs = 200) {
    this.#target = target
    this.#size = size
    this.#timer = setInterval(() => { this.#drain() }, flushMs).unref()
  }

  get destroyed (): boolean {
    return this.#target.destroyed === true
  }

  write (line: string): boolean {
    this.#pending += line
    if (this.#pending.length >= this.#size) this.#drain()
    return true
  }

  flushSync (): void {
    this.#drain()
    this.#target.flushSync()
  }

  flush (cb?: (err?: Error | null) => void): void {
    this.#drain()
    if (this.#target.flush !== undefined) this.#target.flush(cb)
    else cb?.()
  }

  end (): void {
    clearInterval(this.#timer)
    this.#drain()
    this.#target.end()
  }

  #drain (): void {
    if (this.#pending === '' || this.destroyed) return
    const batch = this.#pending
    this.#pending = ''
    this.#target.write(batch)
  }
}
