/**
 * Upload test material shared by the upload tests: deterministic payloads, their digest, and a
 * multipart form built by hand, so that a test decides the order of its parts (the OpenAI SDK
 * keeps the caller's order; some tests need the file before the fields, some after).
 */
import { createHash } from 'node:crypto'

/** `size` pseudo-random bytes, the same for the same seed. */
export function bytes (size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size)
  let x = seed
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

export function sha256 (buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex')
}

/** A form part: a `[name, value]` field, or a Buffer for the file part `file` (a.wav, audio/wav). */
export type FormPart = [string, string] | Buffer

/** The parts in the given order, with `boundary`; `type` is the request's content-type. */
export function multipartForm (parts: readonly FormPart[], boundary = '----gw-test-form'): { body: Buffer, type: string } {
  const out: Buffer[] = []
  for (const part of parts) {
    if (Buffer.isBuffer(part)) {
      out.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\ncontent-type: audio/wav\r\n\r\n`), part, Buffer.from('\r\n'))
    } else {
      out.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${part[0]}"\r\n\r\n${part[1]}\r\n`))
    }
  }
  out.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(out), type: `multipart/form-data; boundary=${boundary}` }
}

/** A part given by its header lines (each without its CRLF) and content. */
export interface RawPart { headers: readonly string[], content: string | Buffer }

/**
 * A form from raw parts: each part's header lines as given (any Content-Disposition, or none),
 * CRLF framing; `eol` replaces every CRLF of the framing (LF-only forms).
 */
export function rawForm (parts: readonly RawPart[], boundary = '----gw-raw-form', eol = '\r\n'): { body: Buffer, type: string } {
  const out: Buffer[] = []
  for (const part of parts) {
    out.push(Buffer.from(`--${boundary}${eol}${part.headers.map(h => h + eol).join('')}${eol}`), Buffer.from(part.content), Buffer.from(eol))
  }
  out.push(Buffer.from(`--${boundary}--${eol}`))
  return { body: Buffer.concat(out), type: `multipart/form-data; boundary=${boundary}` }
}
