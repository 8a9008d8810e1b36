import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

/**
 * Request headers the official SDKs send from a browser (openai, @anthropic-ai/sdk: read from
 * their sources), and the credential headers the gateway reads. An entry ending in `*` allows
 * every requested header with that prefix: the SDKs add `x-stainless-*` names with new helpers.
 * `User-Agent`: the SDKs set it, and browsers that let a page set it ask for it in the preflight.
 */
const SDK_REQUEST_HEADERS = [
  'Content-Type', 'Accept', 'User-Agent', 'Authorization', 'X-API-Key', 'Api-Key', 'X-Request-Id', 'Idempotency-Key',
  'OpenAI-Beta', 'OpenAI-Organization', 'OpenAI-Project',
  'Anthropic-Version', 'Anthropic-Beta', 'Anthropic-Dangerous-Direct-Browser-Access', 'Anthropic-Workspace-Id', 'Anthropic-User-Profile-Id',
  'X-Stainless-*'
]

/**
 * Browsers are answered only for the origins configured: seeds 002 and 004 allowed every origin,
 * which with an upstream key and no client keys let any web page spend it.
 */
export const corsSchema = Type.Object({
  origins: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'allowed origins; ["*"] for any; [] (the default) turns CORS off' }),
  allowHeaders: Type.Array(Type.String({ minLength: 1 }), { default: SDK_REQUEST_HEADERS, description: 'request headers a preflight may ask for; a trailing * allows a prefix' }),
  maxAgeSeconds: Type.Integer({ default: 86_400, minimum: 0 })
}, { additionalProperties: false, default: {} })

export const cors: ConfigSection = {
  key: 'cors',
  schema: corsSchema,
  options: [
    { path: 'cors.origins', env: ['GATEWAY_CORS_ORIGINS'], type: 'list', doc: 'allowed browser origins (comma list; * for any; empty or "none": CORS off)', apply: applyOrigins },
    { path: 'cors.maxAgeSeconds', env: ['GATEWAY_CORS_MAX_AGE'], type: 'integer', doc: 'how long browsers may cache a preflight answer' }
  ]
}

function applyOrigins (value: unknown, raw: Record<string, unknown>): void {
  const list = value as string[]
  const section = (raw.cors ?? {}) as Record<string, unknown>
  section.origins = list.length === 1 && list[0].toLowerCase() === 'none' ? [] : list
  raw.cors = section
}
