/**
 * Seed 004's field aliases through the real gateway: request keys renamed at every depth (seen
 * by the mock), per target, the seed's YAML file, and the optional reverse mapping of JSON and
 * streamed responses as the official client sees them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'

test('request keys are renamed at every depth, arrays in arrays included; values untouched', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"max_tokens":"max_completion_tokens","content":"text","secret":"hidden"}' } })
  const raw = JSON.stringify({
    model: 'gpt-4o-mini',
    max_tokens: 5,
    messages: [{ role: 'user', content: 'content max_tokens' }],
    metadata: { grid: [[{ secret: 1 }, [{ secret: [[{ content: 'deep' }]] }]]] },
    big: 12345
  })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  const seen = mock.requests.at(-1)
  assert.equal(seen?.bodyText, JSON.stringify({
    model: 'gpt-4o-mini',
    max_completion_tokens: 5,
    messages: [{ role: 'user', text: 'content max_tokens' }],
    metadata: { grid: [[{ hidden: 1 }, [{ hidden: [[{ text: 'deep' }]] }]]] },
    big: 12345
  }))
  assert.equal(Number(seen?.headers['content-length']), seen?.bodyBytes)
})

test('a body without aliased keys is forwarded byte for byte; responses untouched without reverse', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"absent":"other"}' } })
  const raw = '{ "model" : "gpt-4o-mini",  "messages": [{"role":"user","content":"hi"}], "seed": 12345678901234567890 }'
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, body: raw })
  await res.body.dump()
  assert.equal(mock.requests.at(-1)?.bodySha256, createHash('sha256').update(raw).digest('hex'))
  assert.equal(mock.requests.at(-1)?.headers['accept-encoding'], 'gzip', 'no reverse mapping: the encoding is the client\'s choice')
})

test('seed 004 YAML: field_aliases from openai-chat-proxy-config.yaml; per-target map over the global one', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `base_url: ${mock.url}\nfield_aliases:\n  temperature: temp\n  top_p: nucleus\n`
  })
  await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-a', maxRetries: 0 }).chat.completions.create({ model: 'gpt-4o-mini', temperature: 0.5, top_p: 1, messages: [{ role: 'user', content: 'x' }] })
  assert.deepEqual(Object.keys(mock.requests.at(-1)?.json as object), ['model', 'temp', 'nucleus', 'messages'])

  const perTarget = await startGateway(t, {
    yaml: `upstream:\n  url: ${mock.url}\ntransforms:\n  fieldAliases:\n    temperature: temp\n    top_p: nucleus\n  fieldAliasesByTarget:\n    default:\n      top_p: p\n    elsewhere:\n      temperature: t\n`
  })
  await new OpenAI({ baseURL: `${perTarget.url}/v1`, apiKey: 'sk-a', maxRetries: 0 }).chat.completions.create({ model: 'gpt-4o-mini', temperature: 0.5, top_p: 1, messages: [{ role: 'user', content: 'x' }] })
  assert.deepEqual(mock.requests.at(-1)?.json, { model: 'gpt-4o-mini', temp: 0.5, p: 1, messages: [{ role: 'user', content: 'x' }] })
})

test('reverse mapping: the openai client reads its own names from JSON and streamed answers', async (t) => {
  const mock = await startMock(t)
  // an upstream that calls `content` "text" and `choices` "outputs"
  mock.override('/v1/chat/completions', (req, res, record) => {
    const body = record.json as Record<string, unknown>
    assert.equal(Array.isArray(body.outputs), false)
    assert.ok(Array.isArray(body.messages))
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const chunk = (delta: object, finish: string | null): string =>
        `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', outputs: [{ index: 0, delta, finish_reason: finish }] })}\r\n\r\n`
      res.end(chunk({ role: 'assistant', text: '' }, null) + chunk({ text: 'Hé' }, null) + chunk({ text: 'llo' }, null) + chunk({}, 'stop') + 'data: [DONE]\r\n\r\n')
      return
    }
    const json = JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'm', outputs: [{ index: 0, message: { role: 'assistant', text: 'Hello', refusal: null }, finish_reason: 'stop' }] })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
  })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"content":"text","choices":"outputs"}', GATEWAY_FIELD_ALIASES_REVERSE: 'true' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-r', maxRetries: 0 })
  const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
  assert.equal(res.choices[0].message.content, 'Hello')
  assert.deepEqual((mock.requests.at(-1)?.json as { messages: unknown[] }).messages, [{ role: 'user', text: 'x' }])
  assert.equal(mock.requests.at(-1)?.headers['accept-encoding'], 'identity')
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] })
  let text = ''
  let finish: string | null = null
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? ''
    finish = chunk.choices[0]?.finish_reason ?? finish
  }
  assert.equal(text, 'Héllo')
  assert.equal(finish, 'stop')
})

test('reverse mapping and context id together: names translated before tags are followed', async (t) => {
  const mock = await startMock(t)
  mock.override('/v1/chat/completions', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (text: string): string => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { text } }] })}\n\n`
    res.end(chunk('Hi\n[CONTEXT') + chunk('_ID:both-1]') + 'data: [DONE]\n\n')
  })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"content":"text"}', GATEWAY_FIELD_ALIASES_REVERSE: '1', GATEWAY_CONTEXT_ID: '1' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-both', maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.equal(text, 'Hi\n')
  mock.override('/v1/chat/completions', null)
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }] })
  // context-id tagged the client's `content`, then the alias renamed it for the upstream
  const sent = mock.requests.at(-1)?.json as { messages: Array<Record<string, string>> }
  assert.match(sent.messages[0].text, /^A\n\[CONTEXT_ID:both-1\|[0-9a-f-]{36}\]$/)
})

test('a body nested deeper than the limit is refused with a 400 in the OpenAI shape', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"a":"b"}' } })
  const raw = `{"model":"gpt-4o-mini","x":${'['.repeat(600)}${']'.repeat(600)}}`
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw })
  assert.equal(res.statusCode, 400)
  const body = await res.body.json() as { error: { type: string, code: string } }
  assert.equal(body.error.type, 'invalid_request_error')
  assert.equal(mock.count('/v1/chat'), 0)
})

test('ambiguous reverse mapping is a config error; off adds no hook', async (t) => {
  await assert.rejects(startGateway(t, { env: { GATEWAY_FIELD_ALIASES: '{"a":"c","b":"c"}', GATEWAY_FIELD_ALIASES_REVERSE: 'true' } }), /both become "c"/)
  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9' } })
  const routes = off.app.printRoutes({ includeHooks: true })
  assert.ok(!routes.includes('renameFieldAliases') && !routes.includes('contextIdRequest'), routes)
  const on = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9', GATEWAY_FIELD_ALIASES: '{"a":"b"}', GATEWAY_CONTEXT_ID: 'true' } })
  const onRoutes = on.app.printRoutes({ includeHooks: true })
  assert.ok(onRoutes.includes('renameFieldAliases') && onRoutes.includes('contextIdRequest'), onRoutes)
})

test('reverse mapping holds JSON against the shared bound: beyond it the answer passes whole and unrewritten, one line', async (t) => {
  const mock = await startMock(t)
  const pad = 'p'.repeat(1500)
  mock.override('/v1/chat/completions', (_req, res) => {
    const json = JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'm', outputs: [{ index: 0, message: { role: 'assistant', text: pad }, finish_reason: 'stop' }] })
    res.writeHead(200, { 'content-type': 'application/json' })
    // in two parts: the first is held, the second would pass the bound
    res.write(json.slice(0, 900))
    setImmediate(() => res.end(json.slice(900)))
  })
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"content":"text","choices":"outputs"}', GATEWAY_FIELD_ALIASES_REVERSE: 'true', GATEWAY_TRANSFORM_MAX_HELD_JSON_BYTES: '1024' }
  })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' })
  assert.equal(res.statusCode, 200)
  const body = await res.body.json() as { outputs?: Array<{ message: { text: string } }> }
  assert.equal(body.outputs?.[0].message.text, pad, 'the upstream\'s names: not rewritten, not cut')
  assert.equal(gw.logs.filter(l => l.includes('reached their shared bound')).length, 1)
})
