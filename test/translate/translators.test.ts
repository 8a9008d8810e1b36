/**
 * The translators as pure functions: requests (what is mapped, what is refused), whole JSON
 * answers, error bodies, and the choice of a direction from the client's route and the target.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clientDialect, translationFor } from '../../src/translate/index.js'
import { messagesToChat, messagesToChatRequest, effortForBudget } from '../../src/translate/messages-to-chat.js'
import { anthropicError, openAiError } from '../../src/translate/errors.js'
import type { UpstreamTarget } from '../../src/upstream/target.js'

const target = (dialects: UpstreamTarget['dialects']): UpstreamTarget => ({ dialects, provider: 'openai' }) as unknown as UpstreamTarget

test('the route decides the client dialect; the target\'s dialects decide whether to translate', () => {
  assert.equal(clientDialect('/v1/messages'), 'messages')
  assert.equal(clientDialect('/v1/messages?beta=true'), 'messages')
  assert.equal(clientDialect('/v1/chat/completions'), 'chat')
  assert.equal(clientDialect('/v1/responses'), 'responses')
  assert.equal(clientDialect('/v1/messages/count_tokens'), null)
  assert.equal(clientDialect('/v1/embeddings'), null)
  assert.equal(translationFor('messages', target(['chat'])), messagesToChat)
  assert.equal(translationFor('messages', target(['messages', 'chat'])), null, 'same dialect: untouched')
  assert.equal(translationFor('chat', target(['chat', 'responses'])), null)
  assert.equal(translationFor(null, target(['chat'])), null)
})

test('Messages request → Chat: system blocks, images by URL, tool choice, thinking, max tokens by provider', () => {
  const chat = messagesToChatRequest({
    model: 'm',
    max_tokens: 64,
    system: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b', cache_control: { type: 'ephemeral' } }],
    messages: [
      { role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x/y.png' } }] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 's' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }] }
    ],
    tools: [{ name: 'f', input_schema: { type: 'object' } }],
    tool_choice: { type: 'tool', name: 'f', disable_parallel_tool_use: true },
    thinking: { type: 'enabled', budget_tokens: 8000 },
    top_p: 0.9
  }, 'openai-compatible')
  assert.deepEqual(chat, {
    model: 'm',
    messages: [
      { role: 'system', content: 'a\n\nb' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] }
    ],
    max_tokens: 64,
    top_p: 0.9,
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
    tool_choice: { type: 'function', function: { name: 'f' } },
    parallel_tool_calls: false,
    reasoning_effort: 'medium'
  })
  assert.equal(effortForBudget(1024), 'low')
  assert.equal(effortForBudget(32000), 'high')
  const none = messagesToChatRequest({ model: 'm', messages: [], tool_choice: { type: 'none' }, tools: [] }, 'openai')
  assert.equal(none.tool_choice, 'none')
})

test('Messages request → Chat: what cannot be carried is refused, naming the field', () => {
  const refused = (body: object, field: RegExp): void => {
    assert.throws(() => messagesToChatRequest({ model: 'm', messages: [], ...body }, 'openai'), (err: Error & { statusCode?: number }) => {
      assert.equal(err.statusCode, 400)
      assert.match(err.message, field)
      return true
    })
  }
  refused({ top_k: 3 }, /'top_k'/)
  refused({ mcp_servers: [{}] }, /'mcp_servers'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, /'messages\[0\]\.content\[0\]\.type'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'x', content: [{ type: 'image', source: {} }] }] }] }, /content\[0\]\.content\[0\]\.type/)
  refused({ system: [{ type: 'image' }] }, /'system\[0\]\.type'/)
  refused({ messages: [{ role: 'system', content: 'x' }] }, /'messages\[0\]\.role'/)
  // explicit nulls are unset options, not features
  assert.doesNotThrow(() => messagesToChatRequest({ model: 'm', messages: [], top_k: null }, 'openai'))
})

test('Chat answer → Message: text, reasoning, tool calls, stop reasons and cached usage', () => {
  const { answer } = messagesToChat.request({ model: 'm', messages: [], stop_sequences: ['END'] }, 'openai')
  const msg = answer.json({
    id: 'chatcmpl-9',
    model: 'gpt-x',
    choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: 'ok', reasoning_content: 'why', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] } }],
    usage: { prompt_tokens: 100, completion_tokens: 7, total_tokens: 107, prompt_tokens_details: { cached_tokens: 60 } }
  })
  assert.deepEqual(msg, {
    id: 'msg_chatcmpl-9',
    type: 'message',
    role: 'assistant',
    model: 'gpt-x',
    content: [{ type: 'thinking', thinking: 'why', signature: '' }, { type: 'text', text: 'ok' }, { type: 'tool_use', id: 'c1', name: 'f', input: { x: 2 } }],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 40, cache_creation_input_tokens: 0, cache_read_input_tokens: 60, output_tokens: 7 }
  })
  const stops: Array<[object, string, string | null]> = [
    [{ finish_reason: 'stop' }, 'end_turn', null],
    [{ finish_reason: 'length' }, 'max_tokens', null],
    [{ finish_reason: 'content_filter' }, 'refusal', null],
    [{ finish_reason: 'stop', stop_reason: 'END' }, 'stop_sequence', 'END'],
    [{ finish_reason: 'stop', stop_reason: 'OTHER' }, 'end_turn', null]
  ]
  for (const [choice, reason, sequence] of stops) {
    const out = answer.json({ id: 'x', choices: [{ index: 0, message: { content: 'a' }, ...choice }] }) as { stop_reason: string, stop_sequence: string | null }
    assert.equal(out.stop_reason, reason)
    assert.equal(out.stop_sequence, sequence)
  }
})

test('error bodies: the upstream\'s message in the client\'s shape, the type by status', () => {
  assert.deepEqual(anthropicError(529, { error: { message: 'busy', type: 'server_error' } }), { type: 'error', error: { type: 'overloaded_error', message: 'busy' } })
  assert.deepEqual(anthropicError(503, 'Service Unavailable'), { type: 'error', error: { type: 'overloaded_error', message: 'Service Unavailable' } })
  assert.deepEqual(anthropicError(429, null), { type: 'error', error: { type: 'rate_limit_error', message: 'The upstream answered with status 429' } })
  assert.deepEqual(anthropicError(404, { type: 'error', error: { type: 'not_found_error', message: 'no model' } }).valueOf(), { type: 'error', error: { type: 'not_found_error', message: 'no model' } })
  assert.deepEqual(openAiError(429, { type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }), { error: { message: 'slow down', type: 'requests', param: null, code: 'rate_limit_error' } })
  assert.deepEqual(openAiError(529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }), { error: { message: 'Overloaded', type: 'server_error', param: null, code: 'overloaded_error' } })
})
