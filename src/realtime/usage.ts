/**
 * Token usage of a realtime session, from the upstream's `response.done` events. Each one carries
 * the usage of that response (its input tokens include the conversation so far, which is what
 * is billed), so the session's usage is their sum.
 */
import type { RealtimeUsage } from './summary.js'
import { addCounts, NO_TOKENS, realtimeEventCounts, type TokenCounts } from '../usage/tokens.js'

const MARKER = Buffer.from('"response.done"')

interface UsageFields {
  input_tokens?: unknown
  output_tokens?: unknown
  total_tokens?: unknown
}

function count (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0
}

export class UsageCounter {
  #usage: RealtimeUsage | null = null

  get usage (): RealtimeUsage | null {
    return this.#usage
  }

  /** Looks at one upstream text message; only `response.done` events are parsed. Returns that response's counts. */
  observe (data: Buffer): TokenCounts | null {
    // audio deltas are large and frequent: a byte search is far cheaper than parsing each one
    if (data.indexOf(MARKER) === -1) return null
    let event: unknown
    try {
      event = JSON.parse(data.toString('utf8'))
    } catch {
      return null
    }
    if (typeof event !== 'object' || event === null || (event as { type?: unknown }).type !== 'response.done') return null
    const usage = (event as { response?: { usage?: UsageFields | null } }).response?.usage
    const total = this.#usage ??= { responses: 0, inputTokens: 0, outputTokens: 0, totalTokens: 0, counts: NO_TOKENS }
    total.responses++
    const counts = realtimeEventCounts(event)
    if (counts !== null) total.counts = addCounts(total.counts, counts)
    if (usage === undefined || usage === null) return null
    const input = count(usage.input_tokens)
    const output = count(usage.output_tokens)
    total.inputTokens += input
    total.outputTokens += output
    total.totalTokens += usage.total_tokens !== undefined ? count(usage.total_tokens) : input + output
    return counts
  }
}
