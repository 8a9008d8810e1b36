/**
 * Two gateway instances sharing one real Redis (REDIS_URL): a tag stored through one is carried
 * by the other.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { Redis } from 'ioredis'
import { startGateway, startMock } from '../helper.js'
import { startRedis } from '../redis.js'

/** A real gateway wired to Redis the way operators do it: REDIS_URL. */
async function gatewayWithRedis (t: TestContext, upstream: string, redisUrl: string): Promise<string> {
  const gw = await startGateway(t, { argv: ['-nocid', '--context-id-capacity', '5'], env: { GATEWAY_UPSTREAM_URL: upstream, GATEWAY_CONTEXT_ID_TTL_MS: '60000', REDIS_URL: redisUrl } })
  return gw.url
}

test('chains live in Redis and are shared between gateway instances', async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  t.after(() => redis.disconnect())
  const mock = await startMock(t)
  const one = new OpenAI({ baseURL: `${await gatewayWithRedis(t, mock.url, server.url)}/v1`, apiKey: 'sk-shared', maxRetries: 0 })
  const two = new OpenAI({ baseURL: `${await gatewayWithRedis(t, mock.url, server.url)}/v1`, apiKey: 'sk-shared', maxRetries: 0 })
  const stream = await one.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] }, {
    headers: { 'x-mock-context-id': 'redis-1', 'x-mock-split-tag': '1' }
  })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.ok(!text.includes('CONTEXT'))
  const keys = await redis.keys('llm-gateway:context-id:*')
  assert.equal(keys.length, 1)
  assert.ok((await redis.pttl(keys[0])) > 0, 'stored with the TTL')

  await two.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }, { role: 'user', content: 'y' }] })
  const sent = mock.requests.at(-1)?.json as { messages: Array<{ content: string }> }
  assert.match(sent.messages[0].content, /^A\n\[CONTEXT_ID:redis-1\|[0-9a-f-]{36}\]$/)
})
