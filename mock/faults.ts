import type { Exchange } from './exchange.js'
import { SSE_HEADERS, sendText } from './respond.js'

const BIG_HEADER_BYTES = 1024 * 1024

/** Body the `garbage` fault serves as application/json. */
export const GARBAGE_BODY = '<html>502 Bad Gateway</html>\u0000\u00ff{"not":json'

/**
 * Body of the `invalid-sse` fault: one valid chunk, then a truncated JSON
 * payload, a line without a field name and a non-JSON data line; no [DONE].
 */
export const INVALID_SSE_BODY =
  'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","created":0,"model":"mock","choices":[{"index":0,"delta":{"content":"tok0 "},"finish_reason":null}]}\n\n' +
  'data: {"id":"chatcmpl-broken","choices":[{"index":0,"delta":{"content":\n\n' +
  'this line has no field name\n\n' +
  'data: {not json}\n\n'

let bigHeaderValue: string | undefined

/**
 * Declares a content-length 1000 bytes larger than the body, then closes the
 * connection. Written straight to the socket because Node's response object
 * would either refuse the mismatch or keep the connection waiting for bytes.
 */
function wrongContentLength (ex: Exchange): void {
  const body = '{"id":"chatcmpl-short","object":"chat.completion"'
  const head = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(body) + 1000}\r\nconnection: close\r\n\r\n`
  ex.res.socket?.end(head + body)
}

/**
 * Applies `x-mock-fault` kinds that change the whole answer; returns true
 * when the response is fully handled. `reset-before-headers` is dealt with
 * before the body is even read, and the `*-mid-stream` kinds by the pacer
 * and `sendJson`.
 */
export function applyFault (ex: Exchange): boolean {
  switch (ex.controls.fault) {
    case 'hang-before-headers':
      // Never answer: the socket stays open until the client gives up or the mock closes.
      return true
    case 'garbage':
      sendText(ex.res, 200, 'application/json', GARBAGE_BODY)
      return true
    case 'invalid-sse':
      ex.res.writeHead(200, SSE_HEADERS)
      ex.res.end(INVALID_SSE_BODY)
      return true
    case 'wrong-content-length':
      wrongContentLength(ex)
      return true
    case 'big-header':
      // Decorates whatever answer follows.
      bigHeaderValue ??= 'x'.repeat(BIG_HEADER_BYTES)
      ex.res.setHeader('x-mock-big-header', bigHeaderValue)
      return false
    default:
      return false
  }
}
