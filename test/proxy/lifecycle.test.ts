/**
 * The lifecycle's seams with the real gateway on 127.0.0.1: settling runs once per request in a
 * fixed order and survives a settler that throws (plugins/settle.ts); a `/{target}/…` prefix that
 * names no target is refused like an unknown route, after authentication (plugins/routing.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'

const KEY = 'gwk-lifecycle-test-0001'

test('a settler that throws is logged once; the usage record and the access line are still written, once per request', async (t) => {
  const mock = await startMock(t)
  const order: string[] = []
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: KEY },
    prepare (app) {
      app.settle.add('account', 'test-order', () => { order.push('account') })
      app.settle.add('account', 'broken', () => { throw new Error('settler bug') })
      app.settle.add('log', 'test-last', () => { order.push('log') })
    }
  })
  const client = new OpenAI({ apiKey: KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 })
  const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(answer.object, 'chat.completion')
  // a stream the client leaves half way is settled too, once
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '50', 'x-mock-delay-ms': '20' } })
  const first = await stream[Symbol.asyncIterator]().next()
  assert.equal(first.done, false)
  stream.controller.abort()
  await waitFor(() => order.length === 4)

  assert.deepEqual(order, ['account', 'log', 'account', 'log'], 'in step order, once per request')
  const lines = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>)
  const completed = lines.filter(l => l.msg === 'request completed' && l.path === '/v1/chat/completions')
  assert.equal(completed.length, 2, 'one access line per request')
  assert.equal(typeof completed[0].totalTokens, 'number', 'the usage record became the access line')
  assert.equal(completed[0].attempts, 1)
  assert.equal(completed[0].upstreamKey, null, 'no pool key: the client key maps to no upstream key here')
  const failures = lines.filter(l => l.msg === 'settling the request failed')
  assert.equal(failures.length, 2)
  assert.equal(failures[0].settler, 'broken')
  assert.doesNotMatch(JSON.stringify(failures), /at .*\.ts:\d+/, 'no stack trace in the line')
})

test('/{name}/v1/… with a name that is no target: 401 without a key (authentication first), 404 with one; nothing forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: KEY } })
  const before = mock.count()
  const anonymous = await request(`${gw.url}/nope/v1/models`)
  assert.equal(anonymous.statusCode, 401)
  await anonymous.body.text()
  const keyed = await request(`${gw.url}/nope/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] })
  })
  assert.equal(keyed.statusCode, 404)
  assert.equal((await keyed.body.json() as { error: { code: string } }).error.code, 'not_found')
  // a configured name (the default target's) does route
  const named = await request(`${gw.url}/default/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
  assert.equal(named.statusCode, 200)
  await named.body.text()
  assert.equal(mock.count() - before, 1, 'only the named target was asked')
})

async function waitFor (done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) await new Promise(resolve => setTimeout(resolve, 25))
  assert.ok(done(), 'settled within 10 s')
}
