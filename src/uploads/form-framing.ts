/**
 * A strict reading of a multipart form's framing, for keys restricted to some models.
 *
 * The gateway checks a form's `model` field as busboy reads it; upstream parsers are more lenient
 * and read some forms differently: LF-only line endings and delimiters (werkzeug and others), the
 * last of two Content-Disposition lines or two `name` parameters (Starlette, busboy takes the
 * first), an RFC 2231 `name*=UTF-8''model` (busboy ignores it), a part busboy skips because its
 * disposition is malformed. A form whose model another parser could read otherwise must not pass,
 * so for such a key only an unambiguous form is accepted:
 * - every `--boundary` in the body is a delimiter: at the start of a line (CRLF before it, or the
 *   body's start), followed by CRLF, or by `--` once, at the end;
 * - a part's header lines end in CRLF (no bare CR or LF, no folded lines) and fit busboy's 16 KiB;
 * - each part has one Content-Disposition with one plain `name` parameter and no `name*`;
 * - the content type names one boundary.
 * This runs beside busboy on the same bytes; the caller compares the parts counted here with the
 * parts busboy reported, so a part busboy skipped cannot pass unseen either.
 */
import type { IncomingHttpHeaders } from 'node:http'

const CR = 13
const LF = 10
const DASH = 45
const CRLF = Buffer.from('\r\n')
/** busboy's own bound on a part's header block: beyond it busboy refuses the form */
const MAX_HEADER_BYTES = 16 * 1024
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

/** Whether a part's header lines name it plainly: one Content-Disposition, one `name`, no `name*`. */
function plainlyNamed (lines: readonly string[]): boolean {
  let dispositions = 0
  let names = 0
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return false
    if (line.slice(0, colon).toLowerCase() !== 'content-disposition') continue
    dispositions++
    const value = line.slice(colon + 1)
    const semi = value.indexOf(';')
    const params = semi === -1 ? [] : parameters(value.slice(semi))
    if (params === null) return false
    for (const [name] of params) {
      if (name === 'name*') return false
      if (name === 'name') names++
    }
  }
  return dispositions === 1 && names === 1
}

type State = 'body' | 'header' | 'closed'

export class FormFraming {
  /** parts whose header block was read */
  parts = 0
  readonly #delimiter: Buffer
  #state: State = 'body'
  /** bytes not yet decided on */
  #pending: Buffer = Buffer.alloc(0)
  /** the two bytes before #pending (-1: none); the body starts as if after a CRLF, as busboy reads it */
  #before2 = CR
  #before1 = LF
  #headerLines: string[] = []
  #headerBytes = 0
  #bad = false

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
    if (this.#bad) return false
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    for (;;) {
      const progressed = this.#state === 'header' ? this.#header() : this.#body()
      if (this.#bad) return false
      if (!progressed) return true
    }
  }

  /** Whether the form ended properly: its closing delimiter read, nothing ambiguous before. */
  end (): boolean {
    return !this.#bad && this.#state === 'closed'
  }

  #fail (): boolean {
    this.#bad = true
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
    const i = buf.indexOf(delimiter)
    if (i === -1) {
      // what may be the start of a delimiter stays
      this.#consume(Math.max(0, buf.length - delimiter.length + 1))
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
      this.#headerLines.push(line.toString('latin1'))
    }
    if (!plainlyNamed(this.#headerLines)) return this.#fail()
    this.parts++
    this.#pending = buf
    // the part's content starts here, not after a CRLF of its own: a delimiter right away is one
    // busboy reads differently (it takes the header block's last CRLF as the delimiter's)
    this.#before2 = this.#before1 = -1
    this.#state = 'body'
    return true
  }
}
