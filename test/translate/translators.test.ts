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
import { chatToMessages, chatToMessagesRequest, DEFAULT_MAX_TOKENS, finishReason } from '../../src/translate/chat-to-messages.js'
import { responsesToChat, responsesToChatRequest } from '../../src/translate/responses-to-chat.js'
import { responsesToMessages } from '../../src/translate/responses-to-messages.js'
import { attemptTranslation, translateAttempt, translateHeaders } from '../../src/translate/attempt.js'
import { answerStage } from '../../src/translate/stage.js'
import { countMessageTokens } from '../../src/translate/count-tokens.js'
import type { Json } from '../../src/translate/shared.js'
import { newPlan } from '../../src/upstream/plan.js'
import { ProxyBody } from '../../src/proxy/proxy-body.js'
import type { FastifyRequest } from 'fastify'

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
  assert.equal(translationFor('responses', target(['messages'])), responsesToMessages)
  assert.equal(translationFor('responses', target(['messages', 'chat'])), responsesToChat, 'through Chat where the target offers it')
  assert.equal(translationFor('chat', target(['messages'])), chatToMessages)
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
  assert.equal(messagesToChatRequest({ model: 'm', messages: [], tool_choice: { type: 'auto' } }, 'openai').tool_choice, undefined, 'no tools: nothing to choose')
})

test('Messages request → Chat: a tool result\'s images follow the tool messages in a user message; documents as text or a PDF file part', () => {
  const chat = messagesToChatRequest({
    model: 'm',
    messages: [{
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'screenshot:' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAA' } }] },
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'notes' } },
        { type: 'document', title: 'spec.pdf', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' } }
      ]
    }]
  }, 'openai')
  assert.deepEqual(chat.messages, [
    { role: 'tool', tool_call_id: 't1', content: 'screenshot:' },
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: 'data:image/png;base64,AAA' } },
        { type: 'text', text: 'notes' },
        { type: 'file', file: { filename: 'spec.pdf', file_data: 'data:application/pdf;base64,JVBER' } }
      ]
    }
  ])
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
  refused({ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://x' } }] }] }, /'messages\[0\]\.content\[0\]\.source'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'search_result', source: 'x' }] }] }, /'messages\[0\]\.content\[0\]\.type'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'x', content: [{ type: 'document', source: {} }] }] }] }, /content\[0\]\.content\[0\]\.type/)
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

test('Chat request → Messages: the documented max_tokens default, reasoning_effort as a thinking budget, refusals', () => {
  const base = { model: 'c', messages: [{ role: 'user', content: 'hi' }] }
  assert.equal(chatToMessagesRequest(base).body.max_tokens, DEFAULT_MAX_TOKENS)
  assert.deepEqual(chatToMessagesRequest({ ...base, max_tokens: 100 }).body.max_tokens, 100)
  assert.deepEqual(chatToMessagesRequest({ ...base, max_completion_tokens: 200, max_tokens: 100 }).body.max_tokens, 200)
  const thinking = chatToMessagesRequest({ ...base, reasoning_effort: 'medium' }).body
  assert.deepEqual(thinking.thinking, { type: 'enabled', budget_tokens: 4096 })
  assert.equal(thinking.max_tokens, 4096 + DEFAULT_MAX_TOKENS)
  assert.deepEqual(chatToMessagesRequest({ ...base, reasoning_effort: 'high', max_tokens: 5000 }).body.thinking, { type: 'enabled', budget_tokens: 4999 })
  assert.equal(chatToMessagesRequest({ ...base, reasoning_effort: 'none' }).body.thinking, undefined)
  assert.deepEqual(chatToMessagesRequest({ ...base, stop: 'X', n: 1, store: false }).body.stop_sequences, ['X'])
  assert.equal(chatToMessagesRequest({ ...base, tool_choice: 'auto' }).body.tool_choice, undefined, 'no tools: nothing to choose')
  assert.deepEqual(chatToMessagesRequest({ ...base, messages: [{ role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'x' }] }] }).body.messages,
    [{ role: 'user', content: [{ type: 'text', text: 'x' }] }], 'empty text blocks are not sent (Anthropic refuses them)')
  const refused = (body: object, field: RegExp): void => {
    assert.throws(() => chatToMessagesRequest({ ...base, ...body }), (err: Error & { statusCode?: number }) => err.statusCode === 400 && field.test(err.message))
  }
  refused({ n: 3 }, /'n' above 1/)
  refused({ seed: 1 }, /'seed'/)
  refused({ presence_penalty: 0.5 }, /'presence_penalty'/)
  refused({ reasoning_effort: 'high', max_tokens: 800 }, /'max_tokens'/)
  refused({ messages: [{ role: 'user', content: 'x', name: 'bob' }] }, /'messages\[0\]\.name'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, /'messages\[0\]\.content\[0\]\.type'/)
  refused({ messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-1' } }] }] }, /'messages\[0\]\.content\[0\]\.file'/)
  assert.deepEqual(chatToMessagesRequest({ ...base, messages: [{ role: 'user', content: [{ type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBER' } }] }] }).body.messages,
    [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBER' }, title: 'a.pdf' }] }])
  refused({ messages: [{ role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] }, /arguments' is not valid JSON/)
  refused({ response_format: { type: 'json_object' }, tools: [{ type: 'function', function: { name: 'f' } }] }, /'response_format'/)
})

test('Message answer → chat completion: thinking as reasoning_content, tool calls, the JSON tool as content, usage with cache', () => {
  const { answer } = chatToMessages.request({ model: 'c', messages: [] }, 'anthropic')
  const out = answer.json({
    id: 'msg_1',
    model: 'claude-x',
    content: [{ type: 'thinking', thinking: 'hm', signature: 's' }, { type: 'text', text: 'ok' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }],
    stop_reason: 'tool_use',
    usage: { input_tokens: 5, output_tokens: 3, cache_read_input_tokens: 10, cache_creation_input_tokens: 2 }
  }) as { choices: Array<{ message: unknown, finish_reason: string }>, usage: unknown, id: string }
  assert.equal(out.id, 'chatcmpl-msg_1')
  assert.deepEqual(out.choices[0].message, {
    role: 'assistant', content: 'ok', refusal: null, reasoning_content: 'hm', tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]
  })
  assert.equal(out.choices[0].finish_reason, 'tool_calls')
  assert.deepEqual(out.usage, { prompt_tokens: 17, completion_tokens: 3, total_tokens: 20, prompt_tokens_details: { cached_tokens: 10 } })
  const json = chatToMessages.request({ model: 'c', messages: [], response_format: { type: 'json_object' } }, 'anthropic').answer
  const forced = json.json({ id: 'm', content: [{ type: 'tool_use', id: 't', name: 'json_response', input: { x: true } }], stop_reason: 'tool_use' }) as { choices: Array<{ message: { content: string, tool_calls?: unknown }, finish_reason: string }> }
  assert.equal(forced.choices[0].message.content, '{"x":true}')
  assert.equal(forced.choices[0].message.tool_calls, undefined)
  assert.equal(forced.choices[0].finish_reason, 'stop')
  for (const [stop, finish] of [['end_turn', 'stop'], ['stop_sequence', 'stop'], ['max_tokens', 'length'], ['refusal', 'content_filter']]) {
    assert.equal(finishReason(stop, false), finish)
  }
})

test('Responses request → Chat: items, developer messages, text formats; previous_response_id refused', () => {
  const chat = responsesToChatRequest({
    model: 'm',
    instructions: 'sys',
    input: [
      { role: 'developer', content: [{ type: 'input_text', text: 'dev' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look' }, { type: 'input_image', image_url: 'https://x/i.png', detail: 'low' }] },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { role: 'assistant', content: [{ type: 'output_text', text: 'calling' }] },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { type: 'function_call', call_id: 'c2', name: 'g', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c1', output: 'one' },
      { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'two' }] }
    ],
    text: { format: { type: 'json_object' } },
    reasoning: { effort: 'low', summary: 'auto' },
    tool_choice: { type: 'function', name: 'f' },
    store: false
  }, 'openai')
  assert.deepEqual(chat, {
    model: 'm',
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'developer', content: 'dev' },
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'https://x/i.png', detail: 'low' } }] },
      { role: 'assistant', content: 'calling', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'one' },
      { role: 'tool', tool_call_id: 'c2', content: 'two' }
    ],
    tool_choice: { type: 'function', function: { name: 'f' } },
    response_format: { type: 'json_object' },
    reasoning_effort: 'low'
  })
  const refused = (body: object, field: RegExp): void => {
    assert.throws(() => responsesToChatRequest({ model: 'm', input: 'x', ...body }, 'openai'), (err: Error & { statusCode?: number }) => err.statusCode === 400 && field.test(err.message))
  }
  refused({ previous_response_id: 'resp_1' }, /'previous_response_id' cannot be served/)
  refused({ store: true }, /'store'/)
  refused({ include: ['file_search_call.results'] }, /'include\[0\]'/)
  // what Codex sends on every request
  const codex = responsesToChatRequest({ model: 'm', input: 'x', store: false, include: ['reasoning.encrypted_content'], prompt_cache_key: 'k', reasoning: { effort: 'high', summary: 'auto' }, parallel_tool_calls: false }, 'openai')
  assert.deepEqual(codex, { model: 'm', messages: [{ role: 'user', content: 'x' }], parallel_tool_calls: false, prompt_cache_key: 'k', reasoning_effort: 'high' })
  refused({ input: [{ type: 'input_file', file_id: 'f' }] }, /'input\[0\]\.type'/)
  refused({ input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'f' }] }] }, /image_url/)
  refused({ conversation: 'conv_1' }, /'conversation'/)
})

test('chat completion → response: output items, incomplete on length, usage', () => {
  const { answer } = responsesToChat.request({ model: 'm', input: 'x', max_output_tokens: 5 }, 'openai')
  const res = answer.json({
    id: 'chatcmpl-7',
    created: 123,
    model: 'gpt-x',
    choices: [{ index: 0, finish_reason: 'length', message: { role: 'assistant', content: 'cut', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":' } }] } }],
    usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14, completion_tokens_details: { reasoning_tokens: 2 } }
  }) as Record<string, unknown>
  assert.equal(res.id, 'resp_chatcmpl-7')
  assert.equal(res.status, 'incomplete')
  assert.deepEqual(res.incomplete_details, { reason: 'max_output_tokens' })
  assert.equal(res.max_output_tokens, 5)
  assert.deepEqual(res.output, [
    { id: 'msg_chatcmpl-7', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'cut', annotations: [], logprobs: [] }] },
    { id: 'fc_c1', type: 'function_call', status: 'completed', call_id: 'c1', name: 'f', arguments: '{"a":' }
  ])
  assert.deepEqual(res.usage, { input_tokens: 9, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 14 })
})

test('each attempt is translated from the client\'s own body: another dialect\'s target, then one that speaks the client\'s', () => {
  const clientBody = { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }
  const raw = Buffer.from(JSON.stringify(clientBody))
  const request = { method: 'POST', upstream: { ...newPlan('/v1/messages'), model: 'm' }, proxyBody: ProxyBody.json(raw, JSON.parse(raw.toString()) as Json) } as unknown as FastifyRequest
  const chatTarget = { dialects: ['chat'], provider: 'openai', rewrites: null, azure: null } as unknown as UpstreamTarget
  const claudeTarget = { dialects: ['messages'], provider: 'anthropic', rewrites: null, azure: null } as unknown as UpstreamTarget
  translateAttempt(request, chatTarget)
  assert.equal(request.upstream.translation?.direction, messagesToChat)
  assert.equal(request.upstream.path, '/v1/chat/completions')
  assert.deepEqual(JSON.parse(request.proxyBody!.bytes().toString()), { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5 })
  translateAttempt(request, claudeTarget)
  assert.equal(request.upstream.translation, null)
  assert.equal(request.upstream.path, '/v1/messages')
  assert.deepEqual(JSON.parse(request.proxyBody!.bytes().toString()), clientBody)
  translateAttempt(request, chatTarget)
  assert.deepEqual(JSON.parse(request.proxyBody!.bytes().toString()), { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5 })
  // a model group's deployment names its own model; the request is left as it is
  const attempt = attemptTranslation(request, chatTarget, 'gpt-x')
  assert.equal(attempt?.body.model, 'gpt-x')
  assert.equal(attempt?.path, '/v1/chat/completions')
  assert.equal(JSON.parse(request.proxyBody!.bytes().toString()).model, 'm')
  assert.equal(attemptTranslation(request, claudeTarget, 'claude-x'), null)
})

test('the answer stage: an error of any status in the client\'s shape; a JSON answer too large to hold is an error, not upstream bytes', () => {
  const { answer } = messagesToChat.request({ model: 'm', messages: [] }, 'openai')
  const headers: Record<string, string | string[] | undefined> = { 'content-type': 'text/html' }
  const stage = answerStage(messagesToChat, answer, { statusCode: 502, headers, isEventStream: false }, { maxJsonBytes: 1000, maxEventSize: 1000 })
  assert.ok(stage !== null)
  assert.equal(stage.write('<html>bad gateway</html>'), '')
  assert.deepEqual(JSON.parse(String(stage.end())), { type: 'error', error: { type: 'api_error', message: '<html>bad gateway</html>' } })
  assert.equal(headers['content-type'], 'application/json')
  const small = answerStage(messagesToChat, answer, { statusCode: 200, headers: { 'content-type': 'application/json' }, isEventStream: false }, { maxJsonBytes: 10, maxEventSize: 1000 })
  assert.ok(small !== null)
  small.write('{"id":"chatcmpl-1","choices":[]}')
  assert.deepEqual(JSON.parse(String(small.end())), { type: 'error', error: { type: 'api_error', message: 'The upstream answer could not be translated' } })
  assert.equal(answerStage(messagesToChat, answer, { statusCode: 200, headers: { 'content-type': 'audio/mpeg' }, isEventStream: false }, { maxJsonBytes: 10, maxEventSize: 10 }), null)
})

test('headers of a translated attempt: the client dialect\'s go; a passed-through key moves to the upstream\'s header', () => {
  const anthropicClient = (): Record<string, string> => ({ 'x-api-key': 'k1', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'x', accept: 'text/event-stream' })
  let h: Record<string, string | string[]> = anthropicClient()
  translateHeaders(h, messagesToChat, 'openai', true)
  assert.deepEqual(h, { accept: 'text/event-stream', authorization: 'Bearer k1' })
  h = anthropicClient()
  translateHeaders(h, messagesToChat, 'azure', true)
  assert.deepEqual(h, { accept: 'text/event-stream', 'api-key': 'k1' })
  h = { 'x-api-key': 'k1', 'anthropic-version': 'v', authorization: 'Bearer upstream' }
  translateHeaders(h, messagesToChat, 'openai', false)
  assert.deepEqual(h, { 'x-api-key': 'k1', authorization: 'Bearer upstream' }, 'with an upstream key, credentials are the forwarder\'s business')
  h = { authorization: 'Bearer k2', 'openai-organization': 'org' }
  translateHeaders(h, chatToMessages, 'anthropic', true)
  assert.deepEqual(h, { 'x-api-key': 'k2' })
})

test('count_tokens: OpenAI\'s tokenizer by model, messages framed, tools and images counted', async () => {
  const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello world' }] }
  assert.deepEqual(await countMessageTokens(body, 'openai'), { input_tokens: 8 })
  // GPT-4 counts with cl100k_base: the same two tokens here
  assert.deepEqual(await countMessageTokens({ ...body, model: 'gpt-4-0613' }, 'openai'), { input_tokens: 8 })
  const withImage = await countMessageTokens({ ...body, messages: [{ role: 'user', content: [{ type: 'text', text: 'hello world' }, { type: 'image', source: { type: 'url', url: 'https://x/y.png' } }] }] }, 'openai')
  assert.equal(withImage.input_tokens, 8 + 85)
  const withTools = await countMessageTokens({ ...body, tools: [{ name: 'f', input_schema: { type: 'object' } }] }, 'openai')
  assert.ok(withTools.input_tokens > 8)
  await assert.rejects(countMessageTokens({ ...body, top_k: 2 }, 'openai'), (err: Error & { statusCode?: number }) => err.statusCode === 400)
})
