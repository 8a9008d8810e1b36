/**
 * Prices for the cost of every request (src/usage/prices.ts): the bundled table of
 * `@pydantic/genai-prices`, models added or overridden here, or a whole replacement table.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

const perMillion = (what: string) => Type.Optional(Type.Number({ minimum: 0, description: `USD per million ${what}` }))

export const modelPriceSchema = Type.Object({
  input: Type.Number({ minimum: 0, description: 'USD per million input tokens' }),
  output: Type.Number({ minimum: 0, description: 'USD per million output tokens' }),
  cachedInput: perMillion('input tokens read from a cache (default: input)'),
  cacheWrite: perMillion('input tokens written to a cache (Anthropic five-minute write; default: input)'),
  cacheWrite1h: perMillion('input tokens written to a one-hour cache (default: cacheWrite)'),
  reasoning: perMillion('reasoning tokens, when priced apart from output (default: output)'),
  audioInput: perMillion('audio input tokens (default: input)'),
  audioOutput: perMillion('audio output tokens (default: output)')
}, { additionalProperties: false })

export const pricingSchema = Type.Object({
  models: Type.Record(Type.String({ minLength: 1 }), modelPriceSchema, { default: {}, description: 'prices per model name, over the bundled table' }),
  file: Type.String({ default: '', description: 'JSON or YAML file {models: {<model>: prices}} replacing the bundled table' })
}, { additionalProperties: false, default: {} })

export const pricing: ConfigSection = {
  key: 'pricing',
  schema: pricingSchema,
  options: [
    { path: 'pricing.models', env: ['GATEWAY_PRICING_MODELS'], type: 'json', doc: 'JSON map of model name to {input, output, cachedInput, cacheWrite, cacheWrite1h, reasoning, audioInput, audioOutput} in USD per million tokens' },
    { path: 'pricing.file', env: ['GATEWAY_PRICING_FILE'], type: 'string', doc: 'price table file replacing the bundled one (same shape as pricing.models, under models:)' }
  ]
}
