/**
 * Nothing a client sends or an upstream answers may crash a translator: random request bodies
 * either translate or are refused with a coded 400, and random event sequences (valid events
 * with wrong fields, events out of order, values of every JSON type) never throw. Seeded, so a
 * failure replays.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { directionByName } from '../../src/translate/index.js'
import type { Json } from '../../src/translate/shared.js'

let seed = 0x2545f491
function rand (n: number): number {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) % n
}

const KEYS = ['model', 'messages', 'input', 'system', 'role', 'content', 'type', 'text', 'tools', 'tool_choice', 'tool_calls', 'function', 'name',
  'arguments', 'image_url', 'url', 'source', 'max_tokens', 'stream', 'thinking', 'response_format', 'json_schema', 'choices', 'delta', 'index',
  'finish_reason', 'usage', 'message', 'content_block', 'partial_json', 'stop_reason', 'error', 'call_id', 'output', 'reasoning_content', 'instructions']
const STRINGS = ['', 'user', 'assistant', 'tool', 'system', 'developer', 'text', 'image', 'tool_use', 'tool_result', 'function', 'function_call',
  'function_call_output', 'message_start', 'content_block_start', 'content_block_delta', 'message_delta', 'message_stop', 'text_delta',
  'input_json_delta', 'thinking_delta', 'tool_calls', 'stop', 'length', 'auto', 'any', 'required', 'json_schema', 'data:x;base64,AA', '{"a":', 'error']

function value (depth: number): unknown {
  switch (rand(depth > 3 ? 5 : 8)) {
    case 0: return null
    case 1: return rand(3) - 1
    case 2: return rand(2) === 0
    case 3: case 4: return STRINGS[rand(STRINGS.length)]
    case 5: case 6: {
      const o: Json = {}
      for (let i = rand(5); i > 0; i--) o[KEYS[rand(KEYS.length)]] = value(depth + 1)
      return o
    }
    default: return Array.from({ length: rand(4) }, () => value(depth + 1))
  }
}

const DIRECTIONS = [['messages', 'chat'], ['chat', 'messages'], ['responses', 'chat'], ['responses', 'messages']] as const

test('random request bodies translate or are refused with a coded 400', () => {
  for (const [client, upstream] of DIRECTIONS) {
    const direction = directionByName(client, upstream)
    assert.ok(direction !== null)
    for (let i = 0; i < 3000; i++) {
      const body = value(0)
      const request = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : { messages: body, input: body }) as Json
      try {
        direction.request(request, 'openai')
      } catch (err) {
        const e = err as { statusCode?: number, code?: string }
        assert.equal(e.statusCode, 400, `${client}→${upstream}: ${JSON.stringify(request)} threw ${String(err)}`)
        assert.equal(e.code, 'GW_TRANSLATE_FIELD')
      }
    }
  }
})

test('random upstream events and answers never make a translator throw', () => {
  for (const [client, upstream] of DIRECTIONS) {
    const direction = directionByName(client, upstream)
    assert.ok(direction !== null)
    const { answer } = direction.request(client === 'responses' ? { model: 'm', input: 'x', stream: true } : { model: 'm', messages: [], stream: true }, 'openai')
    for (let run = 0; run < 300; run++) {
      const stream = answer.stream()
      let out = ''
      for (let i = rand(12); i > 0; i--) {
        const names = [undefined, 'message_start', 'content_block_delta', 'error', 'ping']
        out += rand(10) === 0 ? stream.done() : stream.event(names[rand(names.length)], value(0))
      }
      out += stream.end()
      assert.equal(typeof out, 'string')
      for (const event of out.split('\n\n').filter(e => e !== '' && !e.startsWith(':'))) {
        const data = event.split('\n').find(l => l.startsWith('data: '))?.slice(6)
        assert.ok(data !== undefined, `an event without data: ${event}`)
        if (data !== '[DONE]') JSON.parse(data)
      }
      answer.json(value(0))
      direction.error(400 + rand(200), value(0))
    }
  }
})
