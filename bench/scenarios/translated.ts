/**
 * Scenario 10: a translated stream (issue 22). The same Anthropic Messages stream request through
 * the gateway twice, in interleaved rounds: passed through to the mock's own `/v1/messages`
 * (the default target: the mock speaks both dialects), and translated to Chat Completions on the
 * `chatonly` target (the same mock, declared `openai-compatible`) and back into Anthropic's event
 * grammar. The difference in CPU per request is what translation costs.
 */
import type { Group, RunContext, Scenario } from '../context.js'
import { cannon, type RequestSpec } from '../load.js'
import { cpuMicros } from '../processes.js'
import { UPSTREAM_KEY } from '../gateway-env.js'
import { fmt, ratio, type Row } from '../report.js'

/** the target that speaks Chat only */
const CHAT_ONLY_TARGET = 'chatonly'

/**
 * The gateway settings this scenario needs on top of bench/gateway-env.ts: the same mock as a
 * target that speaks Chat only. Added only when the scenario runs, so the others measure the
 * configuration they always did.
 */
export function translatedTargetEnv (upstreamUrl: string): Record<string, string> {
  return { GATEWAY_TARGETS: JSON.stringify({ [CHAT_ONLY_TARGET]: { url: upstreamUrl, provider: 'openai-compatible', keys: [UPSTREAM_KEY] } }) }
}

const MESSAGES_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  max_tokens: 256,
  stream: true,
  system: 'You are terse.',
  messages: [{ role: 'user', content: 'Say hello in one short sentence.' }]
})
const HEADERS = { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-mock-chunks': '17' }
const PASS_THROUGH: RequestSpec = { method: 'POST', path: '/v1/messages', body: MESSAGES_BODY, headers: HEADERS }
const TRANSLATED: RequestSpec = { method: 'POST', path: `/${CHAT_ONLY_TARGET}/v1/messages`, body: MESSAGES_BODY, headers: HEADERS }

interface Totals { ok: number, failed: number, seconds: number, cpuUs: number }

async function measure (group: Group, ctx: RunContext): Promise<Record<'plain' | 'translated', Totals>> {
  const { sizes, keys } = ctx
  const specs = { plain: PASS_THROUGH, translated: TRANSLATED }
  const totals = { plain: { ok: 0, failed: 0, seconds: 0, cpuUs: 0 }, translated: { ok: 0, failed: 0, seconds: 0, cpuUs: 0 } }
  const url = group.gateway.url
  for (const spec of Object.values(specs)) await cannon(url, [spec], keys, { connections: sizes.connections, durationS: sizes.warmS })
  for (let round = 0; round < sizes.rounds; round++) {
    for (const kind of ['plain', 'translated'] as const) {
      const cpu0 = cpuMicros(group.gateway.pid ?? 0)
      const r = await cannon(url, [specs[kind]], keys, { connections: sizes.connections, durationS: sizes.measureS })
      const t = totals[kind]
      t.cpuUs += cpuMicros(group.gateway.pid ?? 0) - cpu0
      t.ok += r.ok
      t.failed += r.non2xx + r.errors + r.timeouts
      t.seconds += r.seconds
    }
  }
  return totals
}

const rps = (x: Totals): number => x.ok / x.seconds
const cpu = (x: Totals): number => x.cpuUs / Math.max(1, x.ok)

export const translatedStream: Scenario = {
  id: 10,
  title: 'translated stream: Messages client on a Chat upstream, 17 chunks',
  mock: 'process',
  async run (group, ctx) {
    const t = await measure(group, ctx)
    const name = `10. ${this.title}`
    const rows: Row[] = [
      { scenario: name, measure: 'requests/s (pass-through Messages stream in the pipe column)', pipe: fmt(rps(t.plain), 0), gateway: fmt(rps(t.translated), 0), ratio: ratio(rps(t.translated), rps(t.plain)) },
      { scenario: name, measure: 'gateway CPU µs/request (pass-through in the pipe column)', pipe: fmt(cpu(t.plain), 0), gateway: fmt(cpu(t.translated), 0), ratio: ratio(cpu(t.translated), cpu(t.plain)) },
      { scenario: name, measure: 'failed requests', pipe: String(t.plain.failed), gateway: String(t.translated.failed), target: '0', pass: t.plain.failed + t.translated.failed === 0 }
    ]
    return rows
  }
}
