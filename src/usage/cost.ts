/**
 * What a response cost, from its token counts (tokens.ts, normal form) and its model's prices
 * (prices.ts).
 *
 * Input: `promptTokens` holds every input token; the cache reads, the cache writes (the one-hour
 * part priced as such) and the uncached audio are priced at their own rates, the rest as text
 * input. Output: `completionTokens` holds every output token, reasoning included (OpenAI counts
 * it in `completion_tokens`, Anthropic in `output_tokens`); reasoning is priced apart only when
 * the table prices it apart, audio output always at its own rate.
 *
 * A category without its own price takes its parent's: a cache read or write, or audio, without
 * a price is priced as input; a one-hour write as a five-minute write.
 *
 * Tiered rates (a dearer price above some input size) take the tier of the request's whole input.
 */
import type { FastifyRequest } from 'fastify'
import type { ModelPrice, Rate } from './prices.js'
import type { TokenCounts } from './tokens.js'
import { pathOnly } from '../logging.js'
import { azureDeployment } from '../metrics/routes.js'

function rateAt (rate: Rate, input: number): number {
  if (typeof rate === 'number') return rate
  let price = rate.base
  for (const tier of rate.tiers) if (input > tier.start) price = tier.price
  return price
}

/** The cost in USD of these counts at these prices. */
export function costOf (c: TokenCounts, p: ModelPrice): number {
  const input = c.promptTokens ?? 0
  const cacheRead = c.cacheReadTokens ?? 0
  const cacheWrite = c.cacheCreationTokens ?? 0
  const cacheWrite1h = Math.min(c.cacheCreation1hTokens ?? 0, cacheWrite)
  const audioIn = c.audioInputTokens ?? 0
  const textIn = Math.max(0, input - cacheRead - cacheWrite - audioIn)
  const rate = (r: Rate | undefined, parent: Rate): number => rateAt(r ?? parent, input)

  const output = c.completionTokens ?? 0
  const audioOut = Math.min(c.audioOutputTokens ?? 0, output)
  const reasoning = p.reasoning === undefined ? 0 : Math.min(c.reasoningTokens ?? 0, output - audioOut)
  const textOut = output - audioOut - reasoning

  const perMillion =
    textIn * rate(undefined, p.input) +
    cacheRead * rate(p.cachedInput, p.input) +
    (cacheWrite - cacheWrite1h) * rate(p.cacheWrite, p.input) +
    cacheWrite1h * rate(p.cacheWrite1h, p.cacheWrite ?? p.input) +
    audioIn * rate(p.audioInput, p.input) +
    textOut * rate(undefined, p.output) +
    reasoning * rate(p.reasoning, p.output) +
    audioOut * rate(p.audioOutput, p.output)
  return perMillion / 1e6
}

/** No token was counted at all (an answer without usage, a refusal, a model list). */
export function noTokens (c: TokenCounts): boolean {
  return (c.promptTokens ?? 0) === 0 && (c.completionTokens ?? 0) === 0 && (c.totalTokens ?? 0) === 0
}

/** Finds prices; the price table (prices.ts) is one. */
export interface PriceLookup {
  lookup: (model: string, provider: string | null) => { price: ModelPrice } | null
}

/**
 * A request's cost: a number, or null when its model is not in the table (never 0 for a model
 * nobody priced). A request that named no model and counted no token cost nothing.
 */
export function requestCost (prices: PriceLookup, model: string | null, provider: string | null, counts: TokenCounts): number | null {
  if (model === null) return noTokens(counts) ? 0 : null
  const entry = prices.lookup(model, provider)
  return entry === null ? null : costOf(counts, entry.price)
}

/**
 * The model and provider a request's answer is priced by: for a model group, the deployment that
 * answered (its model, its target's provider); otherwise the model the request named (an
 * Azure-style call may name it by the deployment in its path only) at its target's provider.
 */
export function pricedAs (request: FastifyRequest): { model: string | null, provider: string | null } {
  const plan = request.upstream
  const outcome = request.outcome
  const attempts = outcome.attemptLog
  const answered = attempts !== null && attempts.length > 0 ? attempts[attempts.length - 1].model : null
  return {
    model: answered ?? plan.model ?? azureDeployment(pathOnly(plan.apiPath)),
    provider: (outcome.target ?? plan.target)?.provider ?? null
  }
}
