/**
 * Spending caps (docs/money.md): the settings here, and the budget shape that client keys
 * (`auth.keys[].budgets`) and targets (`targets.<name>.budgets`, `upstream.budgets`) carry.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import { ConfigError } from '../errors.js'
import { StringEnum } from '../string-enum.js'
import type { GatewayConfig } from '../schema.js'

export const BUDGET_PERIODS = ['minute', 'hour', 'day', 'week', 'month', 'total'] as const

export const budgetSchema = Type.Object({
  usd: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'USD that may be spent per period' })),
  tokens: Type.Optional(Type.Integer({ minimum: 1, description: 'tokens (input plus output) per period' })),
  period: StringEnum(BUDGET_PERIODS, { description: 'calendar period in UTC; total never resets' })
}, { additionalProperties: false })

export type BudgetConfig = Static<typeof budgetSchema>

export const budgetListSchema = Type.Optional(Type.Array(budgetSchema, { description: 'spending caps: [{usd?, tokens?, period}]' }))

export const budgetsSchema = Type.Object({
  failMode: StringEnum(['closed', 'open'] as const, { default: 'closed', description: 'Redis unreachable: closed refuses budgeted requests (503 budget_unavailable), open serves them and counts in this process' }),
  allowUnpriced: Type.Boolean({ default: false, description: 'let budgeted keys use routes and models without a price (counted in tokens only); false refuses them with 403 route_not_budgeted' }),
  defaultMaxOutputTokens: Type.Integer({ default: 4096, minimum: 1, description: 'output tokens reserved for a request that sets no cap' }),
  tokenizeMaxBytes: Type.Integer({ default: 32 * 1024, minimum: 0, description: 'largest body counted with a tokenizer when its byte bound does not fit a budget; larger ones count a token per byte' }),
  reservationTtlSeconds: Type.Integer({ default: 900, minimum: 1, description: 'a reservation not settled by then (its gateway died) is given back' })
}, { additionalProperties: false, default: {} })

function check (list: BudgetConfig[] | undefined, where: string): number {
  list?.forEach((b, i) => {
    if (b.usd === undefined && b.tokens === undefined) throw new ConfigError(`${where}[${i}]: expected usd or tokens (or both)`)
  })
  return list?.length ?? 0
}

/** Every budget has a limit; budgets need the usage records their settlement reads. */
function checkBudgets (config: GatewayConfig): void {
  let n = 0
  config.auth.keys.forEach((k, i) => { n += check(k.budgets, `auth.keys[${i}] (${k.name}).budgets`) })
  n += check(config.upstream.budgets, 'upstream.budgets')
  for (const [name, t] of Object.entries(config.targets)) n += check(t.budgets, `targets.${name}.budgets`)
  if (n > 0 && !config.usage.enabled) throw new ConfigError('budgets are configured and usage.enabled is false: budgets are settled from the usage of each answer, so usage must be on')
}

export const budgets: ConfigSection = {
  key: 'budgets',
  schema: budgetsSchema,
  postProcess: checkBudgets,
  options: [
    { path: 'budgets.failMode', env: ['GATEWAY_BUDGETS_FAIL_MODE'], type: 'string', doc: 'closed (503 while Redis is unreachable) or open (serve, count in this process)' },
    { path: 'budgets.allowUnpriced', env: ['GATEWAY_BUDGETS_ALLOW_UNPRICED'], type: 'boolean', doc: 'budgeted keys may use unpriced routes and models (else 403 route_not_budgeted)' },
    { path: 'budgets.defaultMaxOutputTokens', env: ['GATEWAY_BUDGETS_DEFAULT_MAX_OUTPUT_TOKENS'], type: 'integer', doc: 'output tokens reserved when a request sets no max_tokens' },
    { path: 'budgets.tokenizeMaxBytes', env: ['GATEWAY_BUDGETS_TOKENIZE_MAX_BYTES'], type: 'integer', doc: 'largest request body counted with a tokenizer (larger: one token per byte)' },
    { path: 'budgets.reservationTtlSeconds', env: ['GATEWAY_BUDGETS_RESERVATION_TTL_SECONDS'], type: 'integer', doc: 'seconds after which an unsettled reservation is given back' }
  ]
}
