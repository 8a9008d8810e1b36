/**
 * The gateway's own reading of a multipart form's framing and part headers, beside busboy's
 * (@fastify/busboy) on the same bytes. It serves two ends.
 *
 * Strictness, for keys restricted to some models. Parsers read some forms differently: LF-only
 * line endings and delimiters (werkzeug and others), the last of two Content-Disposition lines or
 * two `name` parameters (Starlette; busboy takes the first line and the last parameter), an RFC
 * 2231 `name*=UTF-8''model` (busboy reads it as the name `model`, others ignore it), a part busboy
 * skips because its disposition is malformed or not `form-data`. A form whose model another
 * parser could read otherwise must not pass, so for such a key only an unambiguous form is accepted:
 * - every `--boundary` in the body is a delimiter: at the start of a line (CRLF before it, or the
 *   body's start), followed by CRLF, or by `--` once, at the end;
 * - a part's header lines end in CRLF (no bare CR or LF, no folded lines), none starts with the
 *   delimiter, and they fit 16 KiB and busboy's 2000 header lines;
 * - each part has one Content-Disposition, of type `form-data`, with one plain `name` parameter
 *   and no `name*`;
 * - the content type names one boundary.
 * The caller compares the parts counted here with the parts busboy reported, so a part busboy
 * skipped cannot pass unseen either.
 *
 * Part names, for every form. Busboy's name for a part is used only when it is the plain name
 * read here (`nextName`): a part named only by `name*` (or by two dispositions) names no field, in
 * any set-up. For that the parts read here pair up with the parts busboy reports, in order: a
 * part without a `form-data` disposition is one busboy skips, and the pairing holds while the
 * framing is plain; where it is not (a form no upstream reads as busboy does anyway), the parts
 * after it have no name.
 */
import type { IncomingHttpHeaders } from 'node:http'

const CR = 13
const LF = 10
const DASH = 45
const CRLF = Buffer.from('\r\n')
/** bound on a part's header block (the limiter gives busboy the same) */
export const MAX_HEADER_BYTES = 16 * 1024
/** busboy's bound on a part's header lines (its `headerPairs`): a disposition after them is not read */
const MAX_HEADER_LINES = 2000
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** one `; name=value` parameter, the value a token or a quoted string (sticky: matched in sequence) */
const PARAMETER = /[ \t]*;[ \t]*([^\s;=]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;"]*)/y

/** The `boundary` of a multipart content type when it names exactly one, plainly; null otherwise. */
export function singleBoundary (contentType: string): string | null {
  const semi = contentType.indexOf(';')
  if (semi === -1) return null
  const params = parameters(contentType.slice(semi))
  if (params === null) return null
  const found = params.filter(([name]) => name === 'boundary' || name === 'boundary*')
  if (found.length !== 1 || found[0][0] !== 'boundary') return null
  const value = unquote(found[0][1].trim())
  return value.length > 0 && value.length <= 70 ? value : null
}

/** `; a=1; b="x;y"` → [['a', '1'], ['b', '"x;y"']], names lower-cased; null when malformed. */
function parameters (text: string): Array<[string, string]> | null {
  const out: Array<[string, string]> = []
  PARAMETER.lastIndex = 0
  let end = 0
  for (let m = PARAMETER.exec(text); m !== null; m = PARAMETER.exec(text)) {
    out.push([m[1].toLowerCase(), m[2]])
    end = PARAMETER.lastIndex
  }
  return text.slice(end).trim() === '' ? out : null
}

function unquote (value: string): string {
  return value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value
}

/** A parameter value as busboy gives it: unquoted, and read as UTF-8 when it is not ASCII. */
function paramValue (raw: string): string {
  const value = unquote(raw.trim())
  return /[\u0080-\u00ff]/.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value
}

/**
 * A part's header lines as busboy reads them: `skipped` (no Content-Disposition, or not
 * `form-data`: busboy reports no such part), or reported with the name the lines give it plainly
 * (one disposition with one `name`, no `name*`; null otherwise). Null when how busboy reads them
 * cannot be told here: the parts no longer pair up.
 */
function readPart (lines: readonly string[]): 'skipped' | { name: string | null } | null {
  if (lines.length > MAX_HEADER_LINES) return null
  const dispositions: string[] = []
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return null
    if (line.slice(0, colon).toLowerCase() !== 'content-disposition') continue
    // busboy drops one blank after the colon
    const raw = line.slice(colon + 1)
    dispositions.push(raw[0] === ' ' || raw[0] === '\t' ? raw.slice(1) : raw)
  }
  if (dispositions.length === 0) return 'skipped'
  const first = dispositions[0]
  // busboy skips a part whose `*` parameter decodes to a line break
  if (/%0[ad]/i.test(first)) return null
  const semi = first.indexOf(';')
  const typeText = semi === -1 ? first : first.slice(0, semi)
  if (typeText.includes('"') || typeText.includes('\\')) return null
  // busboy's parameter reader drops blanks, unless there are no parameters
  const type = semi === -1 ? typeText : typeText.replace(/[ \t]/g, '')
  if (type.toLowerCase() !== 'form-data') return 'skipped'
  if (dispositions.length !== 1 || semi === -1) return { name: null }
  const params = parameters(first.slice(semi))
  if (params === null) return { name: null }
  let name: string | null = null
  let names = 0
  for (const [param, raw] of params) {
    if (param === 'name*') return { name: null }
    if (param === 'name') {
      names++
      name = paramValue(raw)
    }
  }
  return { name: names === 1 ? name : null }
}

/** How many of `buf`'s last bytes may be the start of a delimiter (a proper prefix of it). */
function delimiterStart (buf: Buffer, delimiter: Buffer): number {
  for (let k = Math.min(delimiter.length - 1, buf.length); k > 0; k--) {
    const at = buf.length - k
    if (buf[at] === DASH && buf.subarray(at).equals(delimiter.subarray(0, k))) return k
  }
  return 0
}

type State = 'body' | 'header' | 'closed'

export class FormFraming {
  /** parts whose header block was read */
  parts = 0
  /** the names of the parts busboy reports (null: not read plainly), in order, until the limiter takes them */
  readonly #names: Array<string | null> = []
  /** a part whose header block was read, until its content shows busboy read that block too */
  #unconfirmed: { name: string | null } | null = null
  readonly #delimiter: Buffer
  #state: State = 'body'
  /** bytes not yet decided on */
  #pending: Buffer = Buffer.alloc(0)
  /** the two bytes before #pending (-1: none); the body starts as if after a CRLF, as busboy reads it */
  #before2 = CR
  #before1 = LF
  #headerLines: string[] = []
  #headerBytes = 0
  /** not read plainly: refused for a restricted key */
  #bad = false
  /** the framing is not plain: the parts here and busboy's no longer pair up, reading stopped */
  #lost = false

  /** Null when the content type does not name one boundary plainly. */
  static for (headers: IncomingHttpHeaders): FormFraming | null {
    const boundary = singleBoundary(headers['content-type'] ?? '')
    return boundary === null ? null : new FormFraming(boundary)
  }

  constructor (boundary: string) {
    this.#delimiter = Buffer.from(`--${boundary}`, 'latin1')
  }

  /** Reads the next chunk; false once the form is one another parser could read otherwise. */
  push (chunk: Buffer): boolean {
    if (this.#lost) return false
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    for (;;) {
      const progressed = this.#state === 'header' ? this.#header() : this.#body()
      if (this.#lost || !progressed) return !this.#bad
    }
  }

  /**
   * The plain name of the next part busboy reports, as read here: null when it has none, or when
   * the parts no longer pair up. Called once for each part busboy reports, in order.
   */
  nextName (): string | null {
    return this.#names.shift() ?? null
  }

  /** Whether the form ended properly: its closing delimiter read, nothing ambiguous before. */
  end (): boolean {
    return !this.#bad && this.#state === 'closed'
  }

  /** A framing that is not plain: refused for a restricted key, and the parts no longer pair up. */
  #fail (): boolean {
    this.#bad = this.#lost = true
    return false
  }

  /** Drops `n` decided bytes, remembering the last two of them. */
  #consume (n: number): void {
    const buf = this.#pending
    if (n >= 2) {
      this.#before2 = buf[n - 2]
      this.#before1 = buf[n - 1]
    } else if (n === 1) {
      this.#before2 = this.#before1
      this.#before1 = buf[0]
    }
    this.#pending = buf.subarray(n)
  }

  /** Body (or preamble, or epilogue): looks for the next `--boundary`; true when it got past one. */
  #body (): boolean {
    const buf = this.#pending
    const delimiter = this.#delimiter
    if (this.#unconfirmed !== null) {
      // a delimiter right after a header block ends the part for busboy before its header did
      // (it takes the block's last CRLF as the delimiter's): busboy reports no such part
      const n = Math.min(buf.length, delimiter.length)
      if (buf.subarray(0, n).equals(delimiter.subarray(0, n))) return n === delimiter.length ? this.#fail() : false
      this.#names.push(this.#unconfirmed.name)
      this.#unconfirmed = null
    }
    const i = buf.indexOf(delimiter)
    if (i === -1) {
      // what may be the start of a delimiter stays (seldom anything: the next chunk is then read
      // where it lies, not copied behind the rest)
      this.#consume(buf.length - delimiterStart(buf, delimiter))
      return false
    }
    // after the closing delimiter, a delimiter is one a lenient parser might still follow
    if (this.#state === 'closed') return this.#fail()
    const p2 = i >= 2 ? buf[i - 2] : i === 1 ? this.#before1 : this.#before2
    const p1 = i >= 1 ? buf[i - 1] : this.#before1
    if (p2 !== CR || p1 !== LF) return this.#fail()
    const after = i + delimiter.length
    if (buf.length < after + 2) {
      this.#consume(i)
      return false
    }
    if (buf[after] === DASH && buf[after + 1] === DASH) {
      this.#state = 'closed'
    } else if (buf[after] === CR && buf[after + 1] === LF) {
      this.#state = 'header'
      this.#headerLines = []
      this.#headerBytes = 0
    } else {
      return this.#fail()
    }
    this.#consume(after + 2)
    return true
  }

  /** A part's header lines, up to the empty line; true when the block ended. */
  #header (): boolean {
    let buf = this.#pending
    for (;;) {
      const eol = buf.indexOf(CRLF)
      if (eol === -1) {
        this.#pending = buf
        return this.#headerBytes + buf.length > MAX_HEADER_BYTES ? this.#fail() : false
      }
      this.#headerBytes += eol + 2
      if (this.#headerBytes > MAX_HEADER_BYTES) return this.#fail()
      const line = buf.subarray(0, eol)
      buf = buf.subarray(eol + 2)
      if (line.length === 0) break
      if (line.includes(CR) || line.includes(LF) || line[0] === 32 || line[0] === 9) return this.#fail()
      // after a CRLF, the delimiter ends the part for busboy, in a header block too
      if (line.subarray(0, this.#delimiter.length).equals(this.#delimiter)) return this.#fail()
      this.#headerLines.push(line.toString('latin1'))
    }
    const part = readPart(this.#headerLines)
    if (part === null) return this.#fail()
    if (part === 'skipped' || part.name === null) this.#bad = true
    if (part !== 'skipped') this.#unconfirmed = part
    this.parts++
    this.#pending = buf
    // the part's content starts here, not after a CRLF of its own: a delimiter right away is one
    // busboy reads differently (see #body)
    this.#before2 = this.#before1 = -1
    this.#state = 'body'
    return true
  }
}
