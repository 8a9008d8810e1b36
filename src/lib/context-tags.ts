/**
 * `[CONTEXT_ID:…]` conversation tags, on parsed objects (never on raw bytes):
 * - the conversation key of a request (tag headers, scoped by client);
 * - the request side: the stored chain plus one new id per assistant message, appended to each
 *   assistant message as `\n[CONTEXT_ID:chain]`;
 * - the response side: tags cut from JSON bodies and from live event streams, including a tag
 *   split across deltas (held back until it completes or proves not to be a tag), with the first
 *   tag's chain reported for storage.
 * The semantics users rely on, and where they differ on purpose: docs/transforms.md "Context id".
 */
import { createHash, randomUUID } from 'node:crypto'
import type { SseEventContext, SseEventRewriter, SseOutEvent } from './sse-transform.js'

export const TAG_OPEN = '[CONTEXT_ID:'
/** At least one character that is not `]`, then `]`: the tag form clients already send. */
const TAG = /\[CONTEXT_ID:([^\]]+)\]/g

/** Longest partial tag held back in a stream before it is released as ordinary text. */
export const DEFAULT_MAX_HELD = 64 * 1024

export function formatTag (chain: string): string {
  return `${TAG_OPEN}${chain}]`
}

/** Removes every complete tag; `onTag` sees each tag's chain in order. */
export function stripTags (text: string, onTag?: (chain: string) => void): string {
  if (!text.includes(TAG_OPEN)) return text
  return text.replace(TAG, (_m, chain: string) => {
    onTag?.(chain)
    return ''
  })
}

/**
 * Splits text (already free of complete tags) into what can be sent now and a trailing part that
 * may still become a tag: an unclosed `[CONTEXT_ID:…`, or a suffix like `[CONT`. A possible tag
 * longer than `maxHeld` is released: the hold-back is bounded.
 */
export function splitPartialTag (text: string, maxHeld = DEFAULT_MAX_HELD): { emit: string, held: string } {
  let from = 0
  for (;;) {
    const open = text.indexOf(TAG_OPEN, from)
    if (open === -1) break
    if (text.indexOf(']', open + TAG_OPEN.length) === -1) {
      return text.length - open <= maxHeld ? { emit: text.slice(0, open), held: text.slice(open) } : { emit: text, held: '' }
    }
    from = open + 1
  }
  const bracket = text.lastIndexOf('[')
  if (bracket !== -1 && text.length - bracket < TAG_OPEN.length && TAG_OPEN.startsWith(text.slice(bracket))) {
    return { emit: text.slice(0, bracket), held: text.slice(bracket) }
  }
  return { emit: text, held: '' }
}

// ---------------------------------------------------------------------------------------------
// conversation key

const TAG_HEADER = /^[0-9a-f]{32}$/

/**
 * The sorted, `|`-joined names of headers whose name is 32 hex characters and whose (first) value
 * is the literal `[tag]`: how existing clients name a conversation. Names are compared lower-cased
 * (HTTP names are case-insensitive, so every spelling groups the same requests).
 */
export function tagHeaderKey (headers: Readonly<Record<string, string[] | undefined>>): string {
  const names: string[] = []
  for (const name in headers) {
    if (name.length === 32 && TAG_HEADER.test(name) && headers[name]?.[0] === '[tag]') names.push(name)
  }
  return names.sort().join('|')
}

export interface KeyScope {
  /** the authenticated client's name, when an auth plugin identified one */
  client?: string | null
  /** the credential the request presented (pass-through mode), hashed, never stored as is */
  credential?: string | null
  ip: string
}

/**
 * The conversation key is scoped by who asks, so one client's context never reaches another
 * (requests without tag headers would otherwise all share the empty key): the authenticated
 * client, else the presented credential's SHA-256, else the client's address as a last resort.
 */
export function conversationKey (scope: KeyScope, tags: string): string {
  let who: string
  if (scope.client != null && scope.client !== '') who = `client:${scope.client}`
  else if (scope.credential != null && scope.credential !== '') who = `key:${createHash('sha256').update(scope.credential).digest('hex')}`
  else who = `ip:${scope.ip}`
  return `${who}\n${tags}`
}

// ---------------------------------------------------------------------------------------------
// request side

/**
 * Longest chain kept between requests. Without a cap a chain grows by one id per assistant message
 * per request whenever the upstream sends no tag, and every request body grows with it. The first
 * id (the upstream's own) and the most recent ones are kept.
 */
export const MAX_CHAIN_IDS = 64

export function capChain (ids: string[]): string[] {
  if (ids.length <= MAX_CHAIN_IDS) return ids
  return [ids[0], ...ids.slice(ids.length - (MAX_CHAIN_IDS - 1))]
}

export interface Injected {
  /** the chain to store after this request (stored ids + one new id per assistant message, capped) */
  chain: string
  /** whether any message changed */
  changed: boolean
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/**
 * The request rewrite of a `messages` array: every assistant message gets a fresh id appended to
 * the chain and `\n[CONTEXT_ID:chain]` appended to its text, old tags stripped and whitespace
 * trimmed first. Non-string content is kept: the tag goes on the last text part of a content
 * array, and a message without text (null content with tool calls) is left alone; it still takes
 * its id, so chain lengths stay what clients that count them expect.
 */
export function injectChain (messages: unknown[], stored: string | undefined, newId: () => string = randomUUID): Injected {
  const chain = capChain(stored !== undefined ? stored.split('|').filter(id => id !== '') : [])
  let changed = false
  for (const message of messages) {
    if (!isObject(message) || message.role !== 'assistant') continue
    chain.push(newId())
    const tag = `\n${formatTag(chain.join('|'))}`
    if (typeof message.content === 'string') {
      message.content = stripTags(message.content).trim() + tag
      changed = true
    } else if (Array.isArray(message.content)) {
      if (tagLastTextPart(message.content, tag)) changed = true
    }
  }
  return { chain: capChain(chain).join('|'), changed }
}

function tagLastTextPart (parts: unknown[], tag: string): boolean {
  let last = -1
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (isObject(part) && part.type === 'text' && typeof part.text === 'string') last = i
  }
  if (last === -1) return false
  for (let i = 0; i <= last; i++) {
    const part = parts[i]
    if (isObject(part) && part.type === 'text' && typeof part.text === 'string') {
      part.text = i === last ? stripTags(part.text).trim() + tag : stripTags(part.text)
    }
  }
  return true
}

// ---------------------------------------------------------------------------------------------
// response side

/** Removes complete tags from every string of a JSON value, in place; reports each chain. */
function stripDeep (value: unknown, onTag: (chain: string) => void, depth = 0): { value: unknown, changed: boolean } {
  if (typeof value === 'string') {
    const out = stripTags(value, onTag)
    return { value: out, changed: out !== value }
  }
  if (value === null || typeof value !== 'object' || depth > 512) return { value, changed: false }
  let changed = false
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const r = stripDeep(value[i], onTag, depth + 1)
      if (r.changed) { value[i] = r.value; changed = true }
    }
    return { value, changed }
  }
  const obj = value as Record<string, unknown>
  for (const key in obj) {
    const r = stripDeep(obj[key], onTag, depth + 1)
    if (r.changed) {
      Object.defineProperty(obj, key, { value: r.value, enumerable: true, writable: true, configurable: true })
      changed = true
    }
  }
  return { value, changed }
}

/** Text held back in one text channel of a stream, and how to send it on its own if need be. */
interface Held {
  text: string
  alone: (text: string) => SseOutEvent
}

/**
 * Per-response filter. JSON bodies: every string loses its tags. Streams: the text channels of
 * the three streaming shapes (OpenAI chat and completions `choices[].delta.content` /
 * `choices[].text`, Anthropic `content_block_delta` text, OpenAI Responses
 * `response.output_text.delta`) are followed across events, so a tag cut into several deltas is
 * removed too; every other string loses its complete tags.
 */
export class ContextTagFilter implements SseEventRewriter {
  /** the first tag's chain of this response, once seen */
  firstChain: string | null = null
  readonly #onFirst: (chain: string) => void
  readonly #maxHeld: number
  readonly #held = new Map<string, Held>()
  readonly #pending: Array<Promise<void>> = []

  /** `onFirst` may return a promise (a store write): the response ends only after it settled */
  constructor (onFirst: (chain: string) => Promise<void> | void, maxHeld = DEFAULT_MAX_HELD) {
    this.#onFirst = (chain) => {
      const done = onFirst(chain)
      if (done !== undefined) this.#pending.push(done)
    }
    this.#maxHeld = maxHeld
  }

  readonly #onTag = (chain: string): void => {
    if (this.firstChain !== null) return
    this.firstChain = chain
    this.#onFirst(chain)
  }

  /** Rewrites a whole JSON body; undefined when it had no tag. */
  json = (value: unknown): unknown => {
    const r = stripDeep(value, this.#onTag)
    return r.changed ? r.value : undefined
  }

  event (value: unknown, ctx: SseEventContext): unknown {
    if (!isObject(value)) {
      const r = stripDeep(value, this.#onTag)
      return r.changed ? r.value : undefined
    }
    let changed = false
    if (Array.isArray(value.choices)) changed = this.#openai(value, value.choices)
    else if (typeof value.type === 'string') changed = this.#typed(value, value.type, ctx)
    if (stripDeep(value, this.#onTag).changed) changed = true
    return changed ? value : undefined
  }

  /** Held text that never completed a tag goes out before `[DONE]` or the end of the stream. */
  finish (): SseOutEvent[] {
    const out: SseOutEvent[] = []
    for (const held of this.#held.values()) out.push(held.alone(held.text))
    this.#held.clear()
    return out
  }

  async beforeEnd (): Promise<void> {
    await Promise.all(this.#pending)
  }

  #openai (event: Record<string, unknown>, choices: unknown[]): boolean {
    let changed = false
    for (let pos = 0; pos < choices.length; pos++) {
      const choice = choices[pos]
      if (!isObject(choice)) continue
      const index = typeof choice.index === 'number' ? choice.index : pos
      const key = `choice:${index}`
      if (isObject(choice.delta)) {
        const alone = (text: string): SseOutEvent => ({ data: openaiChunk(event, { index, delta: { content: text }, logprobs: null, finish_reason: null }) })
        if (this.#follow(key, choice.delta, 'content', alone, true)) changed = true
      } else if (typeof choice.text === 'string') {
        const alone = (text: string): SseOutEvent => ({ data: openaiChunk(event, { index, text, logprobs: null, finish_reason: null }) })
        if (this.#follow(key, choice, 'text', alone, true)) changed = true
      }
    }
    return changed
  }

  /** Anthropic and Responses events carry a `type`; their text blocks come one after another. */
  #typed (event: Record<string, unknown>, type: string, ctx: SseEventContext): boolean {
    let key: string | null = null
    let holder: Record<string, unknown> | null = null
    let field = ''
    let alone: ((text: string) => SseOutEvent) | null = null
    if (type === 'content_block_delta' && isObject(event.delta) && event.delta.type === 'text_delta') {
      const index = event.index
      const name = ctx.event
      key = `block:${String(index)}`
      holder = event.delta
      field = 'text'
      alone = (text) => ({ event: name, data: { type, index, delta: { type: 'text_delta', text } } })
    } else if (type === 'response.output_text.delta' && typeof event.delta === 'string') {
      key = `output:${String(event.item_id)}:${String(event.content_index)}`
      holder = event
      field = 'delta'
      const template = { ...event }
      const name = ctx.event
      alone = (text) => ({ event: name, data: { ...template, delta: text } })
    }
    // any other event ends the text that was being held: it goes out first, on its own
    for (const [heldKey, held] of this.#held) {
      if (heldKey === key) continue
      ctx.insert(held.alone(held.text))
      this.#held.delete(heldKey)
    }
    if (key === null || holder === null || alone === null) return false
    return this.#follow(key, holder, field, alone, false)
  }

  /**
   * One text fragment of a channel: held text goes in front, complete tags go, a possible tag at
   * the end is held back. `fillEmpty`: a fragment-less event of the channel (an OpenAI finish
   * chunk) takes the held text.
   */
  #follow (key: string, holder: Record<string, unknown>, field: string, alone: (text: string) => SseOutEvent, fillEmpty: boolean): boolean {
    const current = holder[field]
    const held = this.#held.get(key)
    if (typeof current !== 'string') {
      if (held === undefined || !fillEmpty) return false
      this.#held.delete(key)
      holder[field] = held.text
      return true
    }
    const text = held !== undefined ? held.text + current : current
    if (held === undefined && !text.includes('[')) return false
    const { emit, held: rest } = splitPartialTag(stripTags(text, this.#onTag), this.#maxHeld)
    if (rest !== '') this.#held.set(key, { text: rest, alone })
    else this.#held.delete(key)
    if (emit === current) return false
    holder[field] = emit
    return true
  }
}

/** An OpenAI chunk carrying one choice, with the identifying fields of the chunk it came from. */
function openaiChunk (event: Record<string, unknown>, choice: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of ['id', 'object', 'created', 'model', 'system_fingerprint', 'service_tier']) {
    if (event[key] !== undefined) out[key] = event[key]
  }
  out.choices = [choice]
  return out
}
