/**
 * Body transforms: seed 004's field aliases and seed 000's [CONTEXT_ID] conversation tags.
 * Both are off by default, and off means no hook at all on the request path.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'
import type { GatewayConfig } from '../schema.js'
import { ConfigError } from '../errors.js'

const AliasRecord = Type.Record(Type.String(), Type.String({ minLength: 1 }))

export const transformsSchema = Type.Object({
  fieldAliases: Type.Record(Type.String(), Type.String({ minLength: 1 }), { default: {}, description: 'request body keys renamed at every depth: {from: to}' }),
  fieldAliasesByTarget: Type.Record(Type.String(), AliasRecord, { default: {}, description: 'per upstream target name: {target: {from: to}}, over the global map' }),
  reverseFieldAliases: Type.Boolean({ default: false, description: 'rename the keys back (to → from) in JSON and event-stream responses' }),
  contextId: Type.Object({
    enabled: Type.Boolean({ default: false, description: 'seed 000 [CONTEXT_ID] handling' }),
    capacity: Type.Integer({ default: 10_000, minimum: 1, description: 'conversations kept in memory (least recently used go first)' }),
    ttlMs: Type.Integer({ default: 0, minimum: 0, description: 'forget a conversation after this long; 0 = never' })
  }, { additionalProperties: false, default: {} }),
  maxJsonBytes: Type.Integer({ default: 32 * 1024 * 1024, minimum: 1024, description: 'larger JSON responses pass unchanged' }),
  maxHeldJsonBytes: Type.Integer({ default: 256 * 1024 * 1024, minimum: 1024, description: 'JSON response bytes held for rewriting by all responses together; beyond it responses pass unchanged' }),
  maxEventSize: Type.Integer({ default: 8 * 1024 * 1024, minimum: 1024, description: 'larger stream lines/events (characters) pass unchanged' })
}, { additionalProperties: false, default: {} })

/** The reverse mapping must be a function: two keys renamed to one name cannot be told apart. */
export function checkTransforms (config: GatewayConfig): void {
  const t = config.transforms
  if (!t.reverseFieldAliases) return
  const maps: Array<[string, Record<string, string>]> = [['transforms.fieldAliases', t.fieldAliases]]
  for (const [target, map] of Object.entries(t.fieldAliasesByTarget)) {
    maps.push([`transforms.fieldAliasesByTarget.${target}`, { ...t.fieldAliases, ...map }])
  }
  for (const [where, map] of maps) {
    const seen = new Map<string, string>()
    for (const [from, to] of Object.entries(map)) {
      if (from === to) continue
      const other = seen.get(to)
      if (other !== undefined) {
        throw new ConfigError(`${where}: "${other}" and "${from}" both become "${to}", so reverseFieldAliases cannot tell them apart (expected distinct target names)`)
      }
      seen.set(to, from)
    }
  }
}

export const transforms: ConfigSection = {
  key: 'transforms',
  schema: transformsSchema,
  options: [
    { path: 'transforms.fieldAliases', env: ['GATEWAY_FIELD_ALIASES'], type: 'json', doc: 'JSON map of request body keys to rename at every depth, e.g. {"max_tokens":"max_output_tokens"}', seed: '004 field_aliases (YAML)' },
    { path: 'transforms.fieldAliasesByTarget', env: ['GATEWAY_FIELD_ALIASES_BY_TARGET'], type: 'json', doc: 'JSON map of target name to alias map, over the global one' },
    { path: 'transforms.reverseFieldAliases', env: ['GATEWAY_FIELD_ALIASES_REVERSE'], flags: ['field-aliases-reverse'], type: 'boolean', doc: 'rename keys back in JSON and event-stream responses' },
    { path: 'transforms.contextId.enabled', env: ['GATEWAY_CONTEXT_ID'], flags: ['context-id', 'nocid'], type: 'boolean', bare: true, doc: 'strip [CONTEXT_ID:…] tags from responses and re-insert the chain into assistant messages', seed: '000 -nocid (its name is inverted: it turns the feature on)' },
    { path: 'transforms.contextId.capacity', env: ['GATEWAY_CONTEXT_ID_CAPACITY'], flags: ['context-id-capacity', 'cache'], type: 'integer', doc: 'conversations kept in memory', seed: '000 -cache' },
    { path: 'transforms.contextId.ttlMs', env: ['GATEWAY_CONTEXT_ID_TTL_MS'], type: 'integer', doc: 'forget a conversation after this many ms (0 = never)' },
    { path: 'transforms.maxJsonBytes', env: ['GATEWAY_TRANSFORM_MAX_JSON_BYTES'], type: 'integer', doc: 'JSON responses above this size pass unchanged' },
    { path: 'transforms.maxHeldJsonBytes', env: ['GATEWAY_TRANSFORM_MAX_HELD_JSON_BYTES'], type: 'integer', doc: 'JSON bytes held for rewriting by all responses together; beyond it responses pass unchanged' },
    { path: 'transforms.maxEventSize', env: ['GATEWAY_TRANSFORM_MAX_EVENT_SIZE'], type: 'integer', doc: 'stream lines/events above this many characters pass unchanged' }
  ]
}
