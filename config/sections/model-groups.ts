/**
 * Model groups: a model name clients use that stands for an ordered list of deployments (a target
 * and the model it is asked for), tried one after the other when one fails before its answer
 * reached the client (src/routing/model-groups.ts, docs/fallback.md).
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { ConfigSection } from '../types.js'
import type { GatewayConfig } from '../schema.js'
import { ConfigError } from '../errors.js'
import { isPlainObject, setPath } from '../paths.js'
import { StringEnum } from '../string-enum.js'

export const STRATEGIES = ['fallback', 'weighted', 'least-latency'] as const
/** What a failed attempt may be retried on: a connection failure, a timeout, a status, a status class. */
export const RETRY_ON = ['connect', 'timeout', '429', '5xx', 'error-event'] as const

const deploymentSchema = Type.Object({
  target: Type.String({ minLength: 1, description: 'a configured target (default, or a name under targets)' }),
  model: Type.String({ minLength: 1, description: 'the model this target is asked for' }),
  weight: Type.Integer({ default: 1, minimum: 1, maximum: 1000, description: 'share of the traffic under strategy weighted' })
}, { additionalProperties: false })

const groupSchema = Type.Object({
  strategy: StringEnum(STRATEGIES, { default: 'fallback', description: 'fallback: in order; weighted: smooth weighted round robin; least-latency: lowest moving average time to first byte' }),
  deployments: Type.Array(deploymentSchema, { minItems: 1 }),
  retryOn: Type.Array(StringEnum(RETRY_ON), { default: ['connect', 'timeout', '429', '5xx', 'error-event'], description: 'failures tried again on the next deployment' }),
  maxAttempts: Type.Integer({ default: 3, minimum: 1, maximum: 20, description: 'upstream requests per client request, the first included' }),
  allowedFails: Type.Integer({ default: 3, minimum: 1, description: 'failures within cooldownMs before a deployment cools down' }),
  cooldownMs: Type.Integer({ default: 30_000, minimum: 100, description: 'how long a failing deployment is out of rotation (a longer Retry-After wins)' }),
  contextWindowFallback: Type.String({ default: '', description: 'group tried when an upstream says the context is too long; "" = none' }),
  streamResume: Type.Boolean({ default: false, description: 'continue a chat stream that broke midway on the next deployment (docs/fallback.md)' })
}, { additionalProperties: false })

export type ModelGroupConfig = Static<typeof groupSchema>

export const modelGroupsSchema = Type.Record(Type.String(), groupSchema, { default: {} })

/** `GATEWAY_MODEL_GROUPS` holds the YAML `modelGroups` map as JSON, for env-only deployments. */
function applyGroupsJson (value: unknown, raw: Record<string, unknown>): void {
  if (!isPlainObject(value)) throw new Error('expected a JSON object {"name": {"deployments": […]}}')
  for (const [name, group] of Object.entries(value)) setPath(raw, `modelGroups.${name}`, group)
}

function normalizeModelGroups (config: GatewayConfig): void {
  const targets = new Set(['default', ...Object.keys(config.targets)])
  for (const [name, given] of Object.entries(config.modelGroups)) {
    const where = `modelGroups.${name}`
    const group = Value.Default(groupSchema, given) as ModelGroupConfig
    config.modelGroups[name] = group
    if (name.trim() === '' || /[\s*?]/.test(name)) throw new ConfigError(`${where}: a group name is a model name: no spaces, * or ?`)
    for (const [i, d] of group.deployments.entries()) {
      if (!targets.has(d.target)) throw new ConfigError(`${where}.deployments[${i}].target = ${JSON.stringify(d.target)}: expected one of ${[...targets].join(', ')}`)
    }
    const next = group.contextWindowFallback
    if (next !== '' && (next === name || config.modelGroups[next] === undefined)) {
      throw new ConfigError(`${where}.contextWindowFallback = ${JSON.stringify(next)}: expected the name of another model group`)
    }
  }
}

export const modelGroups: ConfigSection = {
  key: 'modelGroups',
  schema: modelGroupsSchema,
  options: [
    { path: 'modelGroups', env: ['GATEWAY_MODEL_GROUPS'], type: 'json', doc: 'model groups as JSON, same shape as the YAML modelGroups map (docs/fallback.md)', apply: applyGroupsJson }
  ],
  postProcess: normalizeModelGroups
}
