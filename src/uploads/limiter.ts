/**
 * A counting pass-through for streamed request bodies: every byte goes on unchanged, and the
 * stream errors with a coded 413 as soon as a limit is crossed, before the chunk that crossed it
 * is passed on. Multipart bodies are teed into busboy (@fastify/busboy), which only counts (files
 * are drained, not kept), so file size, file count, field count and field size are known while the
 * body streams. A part's name is taken from busboy only where the gateway's own reading of the
 * part's header (form-framing.ts) gives the same: busboy also reads an RFC 2231 `name*=` as the
 * name, which other parsers ignore, so such a part names no field (no `model` field either).
 *
 * A body busboy cannot parse (no boundary, malformed parts) keeps streaming with only the total
 * size counted: the upstream is the judge of a malformed form, and the total limit still holds.
 *
 * With a `FormCheck` (the model check of a restricted key) the form is read strictly instead: each
 * field is checked as it is parsed (a field is complete only once the boundary after it arrived,
 * so a refusal comes before the upstream has the whole form, and it never gets the rest), and a
 * form the gateway cannot read as every upstream would (form-framing.ts), that busboy cannot
 * parse, or with a part busboy skipped or could not name, is refused. The last chunk is kept back
 * until busboy and the framing both saw the form end properly, so the upstream never has a whole
 * form that was refused at its end.
 *
 * No listener on busboy's events may throw out of it (src/lib/guarded.ts): busboy calls them from
 * inside `write()`, and a throw there would stop the process. A throw fails this upload with a
 * 500 (`UploadCheckFailedError`, the throw as its cause).
 *
 * With a `ModelFieldHold`, nothing is passed on until the form's `model` field was read: an Azure
 * target names the deployment in the path, and clients often send the file first (the OpenAI Node
 * SDK and `curl -F` keep the caller's order). What came before the field is kept in memory, up to
 * a bound, and then passed on with the rest; `modelField` tells the value.
 */
import { Transform, type TransformCallback } from 'node:stream'
import type { IncomingHttpHeaders } from 'node:http'
import { Busboy, type BusboyHeaders, type BusboyInstance } from '@fastify/busboy'
import {
  UploadCheckFailedError, UploadFieldTooLargeError, UploadFileTooLargeError, UploadModelFieldLateError, UploadTooManyFieldsError,
  UploadTooManyFilesError, UploadTotalTooLargeError
} from '../errors.js'
import { guarded } from '../lib/guarded.js'
import { FormFraming, MAX_HEADER_BYTES } from './form-framing.js'

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

/** The strict reading of a form for a restricted key (src/auth/allowed-models.ts, `formModelCheck`). */
export interface FormCheck {
  /** each named field as it is parsed: an error refuses the body before it is complete */
  field: (name: string, value: string) => Error | null
  /** the refusal of a form the gateway cannot read as every upstream would */
  unreadable: () => Error
}

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
  #parser: BusboyInstance | null = null
  /** the limit error busboy reported while parsing the current chunk */
  #tripped: Error | null = null
  readonly #check: FormCheck | null
  /** the gateway's own reading of the form beside busboy's (null when the content type names no single boundary) */
  readonly #framing: FormFraming | null = null
  /** with a check: the chunk kept back until the form's end was seen */
  #last: Buffer | null = null
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
  /** told each `model` field's value as it is parsed (the request's model in its usage record) */
  onModelField: ((value: string) => void) | null = null
  #fail: ((err: Error) => void) | null = null

  constructor (headers: IncomingHttpHeaders, limits: UploadLimits, check: FormCheck | null = null, hold: ModelFieldHold | null = null) {
    super({ highWaterMark: CHUNK })
    this.#limits = limits
    this.#check = check
    if (isMultipart(headers)) {
      this.#parser = this.#startParser(headers)
      this.#framing = FormFraming.for(headers)
    }
    if (check !== null && (this.#parser === null || this.#framing === null)) this.#trip(check.unreadable())
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

  #startParser (headers: IncomingHttpHeaders): BusboyInstance | null {
    const limits = this.#limits
    let parser: BusboyInstance
    try {
      parser = Busboy({
        headers: headers as BusboyHeaders,
        // busboy reports a size limit once it is crossed, and its count limits on the first part
        // past them: a file or value of exactly max bytes passes
        limits: {
          fileSize: limits.maxFileBytes,
          fieldSize: limits.maxFieldBytes,
          files: limits.maxFiles,
          fields: limits.maxFields,
          headerSize: MAX_HEADER_BYTES
        }
      })
    } catch {
      return null // no usable boundary: total size only
    }
    const guard = <A extends unknown[]>(listener: (...args: A) => void): (...args: A) => void => guarded(listener, (err) => this.#failed(err))
    parser.on('file', guard((name: string | undefined, file: NodeJS.ReadableStream) => {
      this.counts.files++
      const named = this.#partName(name)
      file.once('limit', guard(() => this.#trip(new UploadFileTooLargeError(limits.maxFileBytes))))
      file.on('error', () => {}) // a body cut short ends the file with an error: nothing to do
      file.resume() // counted by busboy, never kept
      if (named === null) this.#unreadable()
    }))
    parser.on('field', guard((name: string | undefined, value: string, _nameTruncated: boolean, valueTruncated: boolean) => {
      this.counts.fields++
      if (valueTruncated) this.#trip(new UploadFieldTooLargeError(limits.maxFieldBytes))
      // a part without a plain, non-empty name="…" (no name, name="", name*=…) is no model
      // field, and for a restricted key it is one an upstream may read otherwise
      const named = this.#partName(name)
      if (named === null) {
        this.#unreadable()
        return
      }
      if (named.toLowerCase() === 'model') {
        if (this.#held !== null && this.#heldModel === undefined) this.#heldModel = value
        this.onModelField?.(value)
      }
      const refused = this.#check?.field(named, value) ?? null
      if (refused !== null) this.#trip(refused)
    }))
    parser.once('filesLimit', guard(() => this.#trip(new UploadTooManyFilesError(limits.maxFiles))))
    parser.once('fieldsLimit', guard(() => this.#trip(new UploadTooManyFieldsError(limits.maxFields))))
    parser.on('error', guard(() => {
      this.#parser = null
      this.#unreadable()
    }))
    return parser
  }

  /**
   * The name of the part busboy reports now, when the gateway's own reading of its header gives the
   * same, plain and not empty; else null. Called once for each part busboy reports.
   */
  #partName (busboyName: string | undefined): string | null {
    const plain = this.#framing?.nextName() ?? null
    return plain !== null && plain !== '' && plain === busboyName ? plain : null
  }

  #trip (err: Error): void {
    this.#tripped ??= err
  }

  /** For a restricted key, a form the gateway cannot read as every upstream would is refused. */
  #unreadable (): void {
    if (this.#check !== null) this.#trip(this.#check.unreadable())
  }

  /** A listener threw: this upload fails (500), with the throw as the cause for the log line. */
  #failed (err: unknown): void {
    this.#trip(new UploadCheckFailedError({ cause: err }))
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // a throw from here would unwind into the client socket's 'data' listener and stop the
    // process: this upload fails instead, and the callback is answered once
    let answered = false
    const answer: TransformCallback = (err, data) => {
      if (answered) return
      answered = true
      cb(err, data)
    }
    const fail = (err: unknown): void => {
      this.#failed(err)
      answer(this.#tripped)
    }
    try {
      this.#take(chunk, answer, fail)
    } catch (err) {
      fail(err)
    }
  }

  #take (chunk: Buffer, cb: TransformCallback, fail: (err: unknown) => void): void {
    this.counts.bytes += chunk.length
    if (this.counts.bytes > this.#limits.maxTotalBytes) {
      cb(new UploadTotalTooLargeError(this.#limits.maxTotalBytes))
      return
    }
    if (this.#framing !== null && !this.#framing.push(chunk)) this.#unreadable()
    if (this.#tripped !== null) {
      cb(this.#tripped)
      return
    }
    const parser = this.#parser
    if (parser === null) {
      // a form that cannot be parsed has no model field to wait for
      if (this.#held !== null) this.#release(null)
      cb(null, chunk)
      return
    }
    // the write callback runs once busboy has parsed the chunk (and fired its limit events),
    // later, from busboy's own stack
    parser.write(chunk, guarded(() => {
      if (this.#tripped !== null) cb(this.#tripped)
      else if (this.#held === null) this.#pass(chunk, cb)
      else this.#hold(chunk, cb)
    }, fail))
  }

  /** Passes a chunk on; with a check, the one before it, keeping this one back until the form's end. */
  #pass (chunk: Buffer, cb: TransformCallback): void {
    if (this.#check === null) {
      cb(null, chunk)
      return
    }
    const previous = this.#last
    this.#last = chunk
    cb(null, previous ?? undefined)
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

  /** Passes on every held chunk (with a check: all but the last, kept back as #pass does) and tells the model. */
  #release (model: string | null): void {
    const held = this.#held ?? []
    this.#held = null
    this.#heldBytes = 0
    if (this.#check !== null && held.length > 0) this.#last = held.pop() as Buffer
    for (const chunk of held) this.push(chunk)
    this.#settle?.(model)
    this.#settle = this.#fail = null
  }

  override _flush (cb: TransformCallback): void {
    const parser = this.#parser
    if (parser === null) {
      if (this.#held !== null) this.#release(null)
      this.#end(cb)
      return
    }
    // a form cut short is the upstream's to refuse: parse errors only stop the counting (and, for
    // a restricted key, refuse the form)
    const finished = guarded((err: unknown) => {
      parser.off('finish', finished)
      parser.off('error', finished)
      if (err != null) this.#unreadable()
      const framing = this.#framing
      if (this.#check !== null && framing !== null && (!framing.end() || framing.parts !== this.counts.files + this.counts.fields)) this.#unreadable()
      if (this.#tripped === null && this.#held !== null) this.#release(this.#heldModel ?? null)
      this.#end(cb)
    }, (err) => {
      this.#failed(err)
      cb(this.#tripped)
    })
    // busboy's 'finish' comes once every part was reported (end()'s callback may come before the
    // last field); a form cut short is an 'error' instead
    parser.once('finish', finished)
    parser.once('error', finished)
    parser.end()
  }

  /** The end of the body: the chunk kept back goes on, unless the form was refused at its end. */
  #end (cb: TransformCallback): void {
    if (this.#tripped !== null) {
      cb(this.#tripped)
      return
    }
    const last = this.#last
    this.#last = null
    if (last !== null) this.push(last)
    cb()
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
