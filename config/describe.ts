/**
 * Human-facing views of the option table: `--help` text and the masked effective config that
 * `--check-config` prints. Both come from the same rows as the loader, so they cannot drift.
 */
import type { TSchema } from '@sinclair/typebox'
import { ConfigSchema, allOptions, sections, type GatewayConfig } from './schema.js'
import type { OptionSpec } from './types.js'
import { expandPath, getPath, setPath } from './paths.js'
import { REDACTED } from '../src/lib/secret-filter.js'

/** The schema at a config path, or undefined when the path is not a YAML key. */
function schemaAt (path: string): TSchema | undefined {
  let schema: TSchema | undefined = ConfigSchema
  for (const part of path.split('.')) {
    schema = (schema?.properties as Record<string, TSchema> | undefined)?.[part]
    if (schema === undefined) return undefined
  }
  return schema
}

/** The default of a config path, read from the schema. */
export function defaultOf (path: string): unknown {
  return schemaAt(path)?.default
}

/** Section titles for --help and .env.example; a section without one is shown by its key. */
const SECTION_TITLES: Record<string, string> = {
  server: 'Listener and server',
  upstream: 'Upstream (the target named "default")',
  log: 'Logging',
  cors: 'CORS (browser clients)',
  targets: 'Named upstream targets',
  routing: 'Routing',
  outbound: 'Outbound proxy',
  auth: 'Client keys and the admin token',
  models: 'Model list cache',
  clientIp: 'Client address behind reverse proxies',
  ipFilter: 'IP allow and deny lists',
  blacklist: 'Automatic IP blacklist',
  rateLimit: 'Rate limits',
  redis: 'Redis (state shared by replicas)',
  transforms: 'Body transforms (field aliases, context ids)',
  realtime: 'Realtime WebSocket relay',
  uploads: 'Uploads'
}

export function sectionTitle (key: string): string {
  return SECTION_TITLES[key] ?? key
}

/** Every option a user can set (rows with neither an env name nor a flag only mark secrets). */
export function settable (options: readonly OptionSpec[]): OptionSpec[] {
  return options.filter(o => o.env.length > 0 || (o.flags ?? []).length > 0)
}

/** The YAML key an option sets, or null for options that only exist as env names or flags. */
export function yamlKey (o: OptionSpec): string | null {
  const path = o.path.split('.*')[0]
  return schemaAt(path) !== undefined ? path : null
}

/** How a flag is written: seed forms with one dash (`-api`, `-nocid`), the gateway's own with two. */
export function flagForms (o: OptionSpec): string[] {
  return (o.flags ?? []).map(f => (f.length <= 2 || o.seed?.includes(`-${f}`) === true ? `-${f}` : `--${f}`))
}

/**
 * The default in the form an env value takes (`8080`, `*`, `127.0.0.0/8,::1`, `{}`), or '' when
 * there is none or the option's own parser reads another form (seed 003's `ENV=local`).
 */
export function envDefault (o: OptionSpec): string {
  const def = defaultOf(o.path)
  if (def === undefined || def === null) return ''
  switch (o.type) {
    case 'integer':
    case 'number': return typeof def === 'number' ? String(def) : ''
    case 'boolean': return typeof def === 'boolean' ? String(def) : ''
    case 'list': return Array.isArray(def) ? def.join(',') : ''
    case 'json': return typeof def === 'object' ? JSON.stringify(def) : ''
    case 'string': return typeof def === 'string' ? def : ''
  }
}

/** The second help line of an option: where else it is set, its default, its seed origin. */
function detailLine (o: OptionSpec, shownByFlag: boolean): string {
  const yaml = yamlKey(o)
  const env = shownByFlag ? o.env : o.env.slice(1)
  const def = envDefault(o)
  return [
    yaml !== null ? `YAML ${yaml}` : 'no YAML key',
    env.length > 0 ? `${shownByFlag ? 'env' : 'also env'} ${env.join(', ')}` : '',
    `default ${def === '' ? '(empty)' : def}`,
    o.seed !== undefined ? `seed ${o.seed}` : ''
  ].filter(Boolean).join('; ')
}

const COLUMN = 30

export function helpText (): string {
  const lines = [
    'llm-gateway: an LLM API gateway for OpenAI-, Anthropic- and Azure-compatible APIs',
    '',
    'Usage: llm-gateway [--config FILE] [options]',
    '',
    'Precedence: built-in defaults < YAML file (--config, CONFIG_FILE, ./gateway.yaml) < environment (.env never overrides a real variable) < flags',
    'Flags: -name value, -name=value, --name value, --name=value; every env name also works as a flag (--PROXY_PORT 8080).',
    '',
    `  ${'--config FILE, -c FILE'.padEnd(COLUMN)} YAML config file (env GATEWAY_CONFIG_FILE, CONFIG_FILE)`,
    `  ${'--check-config'.padEnd(COLUMN)} validate the configuration, print it with secrets masked, exit 0 (or 2 with one line)`,
    `  ${'--version'.padEnd(COLUMN)} print the version`,
    `  ${'--help, -h, help'.padEnd(COLUMN)} this text`
  ]
  for (const section of sections) {
    const options = settable(section.options)
    if (options.length === 0) continue
    lines.push('', `${sectionTitle(section.key)}:`)
    for (const o of options) {
      const flags = flagForms(o)
      const name = flags.length > 0 ? flags.join(', ') : o.env[0]
      if (name.length < COLUMN) lines.push(`  ${name.padEnd(COLUMN)} ${o.doc}`)
      else lines.push(`  ${name}`, `  ${''.padEnd(COLUMN)} ${o.doc}`)
      lines.push(`  ${''.padEnd(COLUMN)} ${detailLine(o, flags.length > 0)}`)
    }
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
