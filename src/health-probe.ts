/**
 * How the container health probe (src/healthcheck.ts) finds the gateway: the gateway's own flags
 * from PID 1's command line, and the loopback URL of its listen address.
 */
import { readFileSync } from 'node:fs'
import { loadConfig, type LoadInput } from '../config/load.js'

const TIMEOUT_MS = 3000

/** The flags the gateway was started with, from a NUL-separated /proc/<pid>/cmdline. */
export function gatewayArgv (cmdline: string): string[] {
  const args = cmdline.split('\0')
  if (args.at(-1) === '') args.pop()
  const script = args.findIndex(a => /(?:^|\/)(?:cli|demo)\.[jt]s$/.test(a))
  return script === -1 ? [] : args.slice(script + 1)
}

/** Where the probe goes: the unspecified addresses (0.0.0.0, ::) are reached on loopback. */
export function probeUrl (host: string, port: number): string {
  const target = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
  return `http://${target.includes(':') ? `[${target}]` : target}:${port}/healthz`
}

function pid1Argv (): string[] {
  try {
    return gatewayArgv(readFileSync('/proc/1/cmdline', 'utf8'))
  } catch {
    return [] // not Linux, or /proc hidden: env and files still give the address
  }
}

/** True when the gateway answers `GET /healthz` with 200 within the timeout. */
export async function probe (input: LoadInput = { argv: pid1Argv(), env: process.env }): Promise<boolean> {
  const { config } = loadConfig(input)
  const res = await fetch(probeUrl(config.server.host, config.server.port), { signal: AbortSignal.timeout(TIMEOUT_MS) })
  await res.body?.cancel()
  return res.status === 200
}
