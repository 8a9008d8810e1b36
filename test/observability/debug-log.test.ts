/**
 * Debug logging of streams (seed 000 `-log debug`, seed 001 DEBUG_MODE, seed 004 log_responses):
 * one line per stream with the event count and the assembled text, cut at log.bodyMaxBytes, not
 * a line per chunk; keys stay out.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { startGateway, startMock } from '../helper.js'
import { eventually } from './helpers.js'

interface Line { msg: string, reqId?: string, events?: number, text?: string, textLength?: number, complete?: boolean }

const KEY = 'sk-debug-client-SECRET-abcdef12'

test('an OpenAI stream is logged once, as its event count and assembled text', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, DEBUG_MODE: 'true' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers: { 'x-mock-chunks': '6' } }).withResponse()
  let text = ''
  let chunks = 0
  for await (const c of stream) {
    chunks++
    text += c.choices[0]?.delta?.content ?? ''
  }
  const id = response.headers.get('x-request-id')
  const lines = (): Line[] => gw.logs.map(l => JSON.parse(l) as Line).filter(l => l.reqId === id)
  await eventually(() => lines().some(l => l.msg === 'response stream'), 'stream line')
  const streamLines = lines().filter(l => l.msg === 'response stream')
  assert.equal(streamLines.length, 1)
  assert.equal(streamLines[0].events, chunks + 1, 'the client\'s chunks and [DONE] (the hidden usage chunk is not counted)')
  assert.equal(streamLines[0].text, text)
  assert.equal(streamLines[0].complete, true)
  assert.ok(!lines().some(l => l.msg === 'response body'), 'no chunk-by-chunk body lines')
  assert.ok(lines().some(l => l.msg === 'request'), 'the request is logged too')
  assert.ok(!gw.logText().includes(KEY))
})

test('an Anthropic stream, with the text cut at log.bodyMaxBytes', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_LOG_RESPONSES: 'true', LOG_LEVEL: 'debug', GATEWAY_LOG_BODY_MAX_BYTES: '8' } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 })
  const stream = client.messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '5' } })
  const message = await stream.finalMessage()
  const full = message.content.map(b => (b.type === 'text' ? b.text : '')).join('')
  assert.ok(full.length > 8)
  await eventually(() => gw.logs.some(l => l.includes('"response stream"')), 'stream line')
  const line = gw.logs.map(l => JSON.parse(l) as Line).find(l => l.msg === 'response stream') as Line
  assert.equal(line.textLength, full.length)
  assert.equal(line.text, `${full.slice(0, 8)}… [${full.length - 8} more characters]`)
})
