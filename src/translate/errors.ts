/**
 * Upstream error answers in the client's dialect. The status stays the upstream's; the body's
 * message is kept, and the type is the one the client's SDK expects for that status.
 */
import { isObject } from './shared.js'

/** Anthropic's error types by status (its SDK picks its error class by status; the type names it). */
export function anthropicErrorType (status: number): string {
  switch (status) {
    case 400: return 'invalid_request_error'
    case 401: return 'authentication_error'
    case 402: return 'billing_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503: case 529: return 'overloaded_error'
    case 504: return 'timeout_error'
    default: return status >= 500 ? 'api_error' : 'invalid_request_error'
  }
}

/** OpenAI's error types by status, as its API sends them. */
function openAiErrorType (status: number): string {
  if (status === 429) return 'requests'
  if (status === 401) return 'invalid_request_error'
  if (status === 403) return 'permission_error'
  return status >= 500 ? 'server_error' : 'invalid_request_error'
}

/** The message of an error body in either dialect (or its text), bounded. */
export function errorMessage (status: number, body: unknown): string {
  let message: unknown
  if (isObject(body) && isObject(body.error)) message = body.error.message
  else if (isObject(body)) message = body.message
  else if (typeof body === 'string') message = body
  const text = typeof message === 'string' && message !== '' ? message : `The upstream answered with status ${status}`
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text
}

export function anthropicError (status: number, body: unknown): object {
  return { type: 'error', error: { type: anthropicErrorType(status), message: errorMessage(status, body) } }
}

export function openAiError (status: number, body: unknown): object {
  const upstream = isObject(body) && isObject(body.error) ? body.error : null
  const code = upstream !== null && typeof upstream.type === 'string' ? upstream.type : null
  return { error: { message: errorMessage(status, body), type: openAiErrorType(status), param: null, code } }
}
