import type { ServerResponse } from 'node:http'
import type { Exchange } from './exchange.js'

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache'
} as const

/** Writes a complete JSON response. `payload` is already serialised. */
export function writeJson (res: ServerResponse, status: number, payload: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload)
  })
  res.end(payload)
}

/**
 * Writes a JSON response, unless a `*-mid-stream` fault was asked for: then
 * only the first half of the body leaves (under the full content-length)
 * before the connection is reset or left hanging.
 */
export function sendJson (ex: Exchange, status: number, payload: string): void {
  const { fault } = ex.controls
  if (fault !== 'reset-mid-stream' && fault !== 'hang-mid-stream') {
    writeJson(ex.res, status, payload)
    return
  }
  const body = Buffer.from(payload)
  ex.res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length })
  // Destroying at once would discard the half body still in the socket's buffer.
  ex.res.write(body.subarray(0, body.length >> 1), () => {
    if (fault === 'reset-mid-stream') ex.res.destroy()
  })
}

export function sendText (res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

type ErrorKind = readonly [openaiType: string, openaiCode: string | null, anthropicType: string]

const ERROR_KINDS: Record<number, ErrorKind> = {
  400: ['invalid_request_error', null, 'invalid_request_error'],
  401: ['invalid_request_error', 'invalid_api_key', 'authentication_error'],
  403: ['permission_error', null, 'permission_error'],
  404: ['invalid_request_error', 'not_found', 'not_found_error'],
  409: ['invalid_request_error', 'conflict', 'invalid_request_error'],
  413: ['invalid_request_error', 'request_too_large', 'request_too_large'],
  422: ['invalid_request_error', 'unprocessable_entity', 'invalid_request_error'],
  429: ['requests', 'rate_limit_exceeded', 'rate_limit_error'],
  500: ['server_error', null, 'api_error'],
  503: ['server_error', 'service_unavailable', 'api_error'],
  529: ['server_error', 'overloaded', 'overloaded_error']
}

function errorKind (status: number): ErrorKind {
  return ERROR_KINDS[status] ?? (status >= 500
    ? ['server_error', null, 'api_error']
    : ['invalid_request_error', null, 'invalid_request_error'])
}

/** Anthropic clients get Anthropic-shaped errors: the Messages API, and model listings asked for with `anthropic-version`. */
function wantsAnthropicShape (ex: Exchange): boolean {
  return ex.path.startsWith('/v1/messages') ||
    (ex.path.startsWith('/v1/models') && ex.req.headers['anthropic-version'] !== undefined)
}

export function errorBody (status: number, message: string, anthropic: boolean): string {
  const [openaiType, openaiCode, anthropicType] = errorKind(status)
  return JSON.stringify(anthropic
    ? { type: 'error', error: { type: anthropicType, message } }
    : { error: { message, type: openaiType, param: null, code: openaiCode } })
}

/** Answers with an OpenAI- or Anthropic-shaped error, as the path calls for. */
export function sendError (ex: Exchange, status: number, message = `Mock error ${status}`): void {
  if (ex.controls.retryAfter !== undefined) ex.res.setHeader('retry-after', ex.controls.retryAfter)
  writeJson(ex.res, status, errorBody(status, message, wantsAnthropicShape(ex)))
}
