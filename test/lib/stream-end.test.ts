/**
 * StreamEndWatch: whether the newest event sent was a whole terminal event, however the output
 * was cut into chunks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StreamEndWatch } from '../../src/lib/stream-end.js'

function watched (chunks: Array<Buffer | string>): boolean {
  const w = new StreamEndWatch()
  for (const c of chunks) w.write(c)
  return w.complete
}

/** Every way to cut `text` into two chunks and into one-character chunks, as Buffers and strings. */
function splits (text: string): Array<Array<Buffer | string>> {
  const out: Array<Array<Buffer | string>> = [[text], [Buffer.from(text)], [...text], [...text].map(c => Buffer.from(c))]
  for (let i = 1; i < text.length; i++) {
    out.push([text.slice(0, i), text.slice(i)])
    out.push([Buffer.from(text.slice(0, i)), Buffer.from(text.slice(i))])
  }
  return out
}

const big = JSON.stringify({ type: 'response.completed', response: { output: 'x'.repeat(5000) } })
const COMPLETE = [
  'data: {"a":1}\n\ndata: [DONE]\n\n',
  'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
  `event: response.output_text.done\ndata: {}\n\nevent: response.completed\ndata: ${big}\n\n`,
  `data: ${big}\n\n`.replace('"type"', '"x"') + 'data: {"type":"response.failed"}\n\n',
  'data: {"a":1}\n\ndata: {"error":{"message":"overloaded"}}\n\n',
  'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
]
const INCOMPLETE = [
  '',
  'data: {"a":1}\n\n',
  'data: {"a":1}\n\ndata: [DONE]',
  'data: {"a":1}\n\ndata: [DONE]\n',
  'data: [DONE]\n\ndata: {"a":1}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n',
  `event: response.completed\ndata: ${big}`,
  'data: {"text":"data: [DONE]"}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","x":"event: message_stop"}\n\n'
]

test('a whole terminal event last: complete, whatever the chunking', () => {
  for (const text of COMPLETE) for (const chunks of splits(text)) assert.equal(watched(chunks), true, JSON.stringify(chunks.map(String)).slice(0, 300))
})

test('no terminal event, a cut-off one, or one followed by more: not complete', () => {
  for (const text of INCOMPLETE) for (const chunks of splits(text)) assert.equal(watched(chunks), false, JSON.stringify(chunks.map(String)).slice(0, 300))
})
