/**
 * Asking for stream usage on the client's behalf adds one member to the raw body (spliced before
 * its closing brace) instead of serialising the whole body again: the upstream gets the client's
 * bytes unchanged plus `"stream_options":{"include_usage":true}`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { addJsonMembers } from '../../src/proxy/proxy-body.js'
import { startGateway, startMock } from '../helper.js'

const MEMBER = '"stream_options":{"include_usage":true}'

test('addJsonMembers: before the closing brace, with a comma unless the object is empty', () => {
  const add = (raw: string): string => addJsonMembers(Buffer.from(raw), MEMBER).toString()
  assert.equal(add('{"a":1}'), `{"a":1,${MEMBER}}`)
  assert.equal(add('{"a":{"b":[1,{}]}}  \n'), `{"a":{"b":[1,{}]},${MEMBER}}  \n`)
  assert.equal(add('{ }'), `{ ${MEMBER}}`)
  assert.equal(add('{\n  "x": "}"\n}\n'), `{\n  "x": "}"\n,${MEMBER}}\n`)
  for (const raw of ['{"a":1}', '{ }', '{"x":"}","y":[{}]} ']) assert.doesNotThrow(() => JSON.parse(add(raw)))
})

test('the upstream gets the client\'s body bytes plus the one member; an own stream_options is merged', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  // odd spacing and key order: a re-serialised body would differ from it
  const body = '{ "stream" : true, "model":"gpt-4o-mini",  "messages":[{"role":"user","content":"hé \\u00e9"}] }'
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  assert.equal(res.statusCode, 200)
  const text = await res.body.text()
  assert.ok(!text.includes('"usage"'), 'the client did not ask for usage and sees none')
  assert.equal(mock.requests.at(-1)?.bodyText, `{ "stream" : true, "model":"gpt-4o-mini",  "messages":[{"role":"user","content":"hé \\u00e9"}] ,${MEMBER}}`)

  const own = '{"stream":true,"model":"gpt-4o-mini","stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}'
  const second = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: own })
  await second.body.text()
  assert.deepEqual((mock.requests.at(-1)?.json as { stream_options: unknown }).stream_options, { include_usage: true })
})
