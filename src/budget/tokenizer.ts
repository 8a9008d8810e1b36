/**
 * Input token counts for OpenAI models (gpt-tokenizer), loaded only when budgets are on: the
 * encodings are several megabytes.
 */
const O200K = /^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d|chatgpt-|gpt-realtime|gpt-audio|gpt-oss|codex-)/
const CL100K = /^(?:gpt-4|gpt-3\.5|text-embedding-|davinci-002|babbage-002)/

export type Tokenize = (model: string, text: string) => number | null

export async function loadTokenizer (): Promise<Tokenize> {
  const [o200k, cl100k] = await Promise.all([
    import('gpt-tokenizer/encoding/o200k_base'),
    import('gpt-tokenizer/encoding/cl100k_base')
  ])
  // special-token text in a body is counted as text, never refused
  const asText = { disallowedSpecial: new Set<string>() }
  return (model, text) => {
    const name = model.startsWith('openai/') ? model.slice(7) : model
    if (O200K.test(name)) return o200k.countTokens(text, asText)
    if (CL100K.test(name)) return cl100k.countTokens(text, asText)
    return null
  }
}
