/**
 * Removes configured secrets (upstream keys, pool keys, mapped keys, target header values, client
 * keys, tokens: config/secrets.ts) from text. One filter for two places: every log line
 * (src/logging.ts) and upstream answers before a client sees them (error bodies and response
 * headers, src/proxy/answer-check.ts), where an upstream may echo the key it was sent.
 *
 * A secret of LONG_SECRET characters or more is removed wherever it appears, as written and
 * JSON-escaped. A shorter one would also match inside ordinary words and numbers, so it is removed
 * where it stands alone (no letter, digit, `_` or `-` next to it), and in JSON text only inside
 * string values: a log line or an error body stays valid JSON.
 */
export const REDACTED = '[REDACTED]'

const LONG_SECRET = 8
/** characters a key is made of: a short secret touching one of these is part of something else */
const KEY_CHAR = 'A-Za-z0-9_\\-'

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** An alternation of the secrets, longest first, so a secret that contains another is removed whole. */
function alternation (secrets: readonly string[]): string {
  return [...new Set(secrets)].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|')
}

export class SecretFilter {
  /** both kinds in one pattern: most texts hold no secret, and one scan tells */
  readonly #any: RegExp
  readonly #long: RegExp | null
  readonly #short: RegExp | null

  private constructor (secrets: readonly string[]) {
    const forms = secrets.flatMap(s => [s, JSON.stringify(s).slice(1, -1)])
    const long = forms.filter(s => s.length >= LONG_SECRET)
    const short = forms.filter(s => s.length < LONG_SECRET)
    const longSource = long.length > 0 ? alternation(long) : null
    const shortSource = short.length > 0 ? `(?<![${KEY_CHAR}])(?:${alternation(short)})(?![${KEY_CHAR}])` : null
    this.#long = longSource !== null ? new RegExp(longSource, 'g') : null
    this.#short = shortSource !== null ? new RegExp(shortSource, 'g') : null
    this.#any = new RegExp([longSource, shortSource].filter(s => s !== null).join('|'))
  }

  /** The filter for these secrets; null when there is nothing to filter (no cost at all). */
  static of (secrets: readonly string[]): SecretFilter | null {
    const list = secrets.filter(s => s !== '')
    return list.length > 0 ? new SecretFilter(list) : null
  }

  redact (text: string): string {
    if (!this.#any.test(text)) return text
    let out = this.#long !== null ? text.replace(this.#long, REDACTED) : text
    const short = this.#short
    if (short !== null) {
      short.lastIndex = 0
      if (short.test(out)) out = redactShort(out, short)
    }
    return out
  }

  /** The body with every secret removed; the same Buffer when it held none. */
  redactBuffer (body: Buffer): Buffer {
    const text = body.toString('utf8')
    const out = this.redact(text)
    return out === text ? body : Buffer.from(out, 'utf8')
  }
}

/** JSON text: short secrets replaced inside string values only; anything else: wherever they stand alone. */
function redactShort (text: string, short: RegExp): string {
  const first = text.trimStart().charCodeAt(0)
  if (first === 123 /* { */ || first === 91 /* [ */) {
    try {
      const parsed: unknown = JSON.parse(text)
      const trailing = text.slice(text.trimEnd().length)
      return JSON.stringify(parsed, (_key, value: unknown) => typeof value === 'string' ? value.replace(short, REDACTED) : value) + trailing
    } catch {
      // not JSON after all: as plain text
    }
  }
  return text.replace(short, REDACTED)
}
