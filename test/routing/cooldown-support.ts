/** What the cooldown tests share: failing upstreams, a two-deployment group, the admin page. */
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { request } from 'undici'
import { startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'

const CHAT = '/v1/chat/completions'
export const ADMIN = 'admin-token-cooldowns-5e6f7a'

function json (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
}

export async function failing (t: TestContext, status: number, headers: Record<string, string> = {}): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, (_req, res) => { json(res, status, { error: { message: `upstream says ${status}`, type: 'server_error' } }, headers) })
  return mock
}

export async function chat (gw: GatewayHandle, model: string): Promise<{ status: number, target: unknown, attempts: unknown }> {
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

export async function deployment (gw: GatewayHandle, id: string): Promise<DeploymentView> {
  const found = (await targets(gw)).flatMap(t => t.deployments).find(d => d.id === id)
  assert.ok(found !== undefined, `deployment ${id} is listed`)
  return found
}

export function yaml (bad: string, good: string, group: string, extra = ''): string {
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
