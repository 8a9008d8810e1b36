/**
 * `.env.example`, generated from the option table so it lists every environment variable the
 * gateway reads and cannot drift from it (`npm run gen:env-example`; test/deploy/env-example.test.ts
 * fails when the committed file differs). Every setting is commented out with its built-in
 * default, so copying the file to `.env` changes nothing until a line is uncommented.
 */
import { sections } from './schema.js'
import { envDefault, flagForms, sectionTitle, settable, yamlKey } from './describe.js'
import type { OptionSpec } from './types.js'

/** A variable read outside the option table, or by docker-compose.yml rather than the gateway. */
export interface ExtraVariable {
  name: string
  aliases?: string[]
  value: string
  doc: string
}

/** Read by config/load.ts before any option: where the YAML file is. */
export const FILE_VARIABLES: ExtraVariable[] = [
  {
    name: 'GATEWAY_CONFIG_FILE',
    aliases: ['CONFIG_FILE'],
    value: '',
    doc: 'YAML config file (flag --config); unset: ./gateway.yaml, ./gateway.yml or seed 004\'s ./openai-chat-proxy-config.yaml when present'
  }
]

/** Interpolated by docker-compose.yml itself; the gateway never reads them. */
export const COMPOSE_VARIABLES: ExtraVariable[] = [
  { name: 'PUBLISHED_PORT', value: '8080', doc: 'host port docker compose publishes the gateway on (the container always listens on 8080)' },
  { name: 'PUBLISHED_PORT_2', value: '8081', doc: 'host port of the second replica (docker compose --profile replicas)' }
]

const HEADER = `# llm-gateway: every environment variable the gateway reads, grouped by concern.
# Generated from the option table (config/sections/*.ts) by \`npm run gen:env-example\`: do not
# edit by hand.
#
# Copy it to \`.env\`: docker compose passes it to the container (env_file), and the gateway also
# reads ./.env by itself, never over a real environment variable. Every setting below is commented
# out and shows its built-in default, so the copy changes nothing until a line is uncommented.
# The gateway's own GATEWAY_* name comes first; the aliases listed with it (mostly the seed
# projects' names) are read when the native name is unset. Flags beat the environment, the
# environment beats the YAML file. docs/configuration.md documents each setting.
`

function comment (o: OptionSpec): string {
  const yaml = yamlKey(o)
  const flags = flagForms(o)
  const parts = [
    o.doc,
    yaml !== null ? `YAML ${yaml}` : '',
    flags.length > 0 ? `flags ${flags.join(', ')}` : '',
    o.env.length > 1 ? `aliases ${o.env.slice(1).join(', ')}` : '',
    o.seed !== undefined ? `seed ${o.seed}` : ''
  ]
  return `# ${parts.filter(Boolean).join(' · ')}`
}

function extra (v: ExtraVariable): string[] {
  const aliases = v.aliases !== undefined && v.aliases.length > 0 ? ` · aliases ${v.aliases.join(', ')}` : ''
  return [`# ${v.doc}${aliases}`, `# ${v.name}=${v.value}`]
}

export function envExample (): string {
  const lines = [HEADER, '## Configuration file', ...FILE_VARIABLES.flatMap(extra)]
  for (const section of sections) {
    const options = settable(section.options).filter(o => o.env.length > 0)
    if (options.length === 0) continue
    lines.push('', `## ${sectionTitle(section.key)}`)
    for (const o of options) lines.push(comment(o), `# ${o.env[0]}=${envDefault(o)}`)
  }
  lines.push('', '## docker compose (read by docker-compose.yml, not by the gateway)', ...COMPOSE_VARIABLES.flatMap(extra))
  return `${lines.join('\n')}\n`
}

/** Every name the gateway itself reads from the environment. */
export function gatewayEnvNames (): string[] {
  const names = FILE_VARIABLES.flatMap(v => [v.name, ...(v.aliases ?? [])])
  for (const section of sections) for (const o of section.options) names.push(...o.env)
  return names
}
