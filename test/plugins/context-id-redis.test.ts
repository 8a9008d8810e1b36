/**
 * Two gateway instances sharing one Redis: a tag stored through one is carried by the other.
 * The Redis client comes from a `redis` decorator (what the Redis plugin provides), so this also
 * checks the wiring in src/app.ts.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import OpenAI from 'openai'
import type { Redis } from 'ioredis'
import app from '../../src/app.js'
import { loadConfig } from '../../config/load.js'
import { startMock, tempDir } from '../helper.js'
import { redisServerInstalled, startRedis } from '../redis.js'

async function gatewayWithRedis (t: TestContext, upstream: string, redis: Redis): Promise<string> {
  const { config } = loadConfig({ argv: ['-nocid', '--context-id-capacity', '5'], env: { GATEWAY_UPSTREAM_URL: upstream, GATEWAY_CONTEXT_ID_TTL_MS: '60000' }, cwd: tempDir() })
  const fastify = Fastify({ logger: false })
  fastify.decorate('redis', redis)
  await fastify.register(app, { config })
  t.after(() => fastify.close())
  return fastify.listen({ host: '127.0.0.1', port: 0 })
}

test('chains live in Redis and are shared between gateway instances', { skip: !redisServerInstalled() && 'redis-server not installed' }, async (t) => {
  const redis = await startRedis(t)
  const mock = await startMock(t)
  const one = new OpenAI({ baseURL: `${await gatewayWithRedis(t, mock.url, redis)}/v1`, apiKey: 'sk-shared', maxRetries: 0 })
  const two = new OpenAI({ baseURL: `${await gatewayWithRedis(t, mock.url, redis)}/v1`, apiKey: 'sk-shared', maxRetries: 0 })
  const stream = await one.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] }, {
    headers: { 'x-mock-context-id': 'redis-1', 'x-mock-split-tag': '1' }
  })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.ok(!text.includes('CONTEXT'))
  const keys = await redis.keys('gateway:context-id:*')
  assert.equal(keys.length, 1)
  assert.ok((await redis.pttl(keys[0])) > 0, 'stored with the TTL')

  await two.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }, { role: 'user', content: 'y' }] })
  const sent = mock.requests.at(-1)?.json as { messages: Array<{ content: string }> }
  assert.match(sent.messages[0].content, /^A\n\[CONTEXT_ID:redis-1\|[0-9a-f-]{36}\]$/)
})
