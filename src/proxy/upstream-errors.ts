/**
 * Maps what undici throws to what the client sees: refused, reset, DNS → 502; any timeout → 504.
 * The client never sees undici's text (it can name internal hosts); the log gets the code.
 */
import {
  UpstreamProtocolError, UpstreamTimeoutError, UpstreamTlsError, UpstreamUnreachableError
} from '../errors.js'

export interface UpstreamFailure {
  error: Error
  /** short class for logs and metrics */
  errorClass: string
  /** internal detail (error code), for the log only */
  detail: string
  status: number
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'ESOCKETTIMEDOUT'])
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO/

/** Only string codes count: an AbortError (a DOMException) carries the number 20 as `code`. */
function codeOf (err: unknown): string {
  const e = err as { code?: unknown, cause?: { code?: unknown } } | null
  if (typeof e?.code === 'string') return e.code
  if (typeof e?.cause?.code === 'string') return e.cause.code
  return 'UNKNOWN'
}

export function classifyUpstreamError (err: unknown): UpstreamFailure {
  const code = codeOf(err)
  if (TIMEOUT_CODES.has(code)) {
    const errorClass = code === 'UND_ERR_CONNECT_TIMEOUT' ? 'upstream_connect_timeout' : code === 'UND_ERR_BODY_TIMEOUT' ? 'upstream_idle_timeout' : 'upstream_first_byte_timeout'
    return { error: new UpstreamTimeoutError(), errorClass, detail: code, status: 504 }
  }
  // the gateway's own stage failed on the body: the exchange was ended by it (src/proxy/exchange.ts)
  if (code === 'GW_STREAM_FAULT') return { error: new UpstreamProtocolError(), errorClass: 'gateway_stream_fault', detail: code, status: 502 }
  // a body its content-encoding does not decode (zlib's Z_DATA_ERROR, a truncated brotli stream)
  if (code.startsWith('Z_') || code.startsWith('ERR_BROTLI') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') {
    return { error: new UpstreamProtocolError(), errorClass: 'upstream_bad_encoding', detail: code, status: 502 }
  }
  if (TLS_CODE.test(code)) return { error: new UpstreamTlsError(), errorClass: 'upstream_tls', detail: code, status: 502 }
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_HEADERS_OVERFLOW') {
    return { error: new UpstreamProtocolError(), errorClass: 'upstream_protocol', detail: code, status: 502 }
  }
  const errorClass = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'upstream_dns' : code === 'ECONNREFUSED' ? 'upstream_refused' : 'upstream_reset'
  return { error: new UpstreamUnreachableError(), errorClass, detail: code, status: 502 }
}

/** The last event of a stream that failed mid-way, in the stream's own dialect. */
export function streamErrorEvent (failure: UpstreamFailure, anthropic: boolean): string {
  const message = failure.status === 504 ? 'The upstream stream stalled and was ended by the gateway' : 'The upstream stream was interrupted'
  if (anthropic) {
    return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'api_error', message } })}\n\n`
  }
  return `data: ${JSON.stringify({ error: { message, type: 'upstream_error', code: failure.errorClass } })}\n\n`
}
