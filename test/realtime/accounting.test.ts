/**
 * A realtime session is accounted like a request: counted in the open-sessions gauge while it
 * lasts, and one usage record with the session's tokens when it ends.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { startGateway, startMock } from '../helper.js'
import { until } from '../poll.js'

const ADMIN = 'admin-realtime-accounting-01'

async function gauge (url: string): Promise<number> {
  const res = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const text = await res.body.text()
  const line = text.split('\n').find(l => l.startsWith('gateway_realtime_sessions '))
  return Number(line?.split(' ')[1])
}

test('a session is in the gauge while open and leaves one usage record with its tokens', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN } })
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, ['realtime'])
  const done = new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const event = JSON.parse(data.toString()) as { type: string }
      if (event.type === 'session.created') ws.send(JSON.stringify({ type: 'response.create' }))
      if (event.type === 'response.done') resolve()
    })
    ws.once('error', reject)
  })
  await done
  assert.equal(await gauge(gw.url), 1)
  ws.close()
  await until('the session closed', async () => (await gauge(gw.url)) === 0)
  await until('the usage record was written', () => gw.logs.some(l => l.includes('"msg":"usage"') && l.includes('/v1/realtime')))
  const record = gw.logs.map(l => JSON.parse(l) as { msg: string, path?: string, status?: number, totalTokens?: number, tokens?: { total?: number } })
    .find(l => l.msg === 'usage' && l.path === '/v1/realtime')
  assert.ok(record !== undefined)
  assert.equal(record.status, 101)
  assert.ok(JSON.stringify(record).match(/"total(Tokens)?":\s*[1-9]/), `tokens in ${JSON.stringify(record)}`)
})
