/**
 * The realtime dial uses the same outbound proxy settings as the target's HTTP requests
 * (tunnelled with CONNECT), and refuses, before the upgrade, a key not allowed on the target.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocket } from 'ws'
import { startGateway, startMock } from '../helper.js'
import { startForwardProxy } from '../routing/support.js'

function firstEvent (url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['realtime'], { headers })
    ws.once('message', (data: Buffer) => { resolve((JSON.parse(data.toString()) as { type: string }).type); ws.close() })
    ws.once('unexpected-response', (_req, res) => { res.resume(); reject(new Error(`refused with ${String(res.statusCode)}`)) })
    ws.once('error', reject)
  })
}

test('a target behind an outbound proxy is dialled through it', async (t) => {
  const mock = await startMock(t)
  const proxy = await startForwardProxy(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_PROXY: proxy.url } })
  const url = `${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`
  assert.equal(await firstEvent(url), 'session.created')
  const port = new URL(mock.url).port
  assert.ok(proxy.seen.some(line => line === `CONNECT 127.0.0.1:${port}`), `proxy saw: ${proxy.seen.join(', ')}`)
})

test('a key not allowed on the target is refused with 403 before the upgrade', async (t) => {
  const mock = await startMock(t)
  const keys = JSON.stringify([{ name: 'limited', key: 'ck-limited-key-0001', allowedTargets: ['other'] }])
  const gw = await startGateway(t, {
    yaml: `upstream:\n  url: ${mock.url}\ntargets:\n  other:\n    url: ${mock.url}\n`,
    env: { GATEWAY_CLIENT_KEYS: keys }
  })
  const url = `${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`
  await assert.rejects(firstEvent(url, { authorization: 'Bearer ck-limited-key-0001' }), /refused with 403/)
  assert.equal(mock.count('/v1/realtime'), 0)
  assert.equal(await firstEvent(url.replace('/v1/realtime', '/other/v1/realtime'), { authorization: 'Bearer ck-limited-key-0001' }), 'session.created')
})
