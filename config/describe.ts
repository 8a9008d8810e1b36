/**
 * Human-facing views of the option table: `--help` text and the masked effective config that
 * `--check-config` prints. Both come from the same rows as the loader, so they cannot drift.
 */
import type { TSchema } from '@sinclair/typebox'
import { ConfigSchema, allOptions, type GatewayConfig } from './schema.js'
import { expandPath, getPath, setPath } from './paths.js'
import { REDACTED } from '../src/logging.js'

/** The default of a config path, read from the schema. */
export function defaultOf (path: string): unknown {
  let schema: TSchema | undefined = ConfigSchema
  for (const part of path.split('.')) {
    schema = (schema?.properties as Record<string, TSchema> | undefined)?.[part]
    if (schema === undefined) return undefined
  }
  return schema.default
}

export function helpText (): string {
  const lines = [
    'llm-gateway: an LLM API gateway for OpenAI-, Anthropic- and Azure-compatible APIs',
    '',
    'Usage: llm-gateway [--config FILE] [options]',
    '',
    'Precedence: built-in defaults < YAML file (--config, CONFIG_FILE, ./gateway.yaml) < environment (.env never overrides a real variable) < flags',
    '',
    '  --config FILE        YAML config file (env CONFIG_FILE / GATEWAY_CONFIG_FILE)',
    '  --check-config       validate the configuration, print it with secrets masked, exit 0 (or 2)',
    '  --version            print the version',
    '  --help               this text',
    ''
  ]
  for (const o of allOptions) {
    const flags = (o.flags ?? []).map(f => (f.length <= 2 || o.seed?.includes(`-${f}`) === true ? `-${f}` : `--${f}`)).join(', ')
    const def = defaultOf(o.path)
    const env = o.env.length > 0 ? `env ${o.env.join(', ')}` : ''
    const dflt = def !== undefined && def !== '' ? `default ${JSON.stringify(def)}` : ''
    const only = o.env.length > 0 ? '(env only)' : `(YAML ${o.path})`
    lines.push(`  ${(flags || only).padEnd(28)} ${o.doc}`)
    lines.push(`  ${''.padEnd(28)} ${[env, dflt, o.seed !== undefined ? `seed ${o.seed}` : ''].filter(Boolean).join('; ')}`)
  }
  return `${lines.join('\n')}\n`
}

export function maskedConfig (config: GatewayConfig): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown>
  for (const o of allOptions) {
    if (o.secret !== true) continue
    for (const path of expandPath(copy, o.path)) {
      const value = getPath(copy, path)
      if (value === undefined || value === '') continue
      maskAt(copy, path, o.secretFields !== undefined && Array.isArray(value) ? value.map(item => maskFields(item, o.secretFields ?? [])) : mask(value))
    }
  }
  return copy
}

/** With `secretFields`, only those fields of each listed object are masked. */
function maskFields (item: unknown, fields: readonly string[]): unknown {
  if (item === null || typeof item !== 'object') return mask(item)
  const out = { ...(item as Record<string, unknown>) }
  for (const f of fields) if (out[f] !== undefined) out[f] = mask(out[f])
  return out
}

/** setPath, except that lists on the way stay lists (`targets.oa.keys.0.key`). */
function maskAt (copy: Record<string, unknown>, path: string, masked: unknown): void {
  const cut = path.lastIndexOf('.')
  if (cut === -1) { setPath(copy, path, masked); return }
  const parent = getPath(copy, path.slice(0, cut))
  if (parent !== null && typeof parent === 'object') (parent as Record<string, unknown>)[path.slice(cut + 1)] = masked
}

function mask (value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? '' : REDACTED
  if (Array.isArray(value)) return value.map(mask)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v)]))
  return value
}
