/**
 * The text a stream event adds to the answer, for debug logs that show a stream as its event
 * count and assembled text rather than chunk by chunk: OpenAI chat deltas (`choices[].delta.content`),
 * legacy completions (`choices[].text`), Anthropic `content_block_delta` (`delta.text`) and the
 * Responses API (`response.output_text.delta`). Anything else adds nothing.
 */
type Json = Record<string, unknown>

function isObject (value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function eventText (value: unknown): string {
  if (!isObject(value)) return ''
  if (Array.isArray(value.choices)) {
    let out = ''
    for (const choice of value.choices) {
      if (!isObject(choice)) continue
      if (isObject(choice.delta) && typeof choice.delta.content === 'string') out += choice.delta.content
      else if (typeof choice.text === 'string') out += choice.text
    }
    return out
  }
  if (value.type === 'content_block_delta' && isObject(value.delta) && typeof value.delta.text === 'string') return value.delta.text
  if (value.type === 'response.output_text.delta' && typeof value.delta === 'string') return value.delta
  return ''
}
