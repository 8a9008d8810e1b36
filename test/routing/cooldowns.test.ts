/**
 * Cooldowns of model group deployments: `allowedFails` failures within `cooldownMs` take a
 * deployment out of rotation for `cooldownMs` (or a longer Retry-After); per process without Redis,
 * and shared by the replicas through a real redis-server. `GET /admin/targets` shows it, and the
 * metrics count attempts, cooldowns and failovers.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { startRedis } from '../redis.js'
import { until } from '../poll.js'
import type { MockUpstream } from '../../mock/upstream.js'

const CHAT = '/v1/chat/completions'
const ADMIN = 'admin-token-cooldowns-5e6f7a'

function json (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
}

async function failing (t: TestContext, status: number, headers: Record<string, string> = {}): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, (_req, res) => { json(res, status, { error: { message: `upstream says ${status}`, type: 'server_error' } }, headers) })
  return mock
}

async function chat (gw: GatewayHandle, model: string): Promise<{ status: number, target: unknown, attempts: unknown }> {
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) })
  await res.body.dump()
  return { status: res.statusCode, target: res.headers['x-gateway-target'], attempts: res.headers['x-gateway-attempts'] }
}

interface DeploymentView { id: string, healthy: boolean, coolingUntil: string | null, recentFailures: Array<{ errorClass: string }>, latencyMs: number | null, inFlight: number }
interface TargetView { name: string, healthy: boolean, deployments: DeploymentView[] }

async function targets (gw: GatewayHandle): Promise<TargetView[]> {
  const res = await request(`${gw.url}/admin/targets`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.equal(res.statusCode, 200)
  return ((await res.body.json()) as { targets: TargetView[] }).targets
}

async function deployment (gw: GatewayHandle, id: string): Promise<DeploymentView> {
  const found = (await targets(gw)).flatMap(t => t.deployments).find(d => d.id === id)
  assert.ok(found !== undefined, `deployment ${id} is listed`)
  return found
}

function yaml (bad: string, good: string, group: string, extra = ''): string {
  return `
upstream: { url: "${good}" }
targets:
  bad: { url: "${bad}" }
  good: { url: "${good}" }
modelGroups:
  smart:
${group}
    deployments:
      - { target: bad, model: m-bad }
      - { target: good, model: gpt-4o }
${extra}`
}

test('allowedFails within cooldownMs cool a deployment down: skipped until it ends; admin page and metrics say so', async (t) => {
  const bad = await failing(t, 500)
  const good = await startMock(t)
  const gw = await startGateway(t, { env: { ADMIN_TOKEN: ADMIN }, yaml: yaml(bad.url, good.url, '    allowedFails: 2\n    cooldownMs: 60000') })

  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  assert.equal((await deployment(gw, 'bad/m-bad')).healthy, true, 'one failure of two allowed')
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  const cooled = await deployment(gw, 'bad/m-bad')
  assert.equal(cooled.healthy, false)
  const left = Date.parse(cooled.coolingUntil ?? '') - Date.now()
  assert.ok(left > 50_000 && left <= 60_000, `cooling for cooldownMs (${left} ms left)`)
  assert.deepEqual(cooled.recentFailures.map(f => f.errorClass), ['upstream_5xx', 'upstream_5xx'])
  assert.equal(cooled.inFlight, 0)

  // out of rotation: the next requests go straight to the next deployment
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad.count(CHAT), 2)
  assert.equal(good.count(CHAT), 4)
  const goodView = await deployment(gw, 'good/gpt-4o')
  assert.equal(goodView.healthy, true)
  assert.equal(typeof goodView.latencyMs, 'number')

  const res = await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const text = await res.body.text()
  assert.match(text, /gateway_upstream_attempts_total\{target="bad",outcome="upstream_5xx"\} 2/)
  assert.match(text, /gateway_upstream_attempts_total\{target="good",outcome="success"\} 4/)
  assert.match(text, /gateway_deployment_cooldowns_total\{deployment="bad\/m-bad"\} 1/)
  assert.match(text, /gateway_failovers_total\{group="smart"\} 2/)
  // the page is behind the admin token
  assert.equal((await request(`${gw.url}/admin/targets`)).statusCode, 401)
})

test('a Retry-After longer than cooldownMs is honoured', async (t) => {
  const bad = await failing(t, 429, { 'retry-after': '120' })
  const good = await startMock(t)
  const gw = await startGateway(t, { env: { ADMIN_TOKEN: ADMIN }, yaml: yaml(bad.url, good.url, '    allowedFails: 1\n    cooldownMs: 1000') })
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  const left = Date.parse((await deployment(gw, 'bad/m-bad')).coolingUntil ?? '') - Date.now()
  assert.ok(left > 100_000 && left <= 120_000, `cooling for the Retry-After (${left} ms left)`)
})

test('with Redis, a cooldown set by one replica is honoured by another within one second; failures add up across replicas', async (t) => {
  const redis = await startRedis(t)
  const bad = await failing(t, 503)
  const good = await startMock(t)
  const config = { env: { ADMIN_TOKEN: ADMIN, GATEWAY_REDIS_URL: redis.url }, yaml: yaml(bad.url, good.url, '    allowedFails: 2\n    cooldownMs: 60000') }
  const a = await startGateway(t, config)
  const b = await startGateway(t, config)

  // one failure on each replica: the second of the two allowed, counted in Redis
  assert.equal((await chat(a, 'smart')).attempts, '2')
  assert.equal((await chat(b, 'smart')).attempts, '2')
  // both replicas learn of the cooldown, within one second (bounded polling: 40 × 25 ms)
  await until('replica a sees the cooldown', async () => !(await deployment(a, 'bad/m-bad')).healthy, 40, 25)
  await until('replica b sees the cooldown', async () => !(await deployment(b, 'bad/m-bad')).healthy, 40, 25)
  assert.deepEqual(await chat(a, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.deepEqual(await chat(b, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad.count(CHAT), 2)

  // a cooldown one replica starts alone (allowedFails 1) reaches the other
  const bad2 = await failing(t, 500)
  const config2 = { env: { ADMIN_TOKEN: ADMIN, GATEWAY_REDIS_URL: redis.url }, yaml: yaml(bad2.url, good.url, '    allowedFails: 1\n    cooldownMs: 60000').replace('m-bad', 'm-bad-2') }
  const c = await startGateway(t, config2)
  const d = await startGateway(t, config2)
  assert.equal((await chat(c, 'smart')).attempts, '2')
  await until('replica d sees the cooldown set by c', async () => !(await deployment(d, 'bad/m-bad-2')).healthy, 40, 25)
  assert.deepEqual(await chat(d, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad2.count(CHAT), 1)
})
