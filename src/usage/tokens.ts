/**
 * Token counts as the providers report them, in one normal form.
 *
 * - OpenAI (chat completions, completions, embeddings, the Responses API, realtime): every usage
 *   object is complete, so the latest one replaces what was seen before.
 * - Anthropic: `message_start` carries input, cache and a first output count; each
 *   `message_delta` carries running totals of some of them. Every field keeps its LAST value:
 *   adding the deltas up over-counts (a recurring bug in other gateways).
 *
 * Normal form: `promptTokens` is all input the model read, cached tokens included (OpenAI's
 * `prompt_tokens` already includes `cached_tokens`; for Anthropic it is `input_tokens` plus both
 * cache counts), so `promptTokens + completionTokens = totalTokens` for both providers, and the
 * cache counts say which part of the prompt was read from or written to a cache.
 *
 * The categories a price table prices apart are kept too: Anthropic's one-hour cache writes (a
 * part of `cacheCreationTokens`, dearer than the five-minute ones), audio input not read from a
 * cache (a part of `promptTokens`) and audio output (a part of `completionTokens`).
 */

export interface TokenCounts {
  promptTokens: number | null
  completionTokens: number | null
  totalTokens: number | null
  cacheReadTokens: number | null
  cacheCreationTokens: number | null
  reasoningTokens: number | null
  /** the part of `cacheCreationTokens` written for one hour (Anthropic `ephemeral_1h_input_tokens`) */
  cacheCreation1hTokens: number | null
  /** audio input tokens not read from a cache (a part of `promptTokens`) */
  audioInputTokens: number | null
  /** audio output tokens (a part of `completionTokens`) */
  audioOutputTokens: number | null
}

export type UsageDialect = 'openai' | 'anthropic'

type Json = Record<string, unknown>

export function isObject (value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function count (value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null
}

function nested (value: unknown, key: string): number | null {
  return isObject(value) ? count(value[key]) : null
}

export const NO_TOKENS: Readonly<TokenCounts> = Object.freeze({
  promptTokens: null,
  completionTokens: null,
  totalTokens: null,
  cacheReadTokens: null,
  cacheCreationTokens: null,
  reasoningTokens: null,
  cacheCreation1hTokens: null,
  audioInputTokens: null,
  audioOutputTokens: null
})

/** Audio input not read from a cache: realtime says which part of its cached tokens was audio. */
function uncachedAudio (details: unknown): number | null {
  const audio = nested(details, 'audio_tokens')
  if (audio === null || !isObject(details)) return audio
  return Math.max(0, audio - (nested(details.cached_tokens_details, 'audio_tokens') ?? 0))
}

/** One complete OpenAI-style usage object: chat/embeddings names or Responses/realtime names. */
export function openAiCounts (usage: Json): TokenCounts {
  const prompt = count(usage.prompt_tokens) ?? count(usage.input_tokens)
  const completion = count(usage.completion_tokens) ?? count(usage.output_tokens)
  const total = count(usage.total_tokens) ?? (prompt !== null || completion !== null ? (prompt ?? 0) + (completion ?? 0) : null)
  // chat: prompt_/completion_tokens_details; Responses: input_/output_tokens_details; realtime: input_/output_token_details
  const inDetails = usage.prompt_tokens_details ?? usage.input_tokens_details ?? usage.input_token_details
  const outDetails = usage.completion_tokens_details ?? usage.output_tokens_details ?? usage.output_token_details
  return {
    promptTokens: prompt,
    completionTokens: completion,
    totalTokens: total,
    cacheReadTokens: nested(inDetails, 'cached_tokens'),
    cacheCreationTokens: null,
    reasoningTokens: nested(outDetails, 'reasoning_tokens'),
    cacheCreation1hTokens: null,
    audioInputTokens: uncachedAudio(inDetails),
    audioOutputTokens: nested(outDetails, 'audio_tokens')
  }
}

/** Adds two sets of counts (separate responses of one realtime session; never deltas of one response). */
export function addCounts (a: TokenCounts, b: TokenCounts): TokenCounts {
  const plus = (x: number | null, y: number | null): number | null => (x === null && y === null ? null : (x ?? 0) + (y ?? 0))
  return {
    promptTokens: plus(a.promptTokens, b.promptTokens),
    completionTokens: plus(a.completionTokens, b.completionTokens),
    totalTokens: plus(a.totalTokens, b.totalTokens),
    cacheReadTokens: plus(a.cacheReadTokens, b.cacheReadTokens),
    cacheCreationTokens: plus(a.cacheCreationTokens, b.cacheCreationTokens),
    reasoningTokens: plus(a.reasoningTokens, b.reasoningTokens),
    cacheCreation1hTokens: plus(a.cacheCreation1hTokens, b.cacheCreation1hTokens),
    audioInputTokens: plus(a.audioInputTokens, b.audioInputTokens),
    audioOutputTokens: plus(a.audioOutputTokens, b.audioOutputTokens)
  }
}

/**
 * The usage of one response, fed with every usage object seen in its body or stream. The last
 * value of each counter wins.
 */
export class UsageAccumulator {
  readonly dialect: UsageDialect
  /** a usage object was seen */
  seen = false
  #openai: TokenCounts = NO_TOKENS
  #input: number | null = null
  #output: number | null = null
  #cacheRead: number | null = null
  #cacheCreation: number | null = null
  #cacheCreation1h: number | null = null

  constructor (dialect: UsageDialect) {
    this.dialect = dialect
  }

  /** A usage object in the response's dialect. */
  add (usage: Json): void {
    this.seen = true
    if (this.dialect === 'openai') {
      this.#openai = openAiCounts(usage)
      return
    }
    this.#input = count(usage.input_tokens) ?? this.#input
    this.#output = count(usage.output_tokens) ?? this.#output
    this.#cacheRead = count(usage.cache_read_input_tokens) ?? this.#cacheRead
    this.#cacheCreation = count(usage.cache_creation_input_tokens) ?? this.#cacheCreation
    this.#cacheCreation1h = nested(usage.cache_creation, 'ephemeral_1h_input_tokens') ?? this.#cacheCreation1h
  }

  /**
   * Finds the usage in a whole JSON body or in one stream event: `usage` (chat, embeddings,
   * Anthropic messages and `message_delta`), `message.usage` (Anthropic `message_start`),
   * `response.usage` (Responses API events, realtime `response.done`).
   */
  observe (value: unknown): void {
    if (!isObject(value)) return
    if (isObject(value.usage)) this.add(value.usage)
    else if (isObject(value.message) && isObject(value.message.usage)) this.add(value.message.usage)
    else if (isObject(value.response) && isObject(value.response.usage)) this.add(value.response.usage)
  }

  counts (): TokenCounts {
    if (!this.seen) return NO_TOKENS
    if (this.dialect === 'openai') return this.#openai
    const cacheRead = this.#cacheRead
    const cacheCreation = this.#cacheCreation
    const prompt = this.#input === null ? null : this.#input + (cacheRead ?? 0) + (cacheCreation ?? 0)
    const completion = this.#output
    return {
      promptTokens: prompt,
      completionTokens: completion,
      totalTokens: prompt === null && completion === null ? null : (prompt ?? 0) + (completion ?? 0),
      cacheReadTokens: cacheRead,
      cacheCreationTokens: cacheCreation,
      reasoningTokens: null,
      cacheCreation1hTokens: this.#cacheCreation1h,
      audioInputTokens: null,
      audioOutputTokens: null
    }
  }
}

/**
 * The endpoints whose responses carry token usage, by the end of the path (so prefixed and Azure
 * `/openai/deployments/{d}/chat/completions` paths match too); null for every other path.
 */
export function usageDialect (path: string): UsageDialect | null {
  if (path.endsWith('/messages')) return 'anthropic'
  if (path.endsWith('/completions') || path.endsWith('/embeddings') || path.endsWith('/responses')) return 'openai'
  return null
}

/** Endpoints that take `stream_options.include_usage` (chat completions and legacy completions). */
export function takesStreamOptions (path: string): boolean {
  return path.endsWith('/completions')
}

/** Usage of a realtime `response.done` server event, or null for any other event. */
export function realtimeEventCounts (event: unknown): TokenCounts | null {
  if (!isObject(event) || event.type !== 'response.done' || !isObject(event.response) || !isObject(event.response.usage)) return null
  return openAiCounts(event.response.usage)
}
