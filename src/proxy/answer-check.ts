/**
 * Upstream answers checked for configured secrets before a client sees them. An upstream that
 * refuses a key often names it (`Incorrect API key provided: sk-…`), and a debugging upstream may
 * echo it in a header (`X-Debug-Auth`): the operator's key would reach the client.
 *
 * - Response headers: every value goes through the secret filter (clientResponseHeaders).
 * - Error bodies (any status from 300 on, but 304): held whole, up to ERROR_BODY_BOUND, decoded when
 *   compressed, filtered, then relayed with an exact length. Held whole so that a secret split
 *   across two chunks is found. An error body larger than the bound, or in an encoding the gateway
 *   cannot read, is not relayed: 502.
 * - 2xx bodies pass untouched: streams and large answers cost nothing here.
 */
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib'
import type { SecretFilter } from '../lib/secret-filter.js'
import type { UpstreamExchange } from './exchange.js'

/**
 * Error bodies are small (OpenAI's and Anthropic's are under 1 KiB, an HTML error page from a
 * proxy in front of an upstream a few KiB); the bound caps what one held answer can cost.
 */
export const ERROR_BODY_BOUND = 256 * 1024

/** Answers whose body is checked: errors and redirects (a 304 has no body to check). */
export function isErrorStatus (status: number): boolean {
  return status >= 300 && status !== 304
}

/** Reads the whole body, or null (the upstream aborted) when it grows past `bound`. */
export function holdBody (exchange: UpstreamExchange, bound: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    exchange.attach({
      data (chunk) {
        if (over) return true
        size += chunk.length
        if (size > bound) {
          over = true
          exchange.abort()
          resolve(null)
          return true
        }
        chunks.push(chunk)
        return true
      },
      end () { if (!over) resolve(Buffer.concat(chunks, size)) },
      error (err) { if (!over) reject(err) }
    })
  })
}

const DECODERS: Record<string, (body: Buffer, bound: number) => Buffer> = {
  gzip: (body, bound) => gunzipSync(body, { maxOutputLength: bound }),
  'x-gzip': (body, bound) => gunzipSync(body, { maxOutputLength: bound }),
  // zlib-wrapped as RFC 9110 says, or raw as some servers send it
  deflate: (body, bound) => {
    try {
      return inflateSync(body, { maxOutputLength: bound })
    } catch {
      return inflateRawSync(body, { maxOutputLength: bound })
    }
  },
  br: (body, bound) => brotliDecompressSync(body, { maxOutputLength: bound })
}

/**
 * A held answer body, readable (decoded when `encoding` names a compression) and without any
 * configured secret; null when it cannot be read (an unknown encoding, a broken or oversized
 * compressed body). A decoded body is plain: the caller drops `content-encoding`.
 */
export function checkedBody (body: Buffer, encoding: string | string[] | undefined, secrets: SecretFilter): Buffer | null {
  let plain = body
  if (encoding !== undefined && body.length > 0) {
    const name = (Array.isArray(encoding) ? encoding.join(',') : encoding).trim().toLowerCase()
    if (name !== '' && name !== 'identity') {
      const decode = DECODERS[name]
      if (decode === undefined) return null
      try {
        plain = decode(body, ERROR_BODY_BOUND)
      } catch {
        return null
      }
    }
  }
  return secrets.redactBuffer(plain)
}
