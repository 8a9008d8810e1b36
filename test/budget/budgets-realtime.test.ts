/**
 * A realtime session under a budget: admitted while the budget has room, each response charged
 * when its `response.done` arrives, the session ended (with an `error` event naming the budget)
 * once the budget is gone, and a new session refused with 429 until it resets.
 * Prices: `rt-test` costs $10 / $20 per million input / output tokens; the mock's response.done
 * reports 10 input and 20 output tokens, so each response costs $0.0005.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { startGateway, startMock } from '../helper.js'

const ALICE = 'sk-alice-realtime-budget-01'

test('realtime: charged per response.done, ended when the budget is gone, refused until it resets', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_PRICING_MODELS: '{"rt-test":{"input":10,"output":20}}',
      GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'alice', key: ALICE, budgets: [{ usd: 0.001, period: 'day' }] }])
    }
  })
  const url = `${gw.url.replace('http', 'ws')}/v1/realtime?model=rt-test`
  const ws = new WebSocket(url, ['realtime'], { headers: { authorization: `Bearer ${ALICE}` } })
  const seen: Array<{ type: string, error?: { code?: string } }> = []
  const closed = new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const event = JSON.parse(data.toString()) as { type: string, error?: { code?: string } }
      seen.push(event)
      // a new response as soon as one is done: the gateway must end the session when the budget is gone
      if (event.type === 'session.created' || event.type === 'response.done') ws.send(JSON.stringify({ type: 'response.create' }))
    })
    ws.once('close', (code) => resolve(code))
    ws.once('error', reject)
  })
  assert.equal(await closed, 1008)
  assert.equal(seen.filter(e => e.type === 'response.done').length, 2, 'two responses of $0.0005 fill the $0.001 budget')
  assert.equal(seen.at(-1)?.error?.code, 'budget_exceeded')

  const budget = await request(`${gw.url}/v1/gateway/budget`, { headers: { authorization: `Bearer ${ALICE}` } })
  const view = ((await budget.body.json()) as { budgets: Array<{ spentUsd: number, spentTokens: number }> }).budgets[0]
  assert.ok(Math.abs(view.spentUsd - 0.001) < 1e-12)
  assert.equal(view.spentTokens, 60)

  const refused = new WebSocket(url, ['realtime'], { headers: { authorization: `Bearer ${ALICE}` } })
  refused.on('error', () => {}) // the refusal ends the handshake
  const status = await new Promise<number>((resolve) => {
    refused.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
    refused.once('open', () => resolve(101))
  })
  refused.terminate()
  assert.equal(status, 429)
})

test('realtime with a model without a price is refused for a budgeted key', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'alice', key: ALICE, budgets: [{ usd: 1, period: 'day' }] }]) }
  })
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=unpriced-rt`, ['realtime'], { headers: { authorization: `Bearer ${ALICE}` } })
  ws.on('error', () => {}) // the refusal ends the handshake
  const status = await new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
    ws.once('open', () => resolve(101))
  })
  ws.terminate()
  assert.equal(status, 403)
})
