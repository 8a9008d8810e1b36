/**
 * Logger options and secret redaction. Two layers, because a key can reach a log line in many ways:
 * 1. pino `redact` paths and header redaction for the places we know (credential headers);
 * 2. a last-chance filter on every serialised line (`hooks.streamWrite`) that removes every
 *    configured secret and anything shaped like a provider key, so a key that slips into a body
 *    dump, an error message or a URL still never reaches the output.
 */
import type { FastifyRequest } from 'fastify'
import { pino, type Logger, type LoggerOptions } from 'pino'
import { REDACTED, SecretFilter } from './lib/secret-filter.js'

export { REDACTED }

/** Request headers that carry credentials, in every form the seeds' clients use. */
export const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'cookie', 'set-cookie', 'openai-insecure-api-key', 'sec-websocket-protocol']

/**
 * Header names that carry a credential beyond the fixed list, by the words they are made of:
 * Google's `x-goog-api-key`, Azure API Management's `ocp-apim-subscription-key`, `x-auth-token`,
 * `x-amz-security-token`, …
 */
const CREDENTIAL_NAME = /(?:^|[-_])(?:key|api-?key|token|secret|password|passwd|credentials?|signature|session|auth|authentication)(?:$|[-_])/

export function isCredentialHeader (lowerCaseName: string): boolean {
  return CREDENTIAL_HEADERS.includes(lowerCaseName) || CREDENTIAL_NAME.test(lowerCaseName)
}

/** Provider-style keys: OpenAI `sk-…`, Anthropic `sk-ant-…`, similar prefixes, and Google's `AIza…`. */
const KEY_SHAPES = /\b(?:(?:sk|rk|pk|sess)-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{30,})/g

/** The configured secrets (the same filter as upstream answers, src/lib/secret-filter.ts), then key shapes. */
export function createRedactor (secrets: readonly string[]): (text: string) => string {
  const filter = SecretFilter.of(secrets)
  return function redact (text: string): string {
    let out = filter !== null ? filter.redact(text) : text
    if (out.includes('-') || out.includes('AIza')) out = out.replace(KEY_SHAPES, REDACTED)
    return out
  }
}

export function redactHeaders (headers: Record<string, unknown>, extra: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    out[name] = isCredentialHeader(lower) || extra.includes(lower) ? REDACTED : value
  }
  return out
}

/** The path without its query string: some APIs take keys in the query (`?key=`, `?api-key=`). */
export function pathOnly (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/**
 * Keys whose value may carry a `headers` object, redacted one level down. Named rather than a
 * `*.headers` wildcard: pino runs a wildcard's redactor on EVERY key of EVERY line (the access
 * line's `status`, `path`, …), which was most of what an access line cost (docs/performance.md, "Profiling").
 * Keep keys the access line uses (`upstream`, `model`, …) out of this list for the same reason.
 * The last-chance filter below still removes configured secrets and key-shaped strings anywhere.
 */
const HEADER_HOLDERS = ['req', 'res', 'request', 'response', 'err', 'error']

export interface LoggerSetup { level: string, secrets: readonly string[], destination?: NodeJS.WritableStream }

export function loggerOptions (setup: LoggerSetup): LoggerOptions & { stream?: NodeJS.WritableStream } {
  const redact = createRedactor(setup.secrets)
  return {
    level: setup.level,
    redact: {
      paths: CREDENTIAL_HEADERS.flatMap(h => [`headers["${h}"]`, ...HEADER_HOLDERS.map(k => `${k}.headers["${h}"]`)]),
      censor: REDACTED
    },
    serializers: {
      req (req: FastifyRequest) {
        return { method: req.method, url: pathOnly(req.url), remoteAddress: req.ip }
      },
      // every `{ err }` of every line: what failed, never where (no stack frames, no file paths)
      err: errorSummary
    },
    hooks: { streamWrite: redact },
    ...(setup.destination !== undefined ? { stream: setup.destination } : {})
  }
}

/** An error as a log line shows it: its class, message, code and cause, without its stack. */
export function errorSummary (err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err).slice(0, 300) }
  const out: Record<string, unknown> = { type: err.name, message: err.message.slice(0, 300) }
  const code = (err as Error & { code?: unknown }).code
  if (code !== undefined) out.code = code
  if (err.cause !== undefined && depth < 2) out.cause = errorSummary(err.cause, depth + 1)
  return out
}

/**
 * Marks a log object whose fields are plain JSON values (strings, finite numbers, booleans, null,
 * no `req`/`err`/`headers`): such an object is serialized by one `JSON.stringify` instead of
 * pino's walk over its keys, which escapes every key and value in JavaScript and looks each key up
 * in the serializer and redaction tables. The access line (some thirty fields, every request) is
 * one. The line is the one pino would write, and still passes the last-chance secret filter.
 */
export const kPlainFields = Symbol('plain JSON fields')

const { asJsonSym, lsCacheSym, chindingsSym, endSym, messageKeySym, formattersSym } = pino.symbols

type AsJson = (this: Logger, obj: Record<string | symbol, unknown>, msg: unknown, num: number, time: string) => string

/** Installs the plain-fields serialization on `logger` and every child made from it after. */
export function serializePlainFields (logger: Logger): void {
  const generic = (logger as unknown as Record<symbol, AsJson>)[asJsonSym]
  const plain: AsJson = function (obj, msg, num, time) {
    const self = this as unknown as Record<symbol, unknown>
    if (obj[kPlainFields] !== true || typeof msg !== 'string' || (self[formattersSym] as { log?: unknown }).log !== undefined) return generic.call(this, obj, msg, num, time)
    const fields = JSON.stringify(obj)
    // the same order as pino's: level, time, the bindings (pid, hostname, reqId), fields, message
    return (self[lsCacheSym] as Record<number, string>)[num] + time + (self[chindingsSym] as string) +
      (fields.length > 2 ? ',' + fields.slice(1, -1) : '') + ',"' + (self[messageKeySym] as string) + '":' + JSON.stringify(msg) + (self[endSym] as string)
  }
  ;(logger as unknown as Record<symbol, AsJson>)[asJsonSym] = plain
}
