/**
 * The README's five-minute tour works as written: every `curl` line of its shell blocks, sent to
 * a gateway on the embedded mock (as `npm run demo` starts it, and with the tour's client key for
 * the lines that carry one), answers 200; the SDK snippet's two clients, with the README's base
 * URLs pointed at that gateway, get their answers; the YAML example is a valid configuration.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway } from './helper.js'
import { blocks, shellWords } from './migration/guide.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const tour = readme.slice(readme.indexOf('## A five-minute tour'), readme.indexOf('## Features'))

interface Curl { method: string, path: string, headers: Record<string, string>, body?: string }

/** The request a tour `curl` line makes (the flags the tour uses: -s -N -H -d). */
function parseCurl (line: string): Curl {
  const words = shellWords(line)
  const out: Curl = { method: 'GET', path: '', headers: {} }
  for (let i = 1; i < words.length; i++) {
    const w = words[i]
    if (w === '-H') {
      const h = words[++i]
      out.headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim()
    } else if (w === '-d') {
      out.body = words[++i]
      out.method = 'POST'
    } else if (w.startsWith('localhost:8080')) out.path = w.slice('localhost:8080'.length)
  }
  return out
}

function tourCurls (): Curl[] {
  return blocks(tour, 'sh')
    .flatMap(b => b.text.replace(/\\\n\s*/g, ' ').split('\n'))
    .filter(l => l.startsWith('curl '))
    .map(parseCurl)
}

test('every curl line of the tour answers 200 from a gateway on the mock', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'mock', GATEWAY_CLIENT_KEYS: 'your-client-key' } })
  const demo = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'mock' } })
  const curls = tourCurls()
  assert.ok(curls.length >= 6, 'the tour has its curl lines')
  for (const c of curls) {
    const keyed = c.headers.authorization !== undefined || c.headers['x-api-key'] !== undefined
    const res = await request(`${keyed ? gw.url : demo.url}${c.path}`, { method: c.method as 'GET', headers: c.headers, body: c.body })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, `${c.method} ${c.path}: ${text}`)
  }
})

test('the tour\'s SDK clients, pointed at the gateway as written, get their answers', async (t) => {
  assert.ok(tour.includes("new OpenAI({ baseURL: 'http://localhost:8080/v1', apiKey: 'your-client-key' })"))
  assert.ok(tour.includes("new Anthropic({ baseURL: 'http://localhost:8080', apiKey: 'your-client-key' })"))
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'mock', GATEWAY_CLIENT_KEYS: 'your-client-key' } })
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'your-client-key', maxRetries: 0 })
  const chat = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] })
  assert.equal(chat.object, 'chat.completion')
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'your-client-key', maxRetries: 0 })
  const message = await anthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] })
  assert.equal(message.type, 'message')
})

test('the tour\'s gateway.yaml is a valid configuration', async (t) => {
  const yaml = blocks(tour, 'yaml')[0].text
  const gw = await startGateway(t, { yaml, env: { OPENAI_API_KEY: 'sk-upstream', WEB_APP_CLIENT_KEY: 'web-app-key', GATEWAY_HOST: '127.0.0.1' } })
  assert.equal(gw.config.upstream.url, 'https://api.openai.com')
  assert.equal(gw.config.auth.keys[0].name, 'web-app')
})
