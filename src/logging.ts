/**
 * Logger options and secret redaction. Two layers, because a key can reach a log line in many ways:
 * 1. pino `redact` paths and header redaction for the places we know (credential headers);
 * 2. a last-chance filter on every serialised line (`hooks.streamWrite`) that removes every
 *    configured secret and anything shaped like a provider key, so a key that slips into a body
 *    dump, an error message or a URL still never reaches the output.
 */
import type { FastifyRequest } from 'fastify'
import type { LoggerOptions } from 'pino'

export const REDACTED = '[REDACTED]'

/** Request headers that carry credentials, in every form the seeds' clients use. */
export const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'cookie', 'set-cookie', 'openai-insecure-api-key', 'sec-websocket-protocol']

/** Provider-style keys: OpenAI `sk-…`, Anthropic `sk-ant-…`, and similar prefixes. */
const KEY_SHAPES = /\b(?:sk|rk|pk|sess)-[A-Za-z0-9_-]{8,}/g

export function createRedactor (secrets: readonly string[]): (text: string) => string {
  // longest first, so a secret that contains another is removed whole; JSON-escaped forms too
  const list = [...new Set(secrets.filter(s => s.length >= 4).flatMap(s => [s, JSON.stringify(s).slice(1, -1)]))]
    .sort((a, b) => b.length - a.length)
  const pattern = list.length > 0 ? new RegExp(list.map(escapeRegExp).join('|'), 'g') : null
  return function redact (text: string): string {
    let out = pattern !== null ? text.replace(pattern, REDACTED) : text
    if (out.includes('-')) out = out.replace(KEY_SHAPES, REDACTED)
    return out
  }
}

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export function redactHeaders (headers: Record<string, unknown>, extra: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    out[name] = CREDENTIAL_HEADERS.includes(lower) || extra.includes(lower) ? REDACTED : value
  }
  return out
}

/** The path without its query string: some APIs take keys in the query (`?key=`, `?api-key=`). */
export function pathOnly (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

export interface LoggerSetup { level: string, secrets: readonly string[], destination?: NodeJS.WritableStream }

export function loggerOptions (setup: LoggerSetup): LoggerOptions & { stream?: NodeJS.WritableStream } {
  const redact = createRedactor(setup.secrets)
  return {
    level: setup.level,
    redact: {
      // explicit places only: a wildcard (`*.headers`) made pino walk every logged object, about
      // 30 µs per line on a usage record; the line filter below still catches anything elsewhere
      paths: CREDENTIAL_HEADERS.flatMap(h => ['headers', 'req.headers', 'res.headers', 'request.headers', 'response.headers'].map(at => `${at}["${h}"]`)),
      censor: REDACTED
    },
    serializers: {
      req (req: FastifyRequest) {
        return { method: req.method, url: pathOnly(req.url), remoteAddress: req.ip }
      }
    },
    hooks: { streamWrite: redact },
    ...(setup.destination !== undefined ? { stream: setup.destination } : {})
  }
}
