/**
 * The conformance suite's golden files: for each direction, upstream event streams with the edge
 * cases translators get wrong, and the exact client-side stream each must become. Each upstream
 * stream is fed whole, split at every byte boundary (multi-byte characters and CRLF pairs cut in
 * two), and one byte at a time; the output must be the golden bytes every time.
 *
 * `test/translate/golden/<client>-from-<upstream>/<case>.upstream.sse` → `<case>.client.sse`;
 * an optional `<case>.request.json` is the client's request (default: a short streamed one).
 * UPDATE_GOLDEN=1 writes the client files from the current translators (then review the diff).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { streamStage } from '../../src/translate/stage.js'
import { directionByName } from '../../src/translate/index.js'
import type { Json } from '../../src/translate/shared.js'

const ROOT = join(import.meta.dirname, 'golden')
const DEFAULT_REQUEST: Record<string, Json> = {
  messages: { model: 'gpt-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], stream: true },
  chat: { model: 'claude-x', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } },
  responses: { model: 'gpt-x', input: 'hi', stream: true }
}

function run (dir: string, name: string, chunks: Buffer[]): string {
  const [client, upstream] = dir.split('-from-')
  const direction = directionByName(client, upstream)
  assert.ok(direction !== null, `no direction ${dir}`)
  const requestFile = join(ROOT, dir, `${name}.request.json`)
  const request = existsSync(requestFile) ? JSON.parse(readFileSync(requestFile, 'utf8')) as Json : DEFAULT_REQUEST[client]
  const stage = streamStage(direction.request(request, 'openai').answer.stream(), 1024 * 1024)
  let out = ''
  for (const chunk of chunks) out += String(stage.write(chunk))
  // the clock is the gateway's (Anthropic sends no creation time)
  return (out + String(stage.end())).replace(/"(created|created_at)":\d+/g, '"$1":0')
}

for (const dir of readdirSync(ROOT)) {
  for (const file of readdirSync(join(ROOT, dir)).filter(f => f.endsWith('.upstream.sse'))) {
    const name = file.slice(0, -'.upstream.sse'.length)
    test(`golden ${dir}/${name}: whole, split at every byte, byte by byte`, () => {
      const bytes = readFileSync(join(ROOT, dir, file))
      const expectedFile = join(ROOT, dir, `${name}.client.sse`)
      const whole = run(dir, name, [bytes])
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(expectedFile, whole)
      const expected = readFileSync(expectedFile, 'utf8')
      assert.equal(whole, expected)
      for (let i = 1; i < bytes.length; i++) {
        assert.equal(run(dir, name, [bytes.subarray(0, i), bytes.subarray(i)]), expected, `split at byte ${i}`)
      }
      const single: Buffer[] = []
      for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1))
      assert.equal(run(dir, name, single), expected, 'byte by byte')
    })
  }
}

test('a translated stream parses each upstream event once, and nothing else', () => {
  for (const dir of readdirSync(ROOT)) {
    for (const file of readdirSync(join(ROOT, dir)).filter(f => f.endsWith('.upstream.sse'))) {
      const name = file.slice(0, -'.upstream.sse'.length)
      const bytes = readFileSync(join(ROOT, dir, file))
      // data lines that hold JSON ([DONE] is compared, not parsed)
      const events = bytes.toString('utf8').split(/\r?\n/).filter(l => l.startsWith('data: {')).length
      const parse = JSON.parse
      let calls = 0
      JSON.parse = function counted (this: unknown, ...args: Parameters<typeof JSON.parse>) {
        calls++
        return parse.apply(this, args) as unknown
      }
      try {
        run(dir, name, [bytes])
      } finally {
        JSON.parse = parse
      }
      // the golden's own request file is read before the run: only the stream's parses count
      const requestParses = existsSync(join(ROOT, dir, `${name}.request.json`)) ? 1 : 0
      assert.ok(calls - requestParses <= events, `${dir}/${name}: ${calls - requestParses} parses for ${events} events`)
    }
  }
})
