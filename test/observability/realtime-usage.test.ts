/**
 * The API the realtime relay calls: one usage record per WebSocket session with the tokens of
 * every `response.done` added up, into the totals and the token metrics; the session gauge.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { captureLogs } from '../helper.js'
import requestState from '../../plugins/request-state.js'
import metrics from '../../plugins/metrics.js'
import forwarder from '../../plugins/forwarder.js'
import settle from '../../plugins/settle.js'
import accessLog from '../../plugins/access-log.js'
import usage from '../../plugins/usage.js'
import { loadConfig } from '../../config/load.js'
import { tempDir } from '../tmp.js'

test('a realtime session: one record, response.done usages summed, gauge up and down', async (t) => {
  const { config } = loadConfig({ argv: [], env: {}, cwd: tempDir() })
  const { stream, lines } = captureLogs()
  const fastify = Fastify({ logger: { level: 'info', stream } })
  t.after(() => fastify.close())
  await fastify.register(requestState)
  await fastify.register(forwarder)
  await fastify.register(settle)
  await fastify.register(metrics, { metrics: config.metrics })
  // the usage record joins the access line
  await fastify.register(accessLog)
  await fastify.register(usage, { usage: config.usage, maxEventSize: 1 << 20 })
  // stands in for the relay: what it would do over a session's life
  fastify.get('/v1/realtime', async (request) => {
    fastify.metrics?.realtimeSessionOpened()
    request.upstream.model = 'gpt-4o-realtime-preview'
    const session = fastify.usageRecorder?.realtimeSession(request)
    const done = (input: number, output: number): unknown => ({ type: 'response.done', response: { usage: { total_tokens: input + output, input_tokens: input, output_tokens: output } } })
    session?.event({ type: 'response.created', response: { usage: null } })
    session?.event(done(10, 20))
    session?.event(done(5, 7))
    const gauge = await fastify.metrics?.text()
    session?.end({ status: 101 })
    session?.end() // once only
    fastify.metrics?.realtimeSessionClosed()
    return { gauge }
  })
  const res = await fastify.inject({ url: '/v1/realtime?model=gpt-4o-realtime-preview', headers: { upgrade: 'websocket', connection: 'upgrade' } })
  assert.match(res.json<{ gauge: string }>().gauge, /^gateway_realtime_sessions 1$/m)

  const records = lines.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.msg === 'usage')
  assert.equal(records.length, 1, 'the session record only: the upgrade request itself gets none')
  assert.equal(records[0].promptTokens, 15)
  assert.equal(records[0].completionTokens, 27)
  assert.equal(records[0].totalTokens, 42)
  assert.equal(records[0].status, 101)
  assert.equal(records[0].path, '/v1/realtime')
  assert.equal(records[0].stream, true)

  const totals = await fastify.usageStore?.query({ since: Date.now() - 60_000, until: Date.now(), group: 'model' })
  assert.deepEqual(totals?.rows.map(r => [r.name, r.totals.totalTokens]), [['gpt-4o-realtime-preview', 42]])
  const text = await fastify.metrics?.text() ?? ''
  assert.match(text, /^gateway_tokens_total\{client="anonymous",model="gpt-4o-realtime-preview",kind="completion"\} 27$/m)
  assert.match(text, /^gateway_realtime_sessions 0$/m)
})
