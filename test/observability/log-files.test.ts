/**
 * With BASE_PATH set, rotating files under BASE_PATH/logs/: usage records, access lines, and
 * warn/error lines, each one JSON object per line (seed 002 double-encoded them), with no key in
 * any of them. A log directory that cannot be written costs one warn line, never a request.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock, tempDir } from '../helper.js'

const CLIENT_KEY = 'sk-client-files-SECRET-77aa88bb'
const UPSTREAM_KEY = 'sk-upstream-files-SECRET-99cc00dd'

function linesOf (dir: string, prefix: string): Array<Record<string, unknown>> {
  const files = readdirSync(dir).filter(f => f.startsWith(`${prefix}.`))
  assert.ok(files.length > 0, `a ${prefix} file exists`)
  const lines: Array<Record<string, unknown>> = []
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8')
    assert.ok(!text.includes(CLIENT_KEY) && !text.includes(UPSTREAM_KEY), `no key in ${f}`)
    for (const line of text.split('\n')) {
      if (line === '') continue
      const value: unknown = JSON.parse(line)
      assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), `${f}: one JSON object per line, not a string`)
      lines.push(value as Record<string, unknown>)
    }
  }
  return lines
}

test('usage, access and error files: one JSON object per line, no keys', async (t) => {
  const base = tempDir()
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, BASE_PATH: base } })
  assert.equal(gw.app.logFiles?.dir, join(base, 'logs'))
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `my key ${CLIENT_KEY}` }] }, { headers: { 'x-mock-chunks': '2' } }).withResponse()
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers: { 'x-mock-chunks': '1' } })
  for await (const _c of stream) { /* drain */ }
  const failed = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'reset-before-headers' }, body: '{"model":"gpt-4o-mini","messages":[]}'
  })
  await failed.body.dump()
  assert.equal(failed.statusCode, 502)
  await gw.app.close() // flushes and closes the files

  const dir = join(base, 'logs')
  const names = readdirSync(dir)
  assert.ok(names.some(n => /^usage\.\d{4}-\d{2}-\d{2}\.\d+\.jsonl$/.test(n)), `usage file named by date: ${names.join(', ')}`)

  const usage = linesOf(dir, 'usage')
  assert.equal(usage.length, 3)
  const chatRecord = usage.find(r => r.requestId === chat.response.headers.get('x-request-id'))
  assert.equal(chatRecord?.totalTokens, 12)
  assert.match(String(chatRecord?.time), /^\d{4}-\d{2}-\d{2}T/, 'ISO time')
  assert.equal(usage.filter(r => r.stream === true && r.totalTokens === 11).length, 1, 'the stream, with its tokens')
  assert.equal(usage.find(r => r.status === 502)?.errorClass, 'upstream_reset')

  const access = linesOf(dir, 'access')
  assert.equal(access.length, 3)
  assert.ok(access.every(l => l.msg === 'request completed' && typeof l.reqId === 'string'))

  const errors = linesOf(dir, 'error')
  assert.ok(errors.length >= 1)
  assert.ok(errors.every(l => (l.level as number) >= 40), 'warn and error lines only')
  assert.ok(errors.some(l => l.msg === 'upstream request failed'))
})

test('a log directory that cannot be written: one warn line, requests served', async (t) => {
  // BASE_PATH itself is usable (black.json can go there), but logs/ is taken by a file
  const base = tempDir()
  writeFileSync(join(base, 'logs'), 'x')
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, BASE_PATH: base } })
  assert.equal(gw.app.logFiles, null)
  // (the other warn line at start is the pass-through notice: no client keys are configured)
  const warns = gw.logs.map(l => JSON.parse(l) as { level: number, msg: string }).filter(l => l.level === 40 && /log director/.test(l.msg))
  assert.equal(warns.length, 1)
  assert.match(warns[0].msg, /^log directory .+ cannot be written \((ENOTDIR|EEXIST)\): logging to stdout only$/)
  const res = await request(`${gw.url}/v1/models`)
  assert.equal(res.statusCode, 200)
  await res.body.dump()
})
