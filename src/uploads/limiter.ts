/**
 * A counting pass-through for streamed request bodies: every byte goes on unchanged, and the
 * stream errors with a coded 413 as soon as a limit is crossed, before the chunk that crossed it
 * is passed on. Multipart bodies are teed into busboy, which only counts (files are drained, not
 * kept), so file size, file count, field count and field size are known while the body streams.
 *
 * A body busboy cannot parse (no boundary, malformed parts) keeps streaming with only the total
 * size counted: the upstream is the judge of a malformed form, and the total limit still holds.
 *
 * `fieldCheck` sees each field as it is parsed (the model check of a restricted key): a field is
 * complete only once the boundary after it arrived, so a refusal always comes before the upstream
 * has the whole form, and it never gets the rest.
 *
 * With a `ModelFieldHold`, nothing is passed on until the form's `model` field was read: an Azure
 * target names the deployment in the path, and clients often send the file first (the OpenAI Node
 * SDK and `curl -F` keep the caller's order). What came before the field is kept in memory, up to
 * a bound, and then passed on with the rest; `modelField` tells the value.
 */
import { Transform, type TransformCallback } from 'node:stream'
import type { IncomingHttpHeaders } from 'node:http'
import busboy, { type Busboy } from 'busboy'
import {
  UploadFieldTooLargeError, UploadFileTooLargeError, UploadModelFieldLateError, UploadTooManyFieldsError, UploadTooManyFilesError,
  UploadTotalTooLargeError
} from '../errors.js'

export interface UploadLimits {
  maxTotalBytes: number
  maxFileBytes: number
  maxFiles: number
  maxFields: number
  maxFieldBytes: number
}

/** What the body held so far (for logs and tests). */
export interface UploadCounts {
  bytes: number
  files: number
  fields: number
}

const CHUNK = 64 * 1024

/** A check of each form field as it is parsed: an error refuses the body before it is complete. */
export type FieldCheck = (name: string, value: string) => Error | null

/** Holding a form back until its `model` field: at most `maxBytes` are kept, a 400 beyond. */
export interface ModelFieldHold {
  maxBytes: number
}

export function isMultipart (headers: IncomingHttpHeaders): boolean {
  return (headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
}

export class UploadLimiter extends Transform {
  readonly counts: UploadCounts = { bytes: 0, files: 0, fields: 0 }
  readonly #limits: UploadLimits
  #parser: Busboy | null = null
  /** the limit error busboy reported while parsing the current chunk */
  #tripped: Error | null = null
  readonly #fieldCheck: FieldCheck | null
  /**
   * With a hold: the form's `model` field, or null when the form ended (or could not be parsed)
   * without one; rejected with the refusal when the body was refused (or cut) before the field.
   */
  readonly modelField: Promise<string | null> | null = null
  /** held chunks, until the model field was read; null when nothing is held */
  #held: Buffer[] | null = null
  #heldBytes = 0
  #holdMax = 0
  /** the model field's value once parsed (undefined: not yet) */
  #heldModel: string | undefined = undefined
  #settle: ((model: string | null) => void) | null = null
  #fail: ((err: Error) => void) | null = null

  constructor (headers: IncomingHttpHeaders, limits: UploadLimits, fieldCheck: FieldCheck | null = null, hold: ModelFieldHold | null = null) {
    super({ highWaterMark: CHUNK })
    this.#limits = limits
    this.#fieldCheck = fieldCheck
    if (isMultipart(headers)) this.#parser = this.#startParser(headers)
    if (hold !== null) {
      if (this.#parser === null || hold.maxBytes === 0) {
        this.modelField = Promise.resolve(null)
      } else {
        this.#held = []
        this.#holdMax = hold.maxBytes
        this.modelField = new Promise((resolve, reject) => { this.#settle = resolve; this.#fail = reject })
        // awaited by the forwarder, unless the request was refused before it got there
        this.modelField.catch(() => {})
      }
    }
  }

  #startParser (headers: IncomingHttpHeaders): Busboy | null {
    const limits = this.#limits
    let parser: Busboy
    try {
      parser = busboy({
        headers,
        // busboy reports a size limit on *reaching* it: +1 lets a file or value of exactly max bytes
        // pass. Its count limits fire on the first part past the limit, as wanted.
        limits: {
          fileSize: limits.maxFileBytes + 1,
          fieldSize: limits.maxFieldBytes + 1,
          files: limits.maxFiles,
          fields: limits.maxFields,
          fieldNameSize: 1024
        }
      })
    } catch {
      return null // no usable boundary: total size only
    }
    parser.on('file', (_name, file, _info) => {
      this.counts.files++
      file.once('limit', () => this.#trip(new UploadFileTooLargeError(limits.maxFileBytes)))
      file.on('error', () => {}) // a body cut short ends the file with an error: nothing to do
      file.resume() // counted by busboy, never kept
    })
    parser.on('field', (name, value, info) => {
      this.counts.fields++
      if (this.#held !== null && this.#heldModel === undefined && name.toLowerCase() === 'model') this.#heldModel = value
      if (info.valueTruncated) this.#trip(new UploadFieldTooLargeError(limits.maxFieldBytes))
      const refused = this.#fieldCheck?.(name, value) ?? null
      if (refused !== null) this.#trip(refused)
    })
    parser.once('filesLimit', () => this.#trip(new UploadTooManyFilesError(limits.maxFiles)))
    parser.once('fieldsLimit', () => this.#trip(new UploadTooManyFieldsError(limits.maxFields)))
    parser.on('error', () => { this.#parser = null })
    return parser
  }

  #trip (err: Error): void {
    this.#tripped ??= err
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.counts.bytes += chunk.length
    if (this.counts.bytes > this.#limits.maxTotalBytes) {
      cb(new UploadTotalTooLargeError(this.#limits.maxTotalBytes))
      return
    }
    const parser = this.#parser
    if (parser === null) {
      // a form that cannot be parsed has no model field to wait for
      if (this.#held !== null) this.#release(null)
      cb(null, chunk)
      return
    }
    // the write callback runs once busboy has parsed the chunk (and fired its limit events)
    parser.write(chunk, () => {
      if (this.#tripped !== null) cb(this.#tripped)
      else if (this.#held === null) cb(null, chunk)
      else this.#hold(chunk, cb)
    })
  }

  /** Keeps a chunk back until the model field was read; then it and all before it go on. */
  #hold (chunk: Buffer, cb: TransformCallback): void {
    const held = this.#held as Buffer[]
    held.push(chunk)
    this.#heldBytes += chunk.length
    if (this.#heldModel !== undefined) {
      this.#release(this.#heldModel)
      cb()
    } else if (this.#heldBytes > this.#holdMax) {
      cb(new UploadModelFieldLateError(this.#holdMax))
    } else {
      cb()
    }
  }

  #release (model: string | null): void {
    const held = this.#held ?? []
    this.#held = null
    this.#heldBytes = 0
    for (const chunk of held) this.push(chunk)
    this.#settle?.(model)
    this.#settle = this.#fail = null
  }

  override _flush (cb: TransformCallback): void {
    const parser = this.#parser
    if (parser === null) {
      if (this.#held !== null) this.#release(null)
      cb()
      return
    }
    // a form cut short is the upstream's to refuse: parse errors only stop the counting
    parser.end(() => {
      if (this.#tripped === null && this.#held !== null) this.#release(this.#heldModel ?? null)
      cb(this.#tripped)
    })
  }

  override _destroy (err: Error | null, cb: (error?: Error | null) => void): void {
    this.#parser?.destroy()
    this.#parser = null
    if (this.#held !== null) {
      this.#held = null
      this.#fail?.(err ?? new Error('the upload ended before its model field'))
      this.#settle = this.#fail = null
    }
    cb(err)
  }
}
