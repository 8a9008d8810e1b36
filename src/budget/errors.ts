/** The budget refusals, in the shape the client's SDK reads (src/errors.ts). */
import { coded } from '../errors.js'

// a 429: both official SDKs raise it as their rate-limit error
export const BudgetExceededError = coded('GW_BUDGET_EXCEEDED', 'Budget exceeded: %s', 429, 'requests', 'budget_exceeded')
export const RouteNotBudgetedError = coded('GW_ROUTE_NOT_BUDGETED', 'This key has a budget, and %s', 403, 'permission_error', 'route_not_budgeted')
export const BudgetUnavailableError = coded('GW_BUDGET_UNAVAILABLE', 'The budget store is unavailable; retry shortly', 503, 'server_error', 'budget_unavailable')
