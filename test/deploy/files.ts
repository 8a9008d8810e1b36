/**
 * Reading the deployment files the way Docker and Compose do, for tests that run without a Docker
 * engine: the Dockerfile's stages and instructions, the compose file (with YAML merge keys), and
 * .env.example's settings.
 */
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { DockerfileParser, type Instruction } from 'dockerfile-ast'
import { parse as parseYaml } from 'yaml'

export const ROOT = new URL('../../', import.meta.url)
export const read = (name: string): string => readFileSync(new URL(name, ROOT), 'utf8')

export interface Stage {
  image: string
  name: string | null
  instructions: Instruction[]
}

export function dockerfileStages (text = read('Dockerfile')): Stage[] {
  const stages: Stage[] = []
  for (const ins of DockerfileParser.parse(text).getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map(a => a.getValue())
      stages.push({ image: args[0], name: args[2] ?? null, instructions: [] })
    } else {
      stages.at(-1)?.instructions.push(ins)
    }
  }
  return stages
}

/** Every instruction of one kind in the whole file, those before the first FROM included. */
export function allOf (keyword: string, text = read('Dockerfile')): Instruction[] {
  return DockerfileParser.parse(text).getInstructions().filter(i => i.getKeyword() === keyword)
}

export function only (stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter(i => i.getKeyword() === keyword)
}

/** An exec-form (JSON array) argument, e.g. ENTRYPOINT ["node", "dist/src/cli.js"]. */
export function execForm (content: string): string[] {
  const parsed: unknown = JSON.parse(content)
  if (!Array.isArray(parsed) || !parsed.every(p => typeof p === 'string')) throw new Error(`not an exec form: ${content}`)
  return parsed
}

/** The exec-form command of HEALTHCHECK (after its flags and `CMD`). */
export function healthcheckCommand (ins: Instruction): string[] {
  const content = ins.getArgumentsContent() ?? ''
  const cmd = /(?:^|\s)CMD\s+(\[.*\])\s*$/s.exec(content)
  if (cmd === null) throw new Error(`HEALTHCHECK without an exec-form CMD: ${content}`)
  return execForm(cmd[1])
}

/** ENV key=value pairs of a stage, later ones winning. */
export function stageEnv (stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const ins of only(stage, 'ENV')) {
    for (const arg of ins.getArguments()) {
      const pair = arg.getValue()
      const cut = pair.indexOf('=')
      if (cut > 0) env[pair.slice(0, cut)] = pair.slice(cut + 1)
    }
  }
  return env
}

export interface ComposeService {
  image?: string
  build?: unknown
  env_file?: string | string[]
  environment?: Record<string, string> | string[]
  ports?: string[]
  volumes?: string[]
  profiles?: string[]
  restart?: string
  stop_signal?: string
  stop_grace_period?: string
  healthcheck?: { test: string[] }
  depends_on?: Record<string, unknown>
}

export interface ComposeFile {
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
}

export function composeFile (text = read('docker-compose.yml')): ComposeFile {
  return parseYaml(text, { merge: true }) as ComposeFile
}

/** A service's `environment` as a record (compose accepts a map or a list of KEY=VALUE). */
export function serviceEnv (service: ComposeService): Record<string, string> {
  const env = service.environment ?? {}
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]))
  return Object.fromEntries(env.map(pair => [pair.split('=')[0], pair.split('=').slice(1).join('=')]))
}

/** `${NAME}`, `${NAME:-default}`, `$NAME` interpolations in a compose file's text (comments excluded). */
export function interpolated (text: string): string[] {
  const names = new Set<string>()
  for (const line of text.split('\n')) {
    const code = line.replace(/(^|\s)#.*$/, '')
    for (const m of code.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1] ?? m[2])
  }
  return [...names]
}

export interface EnvExampleEntry { name: string, value: string, aliases: string[], comment: string }

/** The commented-out settings of .env.example: `# NAME=value` lines, each after its comment line. */
export function envExampleEntries (text = read('.env.example')): EnvExampleEntry[] {
  const lines = text.split('\n')
  const out: EnvExampleEntry[] = []
  lines.forEach((line, i) => {
    const m = /^# ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (m === null) return
    const comment = lines[i - 1] ?? ''
    const aliases = /· aliases ([^·]+)/.exec(comment)?.[1].split(',').map(a => a.trim()).filter(Boolean) ?? []
    out.push({ name: m[1], value: m[2], aliases, comment })
  })
  return out
}

/** `docker compose` (v2 plugin) or `docker-compose` (v1, Debian's package), whichever works. */
export function composeCommand (): string[] | null {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    const r = spawnSync(cmd[0], [...cmd.slice(1), 'version'], { encoding: 'utf8' })
    if (r.status === 0) return cmd
  }
  return null
}
