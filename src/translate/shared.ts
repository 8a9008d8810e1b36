/**
 * What every translator shares: the JSON shapes it reads, the refusal of a field a direction
 * cannot carry, and the SSE text it writes.
 */
import { coded } from '../errors.js'

export type Json = Record<string, unknown>

/** A field of the client's request the upstream's dialect has no counterpart for: 400, naming it. */
export const UntranslatableFieldError = coded('GW_TRANSLATE_FIELD', '%s', 400, 'invalid_request_error', 'unsupported_field')

export function isObject (value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function refuse (field: string, why: string): never {
  throw new UntranslatableFieldError(`'${field}' ${why}`)
}

/** `value` when it is a string, else a refusal naming `field`. */
export function str (value: unknown, field: string): string {
  if (typeof value !== 'string') refuse(field, 'must be a string')
  return value
}

export function arr (value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) refuse(field, 'must be an array')
  return value
}

export function obj (value: unknown, field: string): Json {
  if (!isObject(value)) refuse(field, 'must be an object')
  return value
}

/** A set value: not absent and not null (an SDK may send explicit nulls for unset options). */
export function given (value: unknown): boolean {
  return value !== undefined && value !== null
}

/** Copies the members of `from` named in `names` that are set. */
export function copyGiven (from: Json, to: Json, names: readonly string[]): void {
  for (const name of names) if (given(from[name])) to[name] = from[name]
}

/**
 * Refuses every top-level member that is set but not in `known`: a member this direction does not
 * carry must not vanish on the way (the client would believe the upstream honoured it).
 */
export function refuseUnknown (body: Json, known: ReadonlySet<string>, upstream: string): void {
  for (const name in body) {
    if (known.has(name) || !given(body[name])) continue
    refuse(name, `has no counterpart in the ${upstream} API this model is served through`)
  }
}

/** A non-negative finite count, or 0. */
export function tokens (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0
}

/** A keep-alive in any dialect: an SSE comment, which every reader skips. */
export const KEEP_ALIVE = ': keep-alive\n\n'

/** One named SSE event (Anthropic's and the Responses API's framing). */
export function namedEvent (name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`
}

/** One unnamed SSE event (Chat Completions' framing). */
export function dataEvent (data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`
}

/** JSON.parse of tool arguments, refusing text that is not a JSON object. */
export function parseArguments (text: unknown, field: string): Json {
  if (text === undefined || text === null || text === '') return {}
  if (typeof text !== 'string') refuse(field, 'must be a string of JSON')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    refuse(field, 'is not valid JSON')
  }
  if (!isObject(value)) refuse(field, 'must be a JSON object')
  return value
}

/** `data:` URL → media type and base64 data; null for any other URL. */
export function dataUrl (url: string): { mediaType: string, data: string } | null {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  return m === null ? null : { mediaType: m[1], data: m[2] }
}

/**
 * Which tool call a streamed tool-call delta belongs to. OpenAI numbers them (`index`); some
 * compatible servers leave `index` out and send each call whole with its own `id`: a new id is a
 * new call; a delta with neither continues the last one.
 */
export class ToolCallKeys {
  readonly #ids = new Map<string, number>()
  #last = 0

  of (call: Json): number {
    if (typeof call.index === 'number') {
      this.#last = call.index
      if (typeof call.id === 'string') this.#ids.set(call.id, call.index)
      return call.index
    }
    if (typeof call.id === 'string') {
      let key = this.#ids.get(call.id)
      if (key === undefined) {
        key = -1 - this.#ids.size
        this.#ids.set(call.id, key)
      }
      this.#last = key
    }
    return this.#last
  }
}
