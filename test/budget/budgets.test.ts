/**
 * Budgets in one gateway (memory store), with real clients against the mock upstream.
 *
 * Prices are set with pricing.models so every figure is exact: the model `m-test` costs $1000
 * per million input tokens and $2000 per million output tokens, i.e. $0.001 and $0.002 a token.
 * The mock answers 10 prompt tokens per message and `x-mock-chunks` completion tokens. `m-test`
 * has no tokenizer, so its input estimate is the body's length in bytes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { eventually } from '../observability/helpers.js'
import { loadTokenizer } from '../../src/budget/tokenizer.js'

const ALICE = 'sk-alice-budget-0000aaaa'
const BOB = 'sk-bob-nobudget-0000bbbb'
const PRICES = '{"m-test":{"input":1000,"output":2000}}'

function yaml (budgets: string, extra = ''): string {
  return `
auth:
  keys:
    - { name: alice, key: ${ALICE}, budgets: ${budgets} }
    - { name: bob, key: ${BOB} }
${extra}`
}

async function gateway (t: Parameters<typeof startGateway>[0], budgets: string, extra = '', env: Record<string, string> = {}): Promise<{ gw: GatewayHandle, mock: Awaited<ReturnType<typeof startMock>> }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_PRICING_MODELS: PRICES, ...env }, yaml: yaml(budgets, extra) })
  return { gw, mock }
}

interface View { period: string, usd: number | null, tokens: number | null, spentUsd: number, reservedUsd: number, remainingUsd: number | null, spentTokens: number, reservedTokens: number, resetsAt: string | null }

async function budgetOf (gw: GatewayHandle, key = ALICE): Promise<{ key: string | null, budgets: View[] }> {
  const res = await request(`${gw.url}/v1/gateway/budget`, { headers: { authorization: `Bearer ${key}` } })
  assert.equal(res.statusCode, 200)
  return await res.body.json() as { key: string | null, budgets: View[] }
}

/** The budget once every reservation was settled (a request settles when its response ended, which the client may see first). */
async function settledBudget (gw: GatewayHandle, key = ALICE, also: (b: View) => boolean = () => true): Promise<{ key: string | null, budgets: View[] }> {
  for (let i = 0; i < 500; i++) {
    const view = await budgetOf(gw, key)
    if (view.budgets.every(b => b.reservedUsd === 0 && b.reservedTokens === 0 && also(b))) return view
    await sleep(10)
  }
  throw new Error('reservations never settled')
}

function chat (maxTokens: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'm-test', max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }], ...extra })
}

function near (a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} ≠ ${b}`)
}

async function post (gw: GatewayHandle, body: string, headers: Record<string, string> = {}, key = ALICE) {
  return await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body })
}

test('reserve the worst case, settle the actual cost; refused with 429 budget_exceeded once the next worst case does not fit', async (t) => {
  const body = chat(5)
  const estimate = body.length * 0.001 + 5 * 0.002
  const actual = 10 * 0.001 + 5 * 0.002 // 10 prompt tokens, 5 completion tokens
  const budget = 0.2
  const { gw } = await gateway(t, `[{ usd: ${budget}, period: day }]`)
  let admitted = 0
  for (let i = 0; i < 100; i++) {
    const res = await post(gw, body, { 'x-mock-chunks': '5' })
    if (res.statusCode === 429) {
      const err = await res.body.json() as { error: { code: string, message: string, type: string } }
      assert.equal(err.error.code, 'budget_exceeded')
      assert.match(err.error.message, /key "alice": \$0\.20 per day/)
      const retryAfter = Number(res.headers['retry-after'])
      assert.ok(retryAfter >= 1 && retryAfter <= 86_400, 'Retry-After: until the day ends')
      if (retryAfter > 60) assert.equal(res.headers['x-should-retry'], 'false', 'the SDKs do not retry a refusal that lasts')
      break
    }
    assert.equal(res.statusCode, 200)
    const left = Number(res.headers['x-gateway-budget-remaining-usd'])
    near(left, budget - admitted * actual - estimate, `remaining after reserving request ${i + 1}`)
    await res.body.dump()
    admitted++
  }
  // the request that was refused: spent + its estimate would have crossed the budget
  const expected = Math.floor((budget - estimate) / actual + 1e-9) + 1
  assert.equal(admitted, expected, 'admitted while the worst case fitted')
  const view = await settledBudget(gw)
  assert.equal(view.key, 'alice')
  near(view.budgets[0].spentUsd, admitted * actual, 'spent: the actual costs')
  assert.ok(view.budgets[0].spentUsd <= budget)
  assert.equal(view.budgets[0].reservedUsd, 0, 'every reservation settled')
  assert.equal(view.budgets[0].spentTokens, admitted * 15)
  assert.ok(view.budgets[0].resetsAt !== null && Date.parse(view.budgets[0].resetsAt) > Date.now())
  const text = await gw.app.metrics?.text() ?? ''
  assert.match(text, /^gateway_refusals_total\{reason="budget_exceeded"\} 1$/m)
  assert.match(text, /^gateway_budget_remaining_usd\{scope="key",name="alice",period="day"\} /m)
})

test('the official SDKs raise the refusal as their rate-limit error, in their own error shape', async (t) => {
  const { gw } = await gateway(t, '[{ usd: 0.000001, period: hour }]')
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ALICE, maxRetries: 0 })
  await assert.rejects(openai.chat.completions.create({ model: 'm-test', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError)
    assert.equal(err.code, 'budget_exceeded')
    assert.match(err.message, /per hour/)
    return true
  })
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: ALICE, maxRetries: 0 })
  await assert.rejects(anthropic.messages.create({ model: 'm-test', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
    assert.ok(err instanceof Anthropic.RateLimitError)
    assert.equal((err.error as { error: { type: string } }).error.type, 'rate_limit_error')
    return true
  })
})

test('all or nothing across budgets: a tokens-per-minute budget beside a USD one, and a target budget', async (t) => {
  const body = chat(5, { stream: true })
  const tokensEach = body.length + 5
  // the key's token budget holds two reservations; its USD budget and the target's many more
  const { gw, mock } = await gateway(t, `[{ usd: 100, period: day }, { tokens: ${2 * tokensEach + 1}, period: minute }]`, 'upstream:\n  budgets: [{ usd: 50, period: month }]\n', { GATEWAY_ADMIN_TOKEN: 'admin-budgets-SECRET-01' })
  const held = [await post(gw, body, { 'x-mock-hold': 'tpm' }), await post(gw, body, { 'x-mock-hold': 'tpm' })]
  for (const r of held) assert.equal(r.statusCode, 200)
  const third = await post(gw, body)
  assert.equal(third.statusCode, 429)
  assert.match(((await third.body.json()) as { error: { message: string } }).error.message, new RegExp(`key "alice": ${2 * tokensEach + 1} tokens per minute`))
  const day = (await budgetOf(gw)).budgets.find(b => b.period === 'day')
  near(day?.reservedUsd ?? -1, 2 * (body.length * 0.001 + 5 * 0.002), 'the refused request reserved nothing on the day budget')
  mock.release('tpm')
  for (const r of held) await r.body.dump()
  // bob has no key budget, but the target's applies to him
  const bobs = await post(gw, chat(5), {}, BOB)
  assert.equal(bobs.statusCode, 200)
  assert.ok(Number(bobs.headers['x-gateway-budget-remaining-usd']) < 50, 'the target budget is the tightest USD budget')
  await bobs.body.dump()
  assert.deepEqual((await budgetOf(gw, BOB)).budgets, [], 'a key reads its own budgets only')
  // under a target prefix too: answered by the gateway, never forwarded
  const prefixed = await request(`${gw.url}/default/v1/gateway/budget`, { headers: { authorization: `Bearer ${ALICE}` } })
  assert.equal(prefixed.statusCode, 200)
  assert.equal(((await prefixed.body.json()) as { key: string }).key, 'alice')
  assert.equal(mock.requests.filter(r => r.path.includes('gateway/budget')).length, 0)
  // the key list shows a key's budgets (never its key)
  const keyList = await request(`${gw.url}/admin/keys`, { headers: { authorization: 'Bearer admin-budgets-SECRET-01' } })
  const listed = await keyList.body.text()
  assert.match(listed, /"budgets":\[\{"usd":100,"period":"day"\}/)
  assert.ok(!listed.includes(ALICE))
  // operators see every budget, keys' and targets'
  const admin = await request(`${gw.url}/admin/budgets`, { headers: { authorization: 'Bearer admin-budgets-SECRET-01' } })
  const all = ((await admin.body.json()) as { data: Array<{ scope: string, name: string, period: string }> }).data
  assert.deepEqual(all.map(b => `${b.scope}:${b.name}:${b.period}`), ['key:alice:day', 'key:alice:minute', 'target:default:month'])
  const nowhere = await request(`${gw.url}/nope/v1/gateway/budget`, { headers: { authorization: `Bearer ${ALICE}` } })
  assert.equal(nowhere.statusCode, 404)
  await nowhere.body.dump()
})

test('settled once whatever happened: an upstream error costs nothing, an aborted stream its partial usage', async (t) => {
  const { gw, mock } = await gateway(t, '[{ usd: 10, period: total }]')
  const failed = await post(gw, chat(5), { 'x-mock-status': '500' })
  assert.equal(failed.statusCode, 500)
  await failed.body.dump()
  let view = await settledBudget(gw)
  assert.equal(view.budgets[0].spentUsd, 0)
  assert.equal(view.budgets[0].reservedUsd, 0, 'the reservation was given back')
  assert.equal(view.budgets[0].resetsAt, null, 'total never resets')

  const res = await post(gw, chat(100, { stream: true }), { 'x-mock-chunks': '40', 'x-mock-delay-ms': '20' })
  await new Promise(resolve => res.body.once('data', resolve))
  res.body.destroy()
  await eventually(() => mock.streams.at(-1)?.aborted === true, 'upstream stream aborted')
  // gone before the usage chunk: nothing reported, nothing counted, the reservation released
  view = await settledBudget(gw)
  assert.equal(view.budgets[0].spentUsd, 0)
})

test('an aborted Anthropic stream settles the usage the upstream had reported', async (t) => {
  const { gw } = await gateway(t, '[{ usd: 10, period: day }]')
  const client = new Anthropic({ baseURL: gw.url, apiKey: ALICE, maxRetries: 0 })
  const controller = new AbortController()
  const stream = await client.messages.create({ model: 'm-test', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { headers: { 'x-mock-chunks': '40', 'x-mock-delay-ms': '30' }, signal: controller.signal })
  let deltas = 0
  try {
    for await (const event of stream) if (event.type === 'content_block_delta' && ++deltas === 2) controller.abort()
  } catch {
    // the abort surfaces as an error
  }
  // message_start reported 10 input tokens and 1 output token before the client left
  const view = await settledBudget(gw)
  near(view.budgets[0].spentUsd, 10 * 0.001 + 1 * 0.002, 'partial usage')
  assert.equal(view.budgets[0].spentTokens, 11)
})

test('no route escapes: free reads pass, unpriced routes and models are refused unless allowUnpriced', async (t) => {
  const { gw } = await gateway(t, '[{ usd: 10, period: day }]')
  const auth = { authorization: `Bearer ${ALICE}` }
  const models = await request(`${gw.url}/v1/models`, { headers: auth })
  assert.equal(models.statusCode, 200, 'model lists are free')
  await models.body.dump()
  const speech = await request(`${gw.url}/v1/audio/speech`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"model":"tts-1","input":"hi","voice":"alloy"}' })
  assert.equal(speech.statusCode, 403)
  assert.equal(((await speech.body.json()) as { error: { code: string } }).error.code, 'route_not_budgeted')
  const unknown = await post(gw, JSON.stringify({ model: 'no-price-model', messages: [] }))
  assert.equal(unknown.statusCode, 403)
  assert.match(((await unknown.body.json()) as { error: { message: string } }).error.message, /no-price-model.*has no price/)
  const bobs = await request(`${gw.url}/v1/audio/speech`, { method: 'POST', headers: { authorization: `Bearer ${BOB}`, 'content-type': 'application/json' }, body: '{"model":"tts-1","input":"hi","voice":"alloy"}' })
  assert.equal(bobs.statusCode, 200, 'a key without budgets is not affected')
  assert.equal(bobs.headers['x-gateway-budget-remaining-usd'], undefined)
  await bobs.body.dump()

  const open = await gateway(t, '[{ usd: 10, period: day }]', '', { GATEWAY_BUDGETS_ALLOW_UNPRICED: 'true' })
  const allowed = await post(open.gw, JSON.stringify({ model: 'no-price-model', messages: [{ role: 'user', content: 'x' }] }), { 'x-mock-chunks': '3' })
  assert.equal(allowed.statusCode, 200)
  await allowed.body.dump()
  // nothing was reserved: wait for the settlement itself
  const view = await settledBudget(open.gw, ALICE, b => b.spentTokens > 0)
  assert.equal(view.budgets[0].spentTokens, 13, 'counted in tokens')
  assert.equal(view.budgets[0].spentUsd, 0)
})

test('concurrent requests: the reservations alone decide, so no more are admitted than the budget holds', async (t) => {
  const body = chat(5, { stream: true })
  const estimate = body.length * 0.001 + 5 * 0.002
  const budget = 1
  const { gw, mock } = await gateway(t, `[{ usd: ${budget}, period: day }]`)
  // the admitted streams are held open until every request was answered or refused
  const responses = await Promise.all(Array.from({ length: 60 }, async () => await post(gw, body, { 'x-mock-hold': 'all', 'x-mock-chunks': '5' })))
  const admitted = responses.filter(r => r.statusCode === 200)
  const refused = responses.filter(r => r.statusCode === 429)
  assert.equal(admitted.length + refused.length, 60)
  assert.equal(admitted.length, Math.floor(budget / estimate), 'as many worst cases as fit')
  mock.release('all')
  await Promise.all(responses.map(async r => await r.body.dump()))
  const view = await settledBudget(gw)
  near(view.budgets[0].spentUsd, admitted.length * (10 * 0.001 + 5 * 0.002), 'settled: the actual costs')
  assert.ok(view.budgets[0].spentUsd <= budget)
})

test('the byte bound first; near the limit the tokenizer count decides (OpenAI models)', async (t) => {
  const tokenize = await loadTokenizer()
  const body = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 1, messages: [{ role: 'user', content: 'The quick brown fox jumps over the lazy dog, again and again.' }] })
  const tokens = tokenize('gpt-4o-mini', body) as number
  assert.ok(tokens < body.length / 2, 'far fewer tokens than bytes')
  // $0.001 per input token, output free: the worst case is the input count in thousandths of a dollar
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: (await startMock(t)).url, GATEWAY_PRICING_MODELS: '{"gpt-4o-mini":{"input":1000,"output":0}}' },
    yaml: yaml(`[{ usd: ${(tokens + 0.5) / 1000}, period: day }]`)
  })
  const admitted = await post(gw, body)
  assert.equal(admitted.statusCode, 200, 'the byte bound did not fit, the token count did')
  near(Number(admitted.headers['x-gateway-budget-remaining-usd']), 0.0005, 'the tokenizer count was reserved')
  await admitted.body.dump()
  await settledBudget(gw)
  const refused = await post(gw, body)
  assert.equal(refused.statusCode, 429, 'what is left is below one request\'s token count')
  await refused.body.dump()
})

test('a model group: the dearest deployment\'s worst case is reserved, the answering one\'s cost settled', async (t) => {
  const failing = await startMock(t)
  const good = await startMock(t)
  failing.override('/v1/chat/completions', (_req, res) => { res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"down"}}') })
  const gw = await startGateway(t, {
    env: { GATEWAY_PRICING_MODELS: '{"dear":{"input":2000,"output":4000},"cheap":{"input":1000,"output":2000}}' },
    yaml: yaml('[{ usd: 10, period: day }]', `
upstream: { url: "${failing.url}" }
targets:
  good: { url: "${good.url}" }
modelGroups:
  smart:
    deployments:
      - { target: default, model: dear }
      - { target: good, model: cheap }
`)
  })
  const body = JSON.stringify({ model: 'smart', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })
  const res = await post(gw, body, { 'x-mock-chunks': '5' })
  assert.equal(res.statusCode, 200)
  // the byte bound of the body sent to a deployment (its model swapped in) at the dear prices
  const left = Number(res.headers['x-gateway-budget-remaining-usd'])
  assert.ok(left < 10 - (body.length - 1) * 0.002, `the dear deployment's worst case was reserved (${left})`)
  await res.body.dump()
  const view = await settledBudget(gw)
  near(view.budgets[0].spentUsd, 10 * 0.001 + 5 * 0.002, 'settled at the cheap deployment that answered')
  // a group with a deployment that has no price cannot be bounded
  const unpriced = await startGateway(t, {
    env: { GATEWAY_PRICING_MODELS: '{"cheap":{"input":1,"output":2}}' },
    yaml: yaml('[{ usd: 10, period: day }]', `
upstream: { url: "${good.url}" }
modelGroups:
  smart:
    deployments:
      - { target: default, model: cheap }
      - { target: default, model: secret-model }
`)
  })
  const refused = await post(unpriced, body)
  assert.equal(refused.statusCode, 403)
  assert.match(((await refused.body.json()) as { error: { message: string } }).error.message, /secret-model.*has no price/)
})
