import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

/** Seeds 002 and 004 answer browsers with permissive CORS; the same is the default here. */
export const corsSchema = Type.Object({
  origins: Type.Array(Type.String({ minLength: 1 }), { default: ['*'], description: 'allowed origins; ["*"] for any; [] turns CORS off' }),
  allowHeaders: Type.Array(Type.String(), {
    default: ['Content-Type', 'Authorization', 'X-API-Key', 'Api-Key', 'Anthropic-Version', 'Anthropic-Beta', 'OpenAI-Beta', 'OpenAI-Organization', 'OpenAI-Project', 'X-Request-Id', 'X-Stainless-OS', 'X-Stainless-Lang', 'X-Stainless-Package-Version', 'X-Stainless-Runtime', 'X-Stainless-Runtime-Version', 'X-Stainless-Arch', 'X-Stainless-Retry-Count', 'X-Stainless-Timeout', 'Anthropic-Dangerous-Direct-Browser-Access']
  }),
  maxAgeSeconds: Type.Integer({ default: 86_400, minimum: 0 })
}, { additionalProperties: false, default: {} })

export const cors: ConfigSection = {
  key: 'cors',
  schema: corsSchema,
  options: [
    { path: 'cors.origins', env: ['GATEWAY_CORS_ORIGINS'], type: 'list', doc: 'allowed browser origins (comma list; * for any; empty value "none" turns CORS off)', apply: applyOrigins },
    { path: 'cors.maxAgeSeconds', env: ['GATEWAY_CORS_MAX_AGE'], type: 'integer', doc: 'how long browsers may cache a preflight answer' }
  ]
}

function applyOrigins (value: unknown, raw: Record<string, unknown>): void {
  const list = value as string[]
  const section = (raw.cors ?? {}) as Record<string, unknown>
  section.origins = list.length === 1 && list[0].toLowerCase() === 'none' ? [] : list
  raw.cors = section
}
