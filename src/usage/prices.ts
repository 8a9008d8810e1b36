/**
 * The price table: what one million tokens of each category cost, per model.
 *
 * Source: `@pydantic/genai-prices` (MIT), used directly as a dependency: its bundled table is
 * curated per provider, matches model names the way the providers spell them (dated snapshots,
 * `-latest` aliases) and has tiered prices. Updating the prices is updating that package
 * (docs/money.md). Operators override or add models with `pricing.models`, or replace the whole
 * table with `pricing.file` (the same shape as `pricing.models`, under `models:`).
 *
 * A lookup is a linear match over the package's model list (about a tenth of a millisecond), so
 * results are kept per (provider, model) name in a bounded map: a request pays a Map lookup.
 * Misses are kept too, so a client sending random model names costs one match per name until
 * the map is full, after which it is cleared and refilled.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { calcPrice, type ModelPrice as SourcePrice } from '@pydantic/genai-prices'
import { isObject } from './tokens.js'

/** A price per million tokens, or tiers chosen by the request's input tokens (above `start`). */
export type Rate = number | { base: number, tiers: ReadonlyArray<{ start: number, price: number }> }

/** USD per million tokens; a category without its own price is priced as its parent (see cost.ts). */
export interface ModelPrice {
  input: Rate
  output: Rate
  /** input read from a cache */
  cachedInput?: Rate
  /** input written to a cache (Anthropic: the five-minute write) */
  cacheWrite?: Rate
  /** Anthropic's one-hour cache write */
  cacheWrite1h?: Rate
  /** reasoning output, where it is priced apart from the other output */
  reasoning?: Rate
  audioInput?: Rate
  audioOutput?: Rate
}

export interface PriceEntry {
  /** the model as the table names it */
  model: string
  price: ModelPrice
  /** where the price came from */
  source: 'config' | 'file' | 'genai-prices'
  /** the model's context window, when the table knows it (an upper bound of its output) */
  contextWindow: number | null
}

/** The prices of one model in the configuration's shape (`pricing.models`). */
export type PriceOverride = Record<string, unknown>

const FIELDS = ['input', 'output', 'cachedInput', 'cacheWrite', 'cacheWrite1h', 'reasoning', 'audioInput', 'audioOutput'] as const

/** genai-prices' names for our categories */
const SOURCE_FIELDS: Record<typeof FIELDS[number], string> = {
  input: 'input_mtok',
  output: 'output_mtok',
  cachedInput: 'cache_read_mtok',
  cacheWrite: 'cache_write_mtok',
  cacheWrite1h: 'cache_write_1h_mtok',
  reasoning: 'output_reasoning_mtok',
  audioInput: 'input_audio_mtok',
  audioOutput: 'output_audio_mtok'
}

export class PriceError extends Error {}

function isRate (value: unknown): value is Rate {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0
  if (!isObject(value) || !isRate(value.base) || typeof value.base !== 'number' || !Array.isArray(value.tiers)) return false
  return value.tiers.every(t => isObject(t) && typeof t.start === 'number' && t.start >= 0 && typeof t.price === 'number' && t.price >= 0)
}

/** A configured price (`pricing.models.<name>`, or a model of `pricing.file`); throws a PriceError naming what is wrong. */
export function priceOf (value: unknown, where: string): ModelPrice {
  if (!isObject(value)) throw new PriceError(`${where}: expected an object of prices per million tokens, e.g. { input: 2.5, output: 10 }`)
  const price: Record<string, Rate> = {}
  for (const [name, rate] of Object.entries(value)) {
    if (!(FIELDS as readonly string[]).includes(name)) throw new PriceError(`${where}.${name}: unknown price; expected one of ${FIELDS.join(', ')}`)
    if (!isRate(rate)) throw new PriceError(`${where}.${name}: expected a number of USD per million tokens (0 or more)`)
    price[name] = rate
  }
  if (price.input === undefined || price.output === undefined) throw new PriceError(`${where}: input and output prices are required`)
  return price as unknown as ModelPrice
}

function fromSource (source: SourcePrice): ModelPrice | null {
  const price: Record<string, Rate> = {}
  for (const field of FIELDS) {
    const rate = source[SOURCE_FIELDS[field]]
    if (rate !== undefined && isRate(rate)) price[field] = rate
  }
  // an embeddings model has no output price: its output is free
  if (price.input === undefined) return null
  price.output ??= 0
  return price as unknown as ModelPrice
}

/** Reads `pricing.file` (JSON or YAML, `{ models: { <model>: prices } }`); throws a PriceError. */
export function readPriceFile (path: string): Map<string, ModelPrice> {
  let parsed: unknown
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new PriceError(`pricing.file ${path}: ${(err as Error).message.split('\n')[0]}`)
  }
  if (!isObject(parsed) || !isObject(parsed.models)) throw new PriceError(`pricing.file ${path}: expected { models: { <model>: { input, output, … } } }`)
  return new Map(Object.entries(parsed.models).map(([name, value]) => [name, priceOf(value, `pricing.file ${path}: models.${name}`)]))
}

/** The provider names genai-prices knows our target providers by. */
function sourceProvider (provider: string | null): string | undefined {
  if (provider === 'openai' || provider === 'azure') return 'openai'
  if (provider === 'anthropic') return 'anthropic'
  return undefined
}

export interface PriceTableOptions {
  /** `pricing.models` */
  models: Record<string, PriceOverride>
  /** `pricing.file`, read: replaces the bundled table */
  file: Map<string, ModelPrice> | null
  /** Azure deployment name → the model it serves (targets' `azure.deployments`, read backwards) */
  deployments?: ReadonlyMap<string, string>
  /** largest number of model names remembered */
  maxCached?: number
}

export class PriceTable {
  readonly #overrides: Map<string, ModelPrice>
  readonly #file: Map<string, ModelPrice> | null
  readonly #deployments: ReadonlyMap<string, string>
  readonly #cache = new Map<string, PriceEntry | null>()
  readonly #maxCached: number

  constructor (opts: PriceTableOptions) {
    this.#overrides = new Map(Object.entries(opts.models).map(([name, value]) => [name, priceOf(value, `pricing.models.${name}`)]))
    this.#file = opts.file
    this.#deployments = opts.deployments ?? new Map()
    this.#maxCached = opts.maxCached ?? 2000
  }

  /** The price of a model as a request names it (`provider`: its target's provider), or null when the table does not have it. */
  lookup (model: string, provider: string | null = null): PriceEntry | null {
    const key = provider === null ? model : provider + '\u0000' + model
    const cached = this.#cache.get(key)
    if (cached !== undefined) return cached
    const found = this.#find(model, provider)
    if (this.#cache.size >= this.#maxCached) this.#cache.clear()
    this.#cache.set(key, found)
    return found
  }

  #find (name: string, provider: string | null): PriceEntry | null {
    const model = (provider === 'azure' ? this.#deployments.get(name) : undefined) ?? name
    const own = this.#own(model)
    if (own !== null) return own
    // `openai/gpt-4o`, `anthropic/claude-…`: the provider named in front
    const slash = model.indexOf('/')
    if (slash > 0) return this.#own(model.slice(slash + 1)) ?? this.#bundled(model.slice(slash + 1), model.slice(0, slash))
    return this.#bundled(model, sourceProvider(provider))
  }

  #own (model: string): PriceEntry | null {
    const override = this.#overrides.get(model)
    if (override !== undefined) return { model, price: override, source: 'config', contextWindow: null }
    const filed = this.#file?.get(model)
    if (filed !== undefined) return { model, price: filed, source: 'file', contextWindow: null }
    return null
  }

  #bundled (model: string, providerId: string | undefined): PriceEntry | null {
    if (this.#file !== null) return null
    let found
    try {
      found = calcPrice({}, model, providerId === undefined ? {} : { providerId })
    } catch {
      return null
    }
    if (found === null) return null
    const price = fromSource(found.model_price)
    return price === null ? null : { model: found.model.id, price, source: 'genai-prices', contextWindow: found.model.context_window ?? null }
  }
}

/** Azure deployment → model, from every target's `azure.deployments` (model → deployment). */
export function deploymentModels (targets: Iterable<{ azure: { deployments: Record<string, string> } }>): Map<string, string> {
  const map = new Map<string, string>()
  for (const t of targets) for (const [model, deployment] of Object.entries(t.azure.deployments)) map.set(deployment, model)
  return map
}
