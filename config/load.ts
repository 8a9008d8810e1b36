/**
 * Builds the one frozen config object at boot.
 *
 * Precedence (STYLE.md §8): built-in defaults < YAML file < environment variables < command-line flags.
 * A `.env` file in the working directory is read when present and never overrides a real
 * environment variable. `${ENV}` placeholders in the YAML file are substituted; a missing one is a
 * boot error, since the file holds upstream keys.
 *
 * Every failure is a ConfigError whose message is one line naming the key, the bad value and the
 * expected form; the server prints it and exits with code 2.
 */
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { parse as parseYaml } from 'yaml'
import { ConfigSchema, allOptions, sections, type GatewayConfig } from './schema.js'
import type { OptionSpec, OptionType } from './types.js'
import { deepFreeze, deepMerge, getPath, isPlainObject, setPath } from './paths.js'
import { parseFlags, FlagError, type ParsedFlag } from './flags.js'
import { isSeed004File, convertSeed004 } from './seed004.js'
import { postProcess } from './normalize.js'
import { ConfigError } from './errors.js'
import { REDACTED } from '../src/lib/secret-filter.js'

export { ConfigError }

export interface LoadInput {
  argv?: string[]
  env?: NodeJS.ProcessEnv
  cwd?: string
}

export interface LoadResult {
  config: GatewayConfig
  /** flags that ask for an action instead of a server: --help, --version, --check-config */
  actions: { help: boolean, version: boolean, checkConfig: boolean }
  /** where each config path got its value, for error messages and --check-config */
  origins: Map<string, string>
}

const ACTION_FLAGS = new Set(['help', 'h', 'version', 'check-config', 'config', 'c'])
/** files looked for in the working directory when no config file is named */
const DEFAULT_FILES = ['gateway.yaml', 'gateway.yml', 'openai-chat-proxy-config.yaml']

export function loadConfig (input: LoadInput = {}): LoadResult {
  const cwd = input.cwd ?? process.cwd()
  const env = withDotEnv(input.env ?? process.env, cwd)
  const flags = readFlags(input.argv ?? [])
  const actions = {
    help: flags.some(f => f.name === 'help' || f.name === 'h'),
    version: flags.some(f => f.name === 'version'),
    checkConfig: flags.some(f => f.name === 'check-config')
  }
  const origins = new Map<string, string>()
  const raw: Record<string, unknown> = {}

  const file = pickConfigFile(flags, env, cwd)
  if (file !== null) {
    deepMerge(raw, readYamlFile(file, env))
    raw.configFile = file
    recordOrigins(raw, '', `file ${file}`, origins)
  }
  applyOptions(raw, fromEnv(env), origins)
  applyOptions(raw, fromFlags(flags), origins)

  const config = validate(raw, origins)
  postProcess(config, origins)
  for (const section of sections) section.postProcess?.(config, origins)
  return { config: deepFreeze(config), actions, origins }
}

function withDotEnv (env: NodeJS.ProcessEnv, cwd: string): NodeJS.ProcessEnv {
  const path = resolve(cwd, '.env')
  if (!existsSync(path)) return { ...env }
  let parsed: Record<string, string>
  try {
    parsed = parseEnv(readFileSync(path, 'utf8')) as Record<string, string>
  } catch (err) {
    throw new ConfigError(`.env: cannot be read (${(err as Error).message})`)
  }
  // a real environment variable always beats .env (seed 001 had this the wrong way round)
  return { ...parsed, ...env }
}

function readFlags (argv: string[]): ParsedFlag[] {
  const bare = new Set(['help', 'h', 'version', 'check-config'])
  const known = new Set(ACTION_FLAGS)
  for (const o of allOptions) {
    for (const f of [...(o.flags ?? []), ...o.env]) known.add(f)
    if (o.bare === true || o.type === 'boolean') for (const f of o.flags ?? []) bare.add(f)
  }
  try {
    return parseFlags(argv, bare, known)
  } catch (err) {
    if (err instanceof FlagError) throw new ConfigError(err.message)
    throw err
  }
}

function pickConfigFile (flags: ParsedFlag[], env: NodeJS.ProcessEnv, cwd: string): string | null {
  const flag = flags.findLast(f => f.name === 'config' || f.name === 'c')
  const named = flag !== undefined ? String(flag.value) : (env.GATEWAY_CONFIG_FILE ?? env.CONFIG_FILE)
  if (named !== undefined && named !== '') {
    const path = resolve(cwd, named)
    if (!existsSync(path)) throw new ConfigError(`config file: "${named}" does not exist (expected a readable YAML file)`)
    return path
  }
  for (const name of DEFAULT_FILES) {
    const path = resolve(cwd, name)
    if (existsSync(path)) return path
  }
  return null
}

function readYamlFile (path: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`config file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}; expected a readable YAML file)`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text, { prettyErrors: true })
  } catch (err) {
    const first = String((err as Error).message).split('\n')[0]
    throw new ConfigError(`config file ${path}: invalid YAML: ${first}`)
  }
  if (doc === null || doc === undefined) return {}
  if (!isPlainObject(doc)) throw new ConfigError(`config file ${path}: expected a YAML mapping at the top level`)
  const substituted = substitutePlaceholders(doc, env, path, '') as Record<string, unknown>
  return isSeed004File(substituted) ? convertSeed004(substituted) : substituted
}

/** Replaces `${NAME}` in every string scalar; a missing variable is a boot error. */
function substitutePlaceholders (value: unknown, env: NodeJS.ProcessEnv, file: string, at: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name]
      if (v === undefined) throw new ConfigError(`config file ${file}: ${at || 'value'} uses \${${name}} but the environment variable ${name} is not set`)
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substitutePlaceholders(v, env, file, `${at}[${i}]`))
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = substitutePlaceholders(v, env, file, at === '' ? k : `${at}.${k}`)
    return out
  }
  return value
}

function recordOrigins (value: unknown, at: string, source: string, origins: Map<string, string>): void {
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) recordOrigins(v, at === '' ? k : `${at}.${k}`, source, origins)
  } else if (at !== '') {
    origins.set(at, `${source}: ${at}`)
  }
}

interface Supplied { option: OptionSpec, value: string | true, source: string }

/** The first env name of an option that is set wins, so the native name beats a seed alias. */
function fromEnv (env: NodeJS.ProcessEnv): Supplied[] {
  const out: Supplied[] = []
  for (const option of allOptions) {
    const name = option.env.find(n => env[n] !== undefined && env[n] !== '')
    if (name === undefined) continue
    out.push({ option, value: env[name] as string, source: `env ${name}` })
  }
  return out
}

function fromFlags (flags: ParsedFlag[]): Supplied[] {
  const byFlag = new Map<string, OptionSpec>()
  for (const o of allOptions) {
    for (const f of o.flags ?? []) byFlag.set(f, o)
    for (const e of o.env) byFlag.set(e, o) // seed 002: `--PROXY_PORT 8080`
  }
  const out: Supplied[] = []
  for (const f of flags) {
    if (ACTION_FLAGS.has(f.name)) continue
    const option = byFlag.get(f.name)
    if (option === undefined) throw new ConfigError(`unknown flag ${f.raw} (see --help for the list of options)`)
    out.push({ option, value: f.value, source: `flag ${f.raw.split('=')[0]}` })
  }
  return out
}

/**
 * One Ajv validator per option type, coercing a string in place (Ajv's `coerceTypes`: '8080' →
 * 8080, 'true' → true, and a clear error for 'abc' as a whole number), so env and flags share the
 * same coercion. A list is a string first and split on commas after.
 */
const coerceAjv = new Ajv({ coerceTypes: true, allErrors: false, strict: true })
const COERCE: Record<OptionType, ValidateFunction<{ v: unknown }>> = {
  string: coercer('string'),
  integer: coercer('integer'),
  number: coercer('number'),
  boolean: coercer('boolean'),
  list: coercer('string'),
  json: coercer('string')
}

function coercer (type: string): ValidateFunction<{ v: unknown }> {
  return coerceAjv.compile<{ v: unknown }>({ type: 'object', properties: { v: { type } }, required: ['v'] })
}

/** Coerces env and flag strings by their option's type, then places each value at its config path. */
function applyOptions (raw: Record<string, unknown>, supplied: Supplied[], origins: Map<string, string>): void {
  // one value per occurrence, so a repeated flag (seed 003's `-targets a:x -targets b:y`) keeps every value
  for (const s of supplied) {
    const slot = { v: s.value === true ? 'true' : normalizeScalar(s.option.type, s.value) as unknown }
    if (!COERCE[s.option.type](slot)) throw new ConfigError(`${s.option.path} (${s.source}) = ${shown(s.option, s.value)}: expected ${EXPECTED_BY_TYPE[s.option.type]}`)
    let value = slot.v
    if (s.option.type === 'list') value = (value as string).split(',').map(v => v.trim()).filter(v => v !== '')
    if (s.option.type === 'json') value = parseJsonOption(s, value as string)
    try {
      if (s.option.apply !== undefined) s.option.apply(value, raw)
      else setPath(raw, s.option.path, value)
    } catch (err) {
      throw new ConfigError(`${s.option.path} (${s.source}) = ${shown(s.option, s.value)}: ${(err as Error).message}`)
    }
    origins.set(s.option.path, s.source)
  }
}

/** Seed 001 accepts `1` for true; Go flags accept `t`/`f`. */
function normalizeScalar (type: OptionType, value: string): string {
  if (type !== 'boolean') return value
  const v = value.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on', 't'].includes(v)) return 'true'
  if (['0', 'false', 'no', 'off', 'f'].includes(v)) return 'false'
  return value
}

function parseJsonOption (s: Supplied, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new ConfigError(`${s.option.path} (${s.source}) = ${shown(s.option, text)}: expected JSON`)
  }
}

/** A bad value as shown in a boot error; secrets (keys, tokens) are never printed. */
function shown (option: OptionSpec, value: unknown): string {
  return option.secret === true ? REDACTED : JSON.stringify(value)
}

const EXPECTED_BY_TYPE: Record<OptionType, string> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  list: 'a comma-separated list',
  json: 'JSON'
}

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false, verbose: true })
const validateSchema = ajv.compile(ConfigSchema)

function validate (raw: Record<string, unknown>, origins: Map<string, string>): GatewayConfig {
  if (validateSchema(raw)) return raw as GatewayConfig
  throw new ConfigError(describeSchemaError(validateSchema.errors?.[0], raw, origins))
}

function describeSchemaError (error: ErrorObject | undefined, raw: unknown, origins: Map<string, string>): string {
  if (error === undefined) return 'invalid configuration'
  const path = error.instancePath.split('/').filter(Boolean).join('.')
  if (error.keyword === 'additionalProperties') {
    const key = [path, (error.params as { additionalProperty: string }).additionalProperty].filter(Boolean).join('.')
    const allowed = Object.keys((error.parentSchema as { properties?: object }).properties ?? {}).join(', ')
    return `${key}: unknown key in the config file (expected one of: ${allowed})`
  }
  const value = getPath(raw, path)
  const source = origins.get(path) ?? 'config'
  const secret = allOptions.some(o => o.secret === true && (path === o.path || path.startsWith(`${o.path}.`)))
  return `${path} (${source}) = ${secret ? REDACTED : JSON.stringify(value)}: expected ${describeExpected(error)}`
}

/** Turns the failing sub-schema into "an integer from 0 to 65535", "one of debug | info", … */
export function describeExpected (error: ErrorObject): string {
  const s = (error.parentSchema ?? {}) as Record<string, unknown>
  if (Array.isArray(s.enum)) return `one of ${s.enum.map(String).join(' | ')}`
  if (s.type === 'integer' || s.type === 'number') {
    const kind = s.type === 'integer' ? 'a whole number' : 'a number'
    if (s.minimum !== undefined && s.maximum !== undefined) return `${kind} from ${String(s.minimum)} to ${String(s.maximum)}`
    if (s.minimum !== undefined) return `${kind} of at least ${String(s.minimum)}`
    return kind
  }
  if (s.type === 'string') return s.minLength !== undefined ? 'a non-empty string' : 'a string'
  if (s.type === 'boolean') return 'true or false'
  if (s.type === 'array') return 'a list'
  if (s.type === 'object') return 'a mapping'
  return error.message ?? 'a valid value'
}
