/**
 * Model group strategies and the other ways a deployment is chosen or left: weighted (smooth
 * weighted round robin), least-latency (traffic leaves a slowed upstream and comes back once it
 * recovered), the context-window fallback group, and active health checks. Real upstreams on
 * loopback; which one answered is read from `x-gateway-target`.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import type { MockUpstream } from '../../mock/upstream.js'

const CHAT = '/v1/chat/completions'
const ADMIN = 'admin-token-strategies-9c8d7e'

function completion (res: ServerResponse, model: string): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
    id: 'chatcmpl-x', object: 'chat.completion', created: 0, model, choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }]
  }))
}

/** A mock whose chat answers wait `delay.ms` first (changed by the test). */
async function paced (t: TestContext, delay: { ms: number }): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, async (_req, res) => {
    if (delay.ms > 0) await sleep(delay.ms)
    completion(res, 'm')
  })
  return mock
}

async function chat (gw: GatewayHandle, model: string, body: Record<string, unknown> = {}): Promise<{ status: number, target: string, attempts: string, text: string }> {
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...body }) })
  return { status: res.statusCode, target: String(res.headers['x-gateway-target']), attempts: String(res.headers['x-gateway-attempts']), text: await res.body.text() }
}

test('weighted: smooth weighted round robin over the deployments', async (t) => {
  const heavy = await startMock(t)
  const light = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
targets:
  heavy: { url: "${heavy.url}" }
  light: { url: "${light.url}" }
modelGroups:
  spread:
    strategy: weighted
    deployments:
      - { target: heavy, model: gpt-4o, weight: 3 }
      - { target: light, model: gpt-4o-mini, weight: 1 }
`
  })
  let order = ''
  for (let i = 0; i < 8; i++) order += (await chat(gw, 'spread')).target === 'heavy' ? 'H' : 'L'
  assert.equal(order, 'HHLHHHLH', '3:1, the light deployment interleaved')
})

test('least-latency: traffic moves away from a slowed upstream and back after it recovers', async (t) => {
  const fastDelay = { ms: 0 }
  const steadyDelay = { ms: 40 }
  const fast = await paced(t, fastDelay)
  const steady = await paced(t, steadyDelay)
  const gw = await startGateway(t, {
    yaml: `
targets:
  fast: { url: "${fast.url}" }
  steady: { url: "${steady.url}" }
modelGroups:
  quick:
    strategy: least-latency
    deployments:
      - { target: steady, model: a }
      - { target: fast, model: b }
`
  })
  /** sends requests until `n` in a row were answered by `target` (at most `max` requests) */
  async function settlesOn (target: string, n: number, max: number): Promise<void> {
    let run = 0
    for (let i = 0; i < max; i++) {
      run = (await chat(gw, 'quick')).target === target ? run + 1 : 0
      if (run === n) return
    }
    assert.fail(`traffic did not settle on ${target} within ${max} requests`)
  }
  await settlesOn('fast', 5, 30)
  fastDelay.ms = 300
  await settlesOn('steady', 5, 30)
  fastDelay.ms = 0
  // the exploration turns (one request in ten) sample the recovered upstream again
  await settlesOn('fast', 5, 120)
})

test('contextWindowFallback: a context-too-long 400 goes to the other group; any other 400 is the client\'s', async (t) => {
  const small = await startMock(t)
  small.override(CHAT, (_req, res, record) => {
    const tooLong = record.bodyText?.includes('very long') === true
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({
      error: tooLong
        ? { message: 'This model\'s maximum context length is 8192 tokens.', type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' }
        : { message: 'bad temperature', type: 'invalid_request_error', param: 'temperature', code: null }
    }))
  })
  const big = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
targets:
  small: { url: "${small.url}" }
  big: { url: "${big.url}" }
modelGroups:
  short: { contextWindowFallback: long, deployments: [{ target: small, model: gpt-4o-mini }] }
  long: { deployments: [{ target: big, model: gpt-4o-128k }] }
`
  })
  const widened = await chat(gw, 'short', { messages: [{ role: 'user', content: 'a very long conversation' }] })
  assert.equal(widened.status, 200)
  assert.equal(widened.target, 'big')
  assert.equal(widened.attempts, '2')
  assert.equal((big.requests[0].json as { model: string }).model, 'gpt-4o-128k')

  const refused = await chat(gw, 'short', { temperature: 9 })
  assert.equal(refused.status, 400)
  assert.match(refused.text, /bad temperature/, 'the upstream\'s own 400, whole')
  assert.equal(big.count(CHAT), 1)
})

test('a target failing its health check is out of rotation until a check passes', async (t) => {
  let healthy = false
  const checked = await startMock(t)
  checked.override('/health', (_req, res) => { res.writeHead(healthy ? 200 : 503).end() })
  const other = await startMock(t)
  const gw = await startGateway(t, {
    env: { ADMIN_TOKEN: ADMIN },
    yaml: `
targets:
  checked: { url: "${checked.url}", healthCheck: { path: /health, intervalMs: 1000 } }
  other: { url: "${other.url}" }
modelGroups:
  g: { deployments: [{ target: checked, model: a }, { target: other, model: b }] }
`
  })
  const view = async (): Promise<{ healthy: boolean, deployments: Array<{ healthy: boolean }> }> => {
    const res = await request(`${gw.url}/admin/targets`, { headers: { authorization: `Bearer ${ADMIN}` } })
    const body = await res.body.json() as { targets: Array<{ name: string, healthy: boolean, deployments: Array<{ healthy: boolean }> }> }
    return body.targets.find(x => x.name === 'checked') as { healthy: boolean, deployments: Array<{ healthy: boolean }> }
  }
  await until('the first probe failed', async () => !(await view()).healthy, 80, 25)
  assert.equal((await view()).deployments[0].healthy, false, 'its deployments are out of rotation too')
  assert.equal((await chat(gw, 'g')).target, 'other')
  assert.equal(checked.count(CHAT), 0)
  healthy = true
  await until('a probe passed', async () => (await view()).healthy, 120, 25)
  assert.equal((await chat(gw, 'g')).target, 'checked')
})
