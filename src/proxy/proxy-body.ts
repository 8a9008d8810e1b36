/**
 * The request body as the gateway forwards it: owned by one object, changed only through its
 * methods, so no plugin has to know which flags another one set.
 *
 * A JSON body keeps the client's bytes and is forwarded byte for byte until something edits it.
 * An edit marks the parsed object to be serialised again; a member added to an unedited body is
 * spliced in before its closing brace instead (a long conversation is not serialised again for
 * one `stream_options`). A body the gateway does not read (multipart, audio) is a stream.
 */
import type { Readable } from 'node:stream'

type JsonObject = Record<string, unknown>

export class ProxyBody {
  /** the client's bytes (a JSON body), null for a streamed body */
  readonly raw: Buffer | null
  /** the request's stream to send upstream instead of the client socket (a counted upload) */
  readonly source: Readable | null
  #json: JsonObject | null
  #edited = false
  /** members to splice into `raw` (`"name":value`, comma-joined) while nothing else changed it */
  #additions: string | null = null

  private constructor (raw: Buffer | null, json: JsonObject | null, source: Readable | null) {
    this.raw = raw
    this.#json = json
    this.source = source
  }

  /** A JSON body as received; `json` is its top-level object, null when it is not one. */
  static json (raw: Buffer, json: JsonObject | null): ProxyBody {
    return new ProxyBody(raw, json, null)
  }

  /** A body streamed upstream as it arrives, through `source`. */
  static streamed (source: Readable): ProxyBody {
    return new ProxyBody(null, null, source)
  }

  /** The parsed top-level object; edit it through `edit`, `replace` or `addMember`. */
  get json (): Readonly<JsonObject> | null {
    return this.#json
  }

  /** The `model` member, when it is a string. */
  get model (): string | null {
    const model = this.#json?.model
    return typeof model === 'string' ? model : null
  }

  /** The client asked for an event stream (`"stream": true`). */
  get wantsStream (): boolean {
    return this.#json?.stream === true
  }

  /** The bytes to send differ from the client's. */
  get changed (): boolean {
    return this.#edited || this.#additions !== null
  }

  /** Runs `change` on the parsed object; the body is serialised again when it reports a change. */
  edit (change: (json: JsonObject) => boolean): boolean {
    const json = this.#json
    if (json === null || !change(json)) return false
    this.#edited = true
    return true
  }

  /** Replaces the parsed object (a rewrite that builds a new one). */
  replace (json: JsonObject): void {
    this.#json = json
    this.#edited = true
  }

  /** Sets a top-level member the body does not have yet (a member it has is changed with `edit`). */
  addMember (name: string, value: unknown): void {
    const json = this.#json
    if (json === null) throw new Error('addMember on a body that is not a JSON object')
    json[name] = value
    if (this.#edited || this.raw === null) {
      this.#edited = true
      return
    }
    const member = `${JSON.stringify(name)}:${JSON.stringify(value)}`
    this.#additions = this.#additions === null ? member : `${this.#additions},${member}`
  }

  /**
   * What goes upstream with the top-level member `name` set to `value`, leaving this body as it is:
   * each attempt of a model group starts from the same body and names its own model.
   */
  bytesWith (name: string, value: unknown): Buffer {
    const json = this.#json
    // (a member that already has this value: the bytes as they are, not serialised again)
    if (json === null || json[name] === value) return this.bytes()
    if (!(name in json)) return Buffer.from(JSON.stringify({ ...json, [name]: value }))
    // swapped in for the serialisation and back (no copy of the object): synchronous, so no
    // one else sees it
    const was = json[name]
    json[name] = value
    try {
      return Buffer.from(JSON.stringify(json))
    } finally {
      json[name] = was
    }
  }

  /** What goes upstream: the client's bytes, with added members, or the edited object serialised. */
  bytes (): Buffer {
    if (this.#edited && this.#json !== null) return Buffer.from(JSON.stringify(this.#json))
    const raw = this.raw ?? Buffer.alloc(0)
    return this.#additions !== null ? addJsonMembers(raw, this.#additions) : raw
  }
}

/**
 * `raw` (a JSON object, already parsed once) with `members` added before its closing brace: the
 * last `}` of a valid JSON object text is its own, only whitespace may follow it.
 */
export function addJsonMembers (raw: Buffer, members: string): Buffer {
  const end = raw.lastIndexOf(125 /* } */)
  let before = end - 1
  while (before >= 0 && (raw[before] === 32 || raw[before] === 10 || raw[before] === 13 || raw[before] === 9)) before--
  const empty = before >= 0 && raw[before] === 123 /* { */
  return Buffer.concat([raw.subarray(0, end), Buffer.from(empty ? members : `,${members}`), raw.subarray(end)])
}
