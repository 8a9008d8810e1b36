/**
 * Responses client → Messages upstream: the two directions composed, Responses → Chat on the
 * request (then Chat → Messages), Messages → Chat → Responses on the answer. The composed stream
 * hands each chat chunk from one translator to the next as a value, never as text: still one
 * JSON parse per upstream event.
 */
import type { Provider } from '../upstream/target.js'
import { openAiError } from './errors.js'
import { DONE, MessagesToChatStream, chatToMessagesRequest, messageAnswerToChat } from './chat-to-messages.js'
import { ChatToResponsesStream, chatToResponse, responsesToChatRequest } from './responses-to-chat.js'
import { type Json, isObject, given, refuse } from './shared.js'
import type { Direction, StreamTranslator, TranslatedRequest } from './types.js'

function composedStream (request: Json, jsonTool: boolean): StreamTranslator {
  const responses = new ChatToResponsesStream(request)
  const chat = new MessagesToChatStream(jsonTool, true, (chunk) => chunk === DONE ? responses.done() : responses.event(undefined, chunk))
  return {
    event: (name, data) => chat.event(name, data),
    done: () => chat.done(),
    end: () => chat.end() + responses.end()
  }
}

function translate (body: Json, _provider: Provider): TranslatedRequest {
  // named here in the client's terms: the Chat step would call it `verbosity`
  if (isObject(body.text) && given(body.text.verbosity)) refuse('text.verbosity', 'has no counterpart in the Anthropic Messages API')
  const request = chatToMessagesRequest(responsesToChatRequest(body, 'anthropic'))
  return {
    body: request.body,
    answer: {
      json: (value) => chatToResponse(messageAnswerToChat(value, request.jsonTool), body),
      stream: () => composedStream(body, request.jsonTool)
    }
  }
}

export const responsesToMessages: Direction = {
  client: 'responses',
  upstream: 'messages',
  upstreamPath: '/v1/messages',
  usageDialect: 'anthropic',
  request: translate,
  error: openAiError
}
