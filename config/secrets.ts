/**
 * Every secret the config holds, for the log filter and for masking `--check-config` output.
 * Sections that add secrets list their option rows with `secret: true`; values found at those
 * paths are collected here, including strings nested in lists and objects (object *values* only:
 * a section that keys a map by secret must normalise it into a list first). A path may hold `*`
 * segments to pick the secret field of each entry of a map or list, and nothing else.
 */
import type { GatewayConfig } from './schema.js'
import { allOptions } from './schema.js'
import { expandPath, getPath } from './paths.js'

export function secretsOf (config: GatewayConfig): string[] {
  const out: string[] = []
  for (const option of allOptions) {
    if (option.secret !== true) continue
    for (const path of expandPath(config, option.path)) collect(secretPart(getPath(config, path), option.secretFields), out)
  }
  return out
}

/** With `secretFields`, only those fields of each listed object are secret. */
export function secretPart (value: unknown, fields: readonly string[] | undefined): unknown {
  if (fields === undefined || !Array.isArray(value)) return value
  return value.map(item => (item !== null && typeof item === 'object')
    ? fields.map(f => (item as Record<string, unknown>)[f])
    : item)
}

function collect (value: unknown, out: string[]): void {
  if (typeof value === 'string' && value !== '') out.push(value)
  else if (Array.isArray(value)) for (const v of value) collect(v, out)
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collect(v, out)
}
