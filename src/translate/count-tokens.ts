/**
 * `POST /v1/messages/count_tokens` for a Messages client on a Chat upstream, which has no such
 * endpoint: the gateway counts. The request is translated as `/v1/messages` would be (a field
 * that cannot be carried is refused the same way), then counted with OpenAI's tokenizer:
 * o200k_base (GPT-4o and later), cl100k_base for GPT-4 and GPT-3.5. For any other model the
 * same count is an estimate (docs/translation.md): each tokenizer splits text its own way.
 */
import type { Provider } from '../upstream/target.js'
import { messagesToChatRequest } from './messages-to-chat.js'
import { type Json, isObject } from './shared.js'

/** OpenAI's accounting: tokens around each message and before the answer. */
const PER_MESSAGE = 3
const REPLY_PRIMING = 3
/** An image: OpenAI's base cost of one low-detail tile; larger images cost more upstream. */
const PER_IMAGE = 85

type Counter = (text: string) => number

let o200k: Counter | null = null
let cl100k: Counter | null = null

/** The tokenizer for `model`, loaded on first use (its tables are large). */
async function counterFor (model: string): Promise<Counter> {
  if (/^gpt-(?:4(?:-|$)|3\.5)/.test(model) && !model.startsWith('gpt-4o')) {
    cl100k ??= (await import('gpt-tokenizer/encoding/cl100k_base')).countTokens
    return cl100k
  }
  o200k ??= (await import('gpt-tokenizer/encoding/o200k_base')).countTokens
  return o200k
}

function contentTokens (content: unknown, count: Counter): number {
  if (typeof content === 'string') return count(content)
  if (!Array.isArray(content)) return 0
  let n = 0
  for (const part of content) {
    if (!isObject(part)) continue
    if (part.type === 'text' && typeof part.text === 'string') n += count(part.text)
    else if (part.type === 'image_url') n += PER_IMAGE
  }
  return n
}

/** `{ input_tokens }` for a Messages count_tokens body, as the Chat upstream would count it. */
export async function countMessageTokens (body: Json, provider: Provider): Promise<{ input_tokens: number }> {
  // count_tokens takes no max_tokens and no stream; the rest is a Messages request
  const chat = messagesToChatRequest(body, provider)
  const count = await counterFor(typeof chat.model === 'string' ? chat.model : '')
  let n = REPLY_PRIMING
  for (const message of chat.messages as Json[]) {
    n += PER_MESSAGE + contentTokens(message.content, count)
    if (Array.isArray(message.tool_calls)) n += count(JSON.stringify(message.tool_calls))
  }
  if (Array.isArray(chat.tools)) n += count(JSON.stringify(chat.tools))
  return { input_tokens: n }
}
