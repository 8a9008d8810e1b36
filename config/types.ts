/**
 * One row of the option table: how a config key is reached from the environment and the
 * command line. The env names and flags listed here are the only place aliases live, so the
 * README, `--help` and `.env.example` can all be generated or checked from the same rows.
 */
export type OptionType = 'string' | 'integer' | 'number' | 'boolean' | 'list' | 'json'

export interface OptionSpec {
  /** dotted path in the config object, e.g. `server.port` */
  path: string
  /** environment names; the first is the gateway's own name, the rest are seed aliases */
  env: string[]
  /** command-line flag names without dashes (`-p`, `--port` and `-p=1` all match `p`) */
  flags?: string[]
  type: OptionType
  doc: string
  /** which seed project the alias comes from, for the migration guides */
  seed?: string
  /**
   * masked in `--check-config` output and never logged; the path may hold `*` segments
   * (`targets.*.keys.*.key`) to reach secrets inside maps and lists
   */
  secret?: boolean
  /**
   * For a secret list of objects (client keys): only these fields hold secrets. The other fields
   * (names, model lists) stay readable in logs and `--check-config`.
   */
  secretFields?: string[]
  /** a boolean flag that may be given without a value (`-nocid`) */
  bare?: boolean
  /**
   * Custom placement for values that do not map 1:1 onto a key (e.g. `-listen :9001`
   * sets host and port). Receives the coerced value and the raw config being built.
   */
  apply?: (value: unknown, raw: Record<string, unknown>) => void
}

export interface ConfigSection {
  /** top-level key in the config object */
  key: string
  schema: import('@sinclair/typebox').TSchema
  options: OptionSpec[]
  /**
   * Checks and normal forms JSON schema cannot express, run after validation and before the
   * config is frozen. Throws a ConfigError (one line) on a bad value.
   */
  postProcess?: (config: import('./schema.js').GatewayConfig, origins: Map<string, string>) => void
}
