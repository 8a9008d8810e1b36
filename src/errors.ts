/**
 * Every error the gateway itself produces, in one place (STYLE.md §2.5), and the one function
 * that shapes an error body for the client's SDK: OpenAI's `{"error":{"message","type","code"}}`,
 * or Anthropic's `{"type":"error","error":{"type","message"}}` on Anthropic routes.
 */
import createError from '@fastify/error'

/** OpenAI `type` and `code` carried by each coded error. */
export interface ErrorInfo { type: string, code: string | null }

type Coded = ReturnType<typeof createError>

const infoByCode = new Map<string, ErrorInfo>()

/** A coded error with its OpenAI `type` and `code`; concerns define theirs next to their code with this. */
export function coded (code: string, message: string, status: number, type: string, apiCode: string | null = null): Coded {
  infoByCode.set(code, { type, code: apiCode })
  return createError(code, message, status)
}

export const UpstreamUnreachableError = coded('GW_UPSTREAM_UNREACHABLE', 'The upstream service could not be reached', 502, 'upstream_error', 'upstream_unreachable')
export const UpstreamTlsError = coded('GW_UPSTREAM_TLS', 'The upstream service presented a certificate that is not trusted', 502, 'upstream_error', 'upstream_tls_error')
export const UpstreamProtocolError = coded('GW_UPSTREAM_PROTOCOL', 'The upstream service sent an invalid response', 502, 'upstream_error', 'upstream_bad_response')
export const UpstreamTimeoutError = coded('GW_UPSTREAM_TIMEOUT', 'The upstream service did not answer in time', 504, 'upstream_error', 'upstream_timeout')
export const NotFoundError = coded('GW_NOT_FOUND', 'Unknown route: %s %s', 404, 'invalid_request_error', 'not_found')
export const InvalidJsonError = coded('GW_INVALID_JSON', 'We could not parse the JSON body of your request', 400, 'invalid_request_error', 'invalid_json')
export const InvalidApiKeyError = coded('GW_INVALID_API_KEY', 'Invalid or missing authorization token', 401, 'invalid_request_error', 'invalid_api_key')
export const ModelNotAllowedError = coded('GW_MODEL_NOT_ALLOWED', "This key may not use the model '%s'", 403, 'permission_error', 'model_not_allowed')
export const ModelUncheckableError = coded('GW_MODEL_UNCHECKABLE', 'This key is restricted to some models: name the model where the gateway can check it (one string "model" in a JSON body, or one realtime ?model=)', 400, 'invalid_request_error', 'model_not_checkable')
/** A restricted key's multipart form the gateway cannot read as every upstream would (src/uploads/form-framing.ts). */
export const FormUncheckableError = coded('GW_FORM_UNCHECKABLE', 'This key is restricted to some models: send a well-formed multipart form (CRLF line endings, one boundary, every part named once with a plain name="…")', 400, 'invalid_request_error', 'model_not_checkable')
/** A restricted key's request path that an upstream may read as another deployment (src/routing/paths.ts, `pathSegments`). */
export const PathUncheckableError = coded('GW_PATH_UNCHECKABLE', 'This key is restricted to some models: send the path plainly (no encoded "/" or "\\", empty segments or double encoding)', 400, 'invalid_request_error', 'model_not_checkable')
/** An endpoint that names its models where the gateway does not look (a batch file, a nested session): closed to restricted keys. */
export const EndpointNotAllowedError = coded('GW_ENDPOINT_NOT_ALLOWED', "This key is restricted to some models, and the gateway cannot check the models of '%s' requests", 403, 'permission_error', 'endpoint_not_allowed')
export const AdminTokenError = coded('GW_ADMIN_UNAUTHORIZED', 'Admin token required', 401, 'invalid_request_error', 'invalid_admin_token')
export const JsonTooDeepError = coded('GW_JSON_TOO_DEEP', 'The JSON body of your request is nested too deeply', 400, 'invalid_request_error', 'invalid_json')
export const BadQueryError = coded('GW_BAD_QUERY', 'Invalid query parameter %s', 400, 'invalid_request_error', 'invalid_query')
export const BodyTooLargeError = coded('GW_BODY_TOO_LARGE', 'Request body is larger than the limit of %s bytes', 413, 'invalid_request_error', 'request_too_large')
export const HttpVersionError = coded('GW_HTTP_VERSION', 'Only HTTP/1.0 and HTTP/1.1 are supported', 400, 'invalid_request_error', 'unsupported_http_version')
/** A request body that arrived slower than server.bodyMinBytesPerSecond (src/server.ts) */
export const BodyTooSlowError = coded('GW_BODY_TOO_SLOW', 'The request body arrived too slowly (under %s bytes per second)', 408, 'invalid_request_error', 'request_timeout')
export const UpgradeRequiredError = coded('GW_UPGRADE_REQUIRED', 'This endpoint only accepts WebSocket connections', 426, 'invalid_request_error', 'upgrade_required')

/** Upload limits (plugins/upload-limits.ts): each 413 names the limit that was crossed. */
export const UploadTotalTooLargeError = coded('GW_UPLOAD_TOTAL_SIZE', 'Upload exceeds the total size limit of %s bytes', 413, 'invalid_request_error', 'upload_total_size_exceeded')
export const UploadFileTooLargeError = coded('GW_UPLOAD_FILE_SIZE', 'Uploaded file exceeds the file size limit of %s bytes', 413, 'invalid_request_error', 'upload_file_size_exceeded')
export const UploadTooManyFilesError = coded('GW_UPLOAD_FILE_COUNT', 'Upload exceeds the file count limit of %s files', 413, 'invalid_request_error', 'upload_file_count_exceeded')
export const UploadTooManyFieldsError = coded('GW_UPLOAD_FIELD_COUNT', 'Upload exceeds the field count limit of %s fields', 413, 'invalid_request_error', 'upload_field_count_exceeded')
export const UploadFieldTooLargeError = coded('GW_UPLOAD_FIELD_SIZE', 'Upload field exceeds the field size limit of %s bytes', 413, 'invalid_request_error', 'upload_field_size_exceeded')
/** Not a size limit of the upload, so a 400: the form's order (src/uploads/limiter.ts, `ModelFieldHold`). */
export const UploadModelFieldLateError = coded('GW_UPLOAD_MODEL_FIELD_LATE', "The form's model field must come within its first %s bytes: this target chooses its Azure deployment by the model. Send the model field before the file, or call /openai/deployments/{deployment}/... directly", 400, 'invalid_request_error', 'model_field_too_late')

/** A listener of the upload's parser threw (a gateway fault): this upload fails, the gateway goes on. */
export const UploadCheckFailedError = coded('GW_UPLOAD_CHECK_FAILED', 'The gateway failed to check this upload', 500, 'server_error', 'internal_error')

/** An upload limit tripped while the body streamed; the 413 stands even though the upstream call failed. */
export function isUploadLimitError (err: unknown): err is Error & { code: string, statusCode: number } {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('GW_UPLOAD_')
}

/**
 * A refusal raised by the pass-through of a streamed body (an upload limit, a multipart `model`
 * field a restricted key may not use, or a body sent too slowly): the client's 4xx stands even
 * though the upstream call, aborted by it, failed.
 */
export function isStreamedBodyRefusal (err: unknown): err is Error & { code: string, statusCode: number } {
  if (isUploadLimitError(err)) return true
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
  return code === 'GW_MODEL_NOT_ALLOWED' || code === 'GW_MODEL_UNCHECKABLE' || code === 'GW_FORM_UNCHECKABLE' || code === 'GW_BODY_TOO_SLOW'
}

// abuse protection (plugins/ip-filter, auto-blacklist, rate-limit; routes/admin/blacklist)
export const IpDeniedError = coded('GW_IP_DENIED', 'Requests from your address are not allowed', 403, 'request_forbidden', 'ip_not_allowed')
export const IpBlacklistedError = coded('GW_IP_BLACKLISTED', 'Your address has been blocked after repeated invalid requests', 403, 'request_forbidden', 'ip_blacklisted')
// OpenAI's own 429 body says type "requests", code "rate_limit_exceeded"
export const RateLimitedError = coded('GW_RATE_LIMITED', 'Rate limit reached: %s requests per %s; retry in %s s', 429, 'requests', 'rate_limit_exceeded')
export const ConcurrencyLimitError = coded('GW_CONCURRENCY_LIMIT', 'Too many requests in flight: at most %s at once; retry when one has finished', 429, 'requests', 'concurrency_limit')
export const AuthRefusalsLimitedError = coded('GW_AUTH_REFUSALS_LIMITED', 'Too many requests with a missing or invalid key from your address; retry in %s s', 429, 'requests', 'rate_limit_exceeded')
export const RateLimitUnavailableError = coded('GW_RATE_LIMIT_UNAVAILABLE', 'The rate limiter is unavailable; retry shortly', 503, 'server_error', 'rate_limit_unavailable')
export const InvalidAddressError = coded('GW_INVALID_ADDRESS', '%s is not an IP address', 400, 'invalid_request_error', 'invalid_address')
export const InvalidBlacklistEntryError = coded('GW_INVALID_BLACKLIST_ENTRY', 'Invalid blacklist entry: %s', 400, 'invalid_request_error', 'invalid_blacklist_entry')
export const NotBlacklistedError = coded('GW_NOT_BLACKLISTED', '%s is not on the blacklist', 404, 'invalid_request_error', 'not_found')

/** Fastify's own client errors, mapped to the same vocabulary. */
const FASTIFY_CODES: Record<string, ErrorInfo & { message?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { type: 'invalid_request_error', code: 'request_too_large', message: 'Request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { type: 'invalid_request_error', code: 'unsupported_media_type', message: 'Unsupported content type' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { type: 'invalid_request_error', code: 'invalid_json', message: 'The JSON body of your request is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { type: 'invalid_request_error', code: 'invalid_json', message: 'We could not parse the JSON body of your request' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { type: 'invalid_request_error', code: 'invalid_content_length', message: 'Content-Length does not match the body' },
  FST_ERR_BAD_URL: { type: 'invalid_request_error', code: 'bad_url', message: 'The request URL is malformed' },
  FST_ERR_MAX_PARAM_LENGTH: { type: 'invalid_request_error', code: 'uri_too_long', message: 'A path segment of the request URL is too long' },
  FST_ERR_ASYNC_CONSTRAINT: { type: 'invalid_request_error', code: 'bad_request', message: 'Bad request' }
}

export interface ShapedError { status: number, message: string, type: string, code: string | null }

/**
 * Decides what a client may see of an error. Messages of coded 4xx errors are ours and safe; any
 * 5xx that is not one of our coded errors gets a generic message, so no internal text leaks.
 */
export function shapeError (err: { code?: string, statusCode?: number, message?: string }): ShapedError {
  const ours = err.code !== undefined ? infoByCode.get(err.code) : undefined
  const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  if (ours !== undefined) return { status, message: err.message ?? '', ...ours }
  const fst = err.code !== undefined ? FASTIFY_CODES[err.code] : undefined
  if (fst !== undefined) return { status, message: fst.message ?? 'Bad request', type: fst.type, code: fst.code }
  if (status === 400 && err instanceof SyntaxError) return { status, message: 'We could not parse the JSON body of your request', type: 'invalid_request_error', code: 'invalid_json' }
  if (status < 500) return { status, message: err.message ?? 'Bad request', type: 'invalid_request_error', code: null }
  return { status: 500, message: 'The gateway failed to process the request', type: 'server_error', code: 'internal_error' }
}

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  529: 'overloaded_error'
}

/** Anthropic clients call `/v1/messages…` (and `/v1/complete`); everything else speaks OpenAI. */
export function isAnthropicPath (url: string): boolean {
  return /^(?:\/[^/?]+)?\/v1\/(?:messages|complete)(?:[/?]|$)/.test(url)
}

/** The OpenAI dialects' own endpoints: their clients read OpenAI's shape whatever the target (translated). */
function isOpenAiDialectPath (url: string): boolean {
  return /^(?:\/[^/?]+)?\/v1\/(?:chat\/completions|responses)(?:[/?]|$)/.test(url)
}

/**
 * Anthropic's shape on Anthropic paths, and on any other path of a target whose provider is Anthropic
 * (its SDK calls `/v1/models` too); OpenAI's everywhere else.
 */
export function errorBody (url: string, e: ShapedError, provider?: string): object {
  if (isAnthropicPath(url) || (provider === 'anthropic' && !isOpenAiDialectPath(url))) {
    return { type: 'error', error: { type: ANTHROPIC_TYPES[e.status] ?? 'api_error', message: e.message } }
  }
  return { error: { message: e.message, type: e.type, code: e.code } }
}
