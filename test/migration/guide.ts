/**
 * The migration guides (docs/migration/<project>.md), read as their users read them: each test
 * takes its project's example straight from its guide (the `llm-gateway` command line, the `.env`
 * file, the YAML file) and starts the real gateway with exactly that, so the guide and the
 * behaviour cannot drift apart. Only the upstream address is pointed at the local mock, through
 * the project's own setting.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { parseEnv } from 'node:util'
import type { TestContext } from 'node:test'
import { loadConfig } from '../../config/load.js'
import { buildServer } from '../../src/server.js'
import { captureLogs, tempDir, type GatewayHandle } from '../helper.js'

export interface Block { lang: string, text: string }

export type Predecessor = 'aigc-proxy' | 'jb-proxy-llm' | 'ai-proxy' | 'openai-proxy' | 'free-sophnet-api'

/** The whole guide of one predecessor project. */
export function guide (project: Predecessor): string {
  return readFileSync(new URL(`../../docs/migration/${project}.md`, import.meta.url), 'utf8')
}

export function blocks (section: string, lang?: string): Block[] {
  const out: Block[] = []
  for (const m of section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) out.push({ lang: m[1], text: m[2] })
  return lang === undefined ? out : out.filter(b => b.lang === lang)
}

/** Shell words with '…' and "…" quoting, enough for the guides' command lines. */
export function shellWords (line: string): string[] {
  const words: string[] = []
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3])
  return words
}

export interface Command { env: Record<string, string>, argv: string[] }

/** The `llm-gateway …` line of a guide (after optional `NAME=value` assignments; `\` joins lines). */
export function gatewayCommand (section: string): Command {
  for (const block of blocks(section, 'sh')) {
    const text = block.text.replace(/\\\n\s*/g, ' ')
    for (const line of text.split('\n')) {
      const words = shellWords(line.replace(/\s#.*$/, ''))
      const at = words.indexOf('llm-gateway')
      if (at === -1 || !words.slice(0, at).every(w => /^[A-Za-z_]\w*=/.test(w))) continue
      const env = Object.fromEntries(words.slice(0, at).map(w => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]))
      return { env, argv: words.slice(at + 1) }
    }
  }
  throw new Error('no `llm-gateway …` command line in the guide')
}

/** The guide's `.env` file (a `dotenv` block). */
export function dotenv (section: string): Record<string, string> {
  const block = blocks(section, 'dotenv')[0]
  if (block === undefined) throw new Error('no dotenv block in the guide')
  return parseEnv(block.text) as Record<string, string>
}

/** Replaces the value of a flag (`-api x`, `-api=x`) in an argv. */
export function withFlag (argv: string[], flag: string, value: string): string[] {
  const out = [...argv]
  const at = out.findIndex(a => a === flag || a.startsWith(`${flag}=`))
  if (at === -1) throw new Error(`the guide's command has no ${flag}`)
  if (out[at] === flag) out[at + 1] = value
  else out[at] = `${flag}=${value}`
  return out
}

export interface StartInput {
  argv?: string[]
  env?: Record<string, string>
  /** files written to the working directory first (`.env`, `openai-chat-proxy-config.yaml`) */
  files?: Record<string, string>
}

/**
 * The gateway started like the command would be in a directory holding `files`: a real config load
 * (flags, environment, ./.env, ./openai-chat-proxy-config.yaml), then it listens on 127.0.0.1:0
 * whatever the guide's host and port say (the test checks those in the config instead).
 */
export async function startAsGuide (t: TestContext, input: StartInput): Promise<GatewayHandle> {
  const cwd = tempDir('gw-migration-')
  for (const [name, text] of Object.entries(input.files ?? {})) writeFileSync(join(cwd, name), text)
  const { config } = loadConfig({ argv: input.argv ?? [], env: input.env ?? {}, cwd })
  const { stream, lines } = captureLogs()
  const app = await buildServer(config, { logDestination: stream })
  t.after(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { url, app, config, logs: lines, logText: () => lines.join('\n') }
}

let cert: { key: string, cert: string, certFile: string } | null = null

/**
 * A certificate for 127.0.0.1, for the seeds whose upstream setting is a bare host (always https):
 * the mock serves TLS and the gateway trusts it through GATEWAY_UPSTREAM_CA_FILE (the one line the
 * tests add: real upstreams have public certificates).
 */
export function loopbackCert (): { key: string, cert: string, certFile: string } {
  if (cert !== null) return cert
  const dir = tempDir('gw-cert-')
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  cert = { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile }
  return cert
}
