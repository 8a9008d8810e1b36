/**
 * A request's worst case, reserved before it is forwarded (docs/money.md, "The estimate"):
 *
 * - input tokens: the body's length in bytes, an upper bound for byte-pair tokenizers (every
 *   token covers a byte or more); or, asked for `exact` (plugins/budgets.ts does when the byte
 *   bound does not fit, so the tokenizer's CPU is spent only near a limit), the JSON body counted
 *   with the model's tokenizer for OpenAI models that gpt-tokenizer knows (the whole body, so the
 *   JSON around each message stands in for the chat format's per-message tokens), when the body
 *   is at most `tokenizeMaxBytes`;
 * - output tokens: the request's cap (`max_completion_tokens`, `max_tokens`, `max_output_tokens`),
 *   else `defaultMaxOutputTokens`, never above the model's context window when the table knows
 *   it, times the choices asked for (`n`, `best_of`) and the prompts of a legacy completions
 *   list; embeddings have none;
 * - priced at the dearest rate each side can be billed at: input as a cache write when that is
 *   dearer (Anthropic), output as reasoning when that is dearer, audio rates when the request
 *   carries or asks for audio.
 */
import type { ModelPrice, Rate } from '../usage/prices.js'

type Json = Readonly<Record<string, unknown>>

export interface EstimateOptions {
  defaultMaxOutputTokens: number
  tokenizeMaxBytes: number
  /** tokens of `text` for `model`, or null when no tokenizer is known for it */
  tokenize: ((model: string, text: string) => number | null) | null
}

export interface Estimate {
  inputTokens: number
  outputTokens: number
  /** worst-case cost; null when the model has no price */
  usd: number | null
}

function positiveInt (value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null
}

export function inputTokens (raw: Buffer, model: string | null, opts: EstimateOptions, exact = true): number {
  if (exact && model !== null && opts.tokenize !== null && raw.length <= opts.tokenizeMaxBytes) {
    const counted = opts.tokenize(model, raw.toString('utf8'))
    if (counted !== null) return counted
  }
  return raw.length
}

export function outputTokens (json: Json, path: string, contextWindow: number | null, opts: EstimateOptions): number {
  if (path.endsWith('/embeddings')) return 0
  let cap = positiveInt(json.max_completion_tokens) ?? positiveInt(json.max_tokens) ?? positiveInt(json.max_output_tokens) ?? opts.defaultMaxOutputTokens
  if (contextWindow !== null) cap = Math.min(cap, contextWindow)
  const choices = Math.max(positiveInt(json.n) ?? 1, positiveInt(json.best_of) ?? 1)
  // legacy completions: a list of prompts gets a completion (or n) for each
  const prompts = Array.isArray(json.prompt) && json.prompt.length > 0 && typeof json.prompt[0] === 'string' ? json.prompt.length : 1
  return cap * choices * prompts
}

function top (rate: Rate, input: number): number {
  if (typeof rate === 'number') return rate
  let price = rate.base
  for (const tier of rate.tiers) if (input > tier.start) price = tier.price
  return price
}

function dearest (rates: Array<Rate | undefined>, input: number): number {
  let max = 0
  for (const r of rates) if (r !== undefined) max = Math.max(max, top(r, input))
  return max
}

/** The most `input` + `output` tokens can cost at these prices. */
export function worstCaseUsd (input: number, output: number, price: ModelPrice, audio: boolean): number {
  const inRate = dearest([price.input, price.cacheWrite, price.cacheWrite1h, audio ? price.audioInput : undefined], input)
  const outRate = dearest([price.output, price.reasoning, audio ? price.audioOutput : undefined], input)
  return (input * inRate + output * outRate) / 1e6
}

/** The request carries audio or asks for it back. */
export function involvesAudio (json: Json, raw: Buffer): boolean {
  return (Array.isArray(json.modalities) && json.modalities.includes('audio')) || raw.includes('"input_audio"')
}

/** `exact`: count the input with the tokenizer where one is known (else: bytes). */
export function estimate (raw: Buffer, json: Json, path: string, model: string | null, price: { price: ModelPrice, contextWindow: number | null } | null, opts: EstimateOptions, exact = true): Estimate {
  const input = inputTokens(raw, model, opts, exact)
  const output = outputTokens(json, path, price?.contextWindow ?? null, opts)
  return { inputTokens: input, outputTokens: output, usd: price === null ? null : worstCaseUsd(input, output, price.price, involvesAudio(json, raw)) }
}
