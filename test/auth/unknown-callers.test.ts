/**
 * `auth.passThroughUnknown` (issue 17, item 8): callers with an unknown or missing key all carry
 * the name `(unknown)` in logs and metrics, but share no scope: the rate limit counts them per
 * address and context ids keep one conversation store per credential (or address), as plain
 * pass-through mode does. No credential shows in a log line.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'

const KNOWN = 'sk-known-client-key-000000001'

async function setup (t: TestContext, env: Record<string, string>): Promise<{ mock: MockUpstream, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_CLIENT_KEYS: KNOWN,
      GATEWAY_AUTH_PASS_THROUGH_UNKNOWN: 'true',
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
      ...env
    }
  })
  return { mock, gw }
}

function client (url: string, apiKey: string, from: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, defaultHeaders: { 'x-forwarded-for': from } })
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }

test('unknown callers at different addresses have their own rate limits', async (t) => {
  const { gw } = await setup(t, { GATEWAY_RATE_LIMIT_REQUESTS: '2' })
  const first = client(gw.url, 'sk-own-credential-one', '203.0.113.1')
  await first.chat.completions.create(chat)
  await first.chat.completions.create(chat)
  await assert.rejects(first.chat.completions.create(chat), (err: unknown) => err instanceof OpenAI.RateLimitError && err.code === 'rate_limit_exceeded')
  // another unknown caller, elsewhere: not limited by the first one's count
  const second = client(gw.url, 'sk-own-credential-two', '203.0.113.2')
  const answer = await second.chat.completions.create(chat)
  assert.ok(answer.choices.length > 0)
  // a made-up credential from the first address is still that address
  await assert.rejects(client(gw.url, 'sk-own-credential-three', '203.0.113.1').chat.completions.create(chat), (err: unknown) => err instanceof OpenAI.RateLimitError)
  const lines = gw.logs.map(l => JSON.parse(l)).filter(l => l.client === '(unknown)')
  assert.ok(lines.length >= 3, 'logs name them (unknown)')
  for (const secret of ['sk-own-credential-one', 'sk-own-credential-two', 'sk-own-credential-three']) assert.ok(!gw.logText().includes(secret), `${secret} in a log line`)
})

test("with context ids on, one unknown caller's conversation chain never goes with another's request", async (t) => {
  const { mock, gw } = await setup(t, { GATEWAY_CONTEXT_ID: 'true' })
  const one = client(gw.url, 'sk-own-tenant-one', '203.0.113.7')
  const two = client(gw.url, 'sk-own-tenant-two', '203.0.113.7')
  const first = await one.chat.completions.create(chat, { headers: { 'x-mock-context-id': 'tenant-one-chain', 'x-mock-chunks': '2' } })
  const answer = first.choices[0].message.content ?? ''
  assert.ok(!answer.includes('CONTEXT_ID'))

  const followUp = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: answer }, { role: 'user' as const, content: 'more' }] }
  await two.chat.completions.create(followUp)
  const sentForTwo = mock.requests.at(-1)?.json as { messages: Array<{ content: string }> }
  assert.ok(!sentForTwo.messages[1].content.includes('tenant-one-chain'), `tenant two's request carried ${sentForTwo.messages[1].content}`)

  // tenant one's own follow-up still gets its chain
  await one.chat.completions.create(followUp)
  const sentForOne = mock.requests.at(-1)?.json as { messages: Array<{ content: string }> }
  assert.match(sentForOne.messages[1].content, /\[CONTEXT_ID:tenant-one-chain\|/)
  for (const secret of ['sk-own-tenant-one', 'sk-own-tenant-two']) assert.ok(!gw.logText().includes(secret), `${secret} in a log line`)
})
