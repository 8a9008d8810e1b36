/**
 * Peers: the two Go proxies the gateway is compared with (issue 19), run as extra paths in front of
 * the same mock, measured in the same interleaved rounds as the pipe and the gateway. The harness
 * only takes their binaries' paths (`BENCH_PEER_AIGC_PROXY`, `BENCH_PEER_JB_PROXY_LLM`); it never
 * builds them. Each runs at its default log level, its log (stderr) to a file, in a directory of
 * its own (so no stray `.env` is read), told where the mock is and which port to take through its
 * documented flags or environment variables.
 */
import { accessSync, constants, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { UPSTREAM_KEY } from './gateway-env.js'
import { KeyRing } from './load.js'
import { benchDir, freePort, spawnServer, type ServerProcess } from './processes.js'

export interface PeerSpec {
  name: string
  /** the variable that holds the path of its binary */
  envVar: string
  /** the public source the numbers are for */
  source: string
  /** what the harness sets up, for the report */
  setup: string
  /** the client keys it accepts, out of the harness's 100 */
  keys: (all: readonly string[]) => string[]
  /** its arguments and environment, to proxy `mockUrl` on 127.0.0.1:`port` */
  launch: (mockUrl: string, port: number, keys: readonly string[]) => { args: string[], env: Record<string, string> }
}

export const PEER_SPECS: readonly PeerSpec[] = [
  {
    name: 'aigc-proxy',
    envVar: 'BENCH_PEER_AIGC_PROXY',
    source: 'pmkol/aigc-proxy at 41399ad (Go)',
    setup: 'flags -l 127.0.0.1 -p PORT -api MOCK -key UPSTREAM -bearer KEY; log at its default (info: one line per request)',
    // it checks one client key (-bearer), so every request sends that one
    keys: (all) => [all[0]],
    launch: (mockUrl, port, keys) => ({
      args: ['-l', '127.0.0.1', '-p', String(port), '-api', mockUrl, '-key', UPSTREAM_KEY, '-bearer', keys[0]],
      env: {}
    })
  },
  {
    name: 'jb-proxy-llm',
    envVar: 'BENCH_PEER_JB_PROXY_LLM',
    source: 'youtiaoguagua/jb-proxy-llm at 317bb23 (Go)',
    setup: 'environment PROXY_PORT, TARGET_HOST=MOCK, AUTH_BEARER=UPSTREAM, AUTH_VALIDATION=true with the 100 client keys in ALLOWED_TOKENS; ' +
      'log at its default (info: three lines per request); it has no listen-address setting and binds every interface, the harness connects on 127.0.0.1',
    keys: (all) => [...all],
    launch: (mockUrl, port, keys) => ({
      args: [],
      env: {
        PROXY_PORT: String(port),
        TARGET_HOST: mockUrl,
        AUTH_BEARER: UPSTREAM_KEY,
        AUTH_VALIDATION: 'true',
        ALLOWED_TOKENS: keys.join(',')
      }
    })
  }
]

/** A peer picked for this run: its spec and the binary to run. */
export interface PeerChoice { spec: PeerSpec, binary: string }

/** A running peer: what a scenario drives, with the keys it accepts. */
export interface Peer {
  name: string
  url: string
  pid: number
  keys: KeyRing
  process: ServerProcess
}

/**
 * The peers whose binary paths are given in `env`, and a note for each one skipped. Throws when
 * none is given (`--peers` then has nothing to compare with) or a given path is not an executable.
 */
export function choosePeers (env: NodeJS.ProcessEnv = process.env): { chosen: PeerChoice[], notes: string[] } {
  const chosen: PeerChoice[] = []
  const notes: string[] = []
  for (const spec of PEER_SPECS) {
    const binary = env[spec.envVar]
    if (binary === undefined || binary === '') {
      notes.push(`${spec.name} skipped: ${spec.envVar} is not set`)
      continue
    }
    try {
      accessSync(binary, constants.X_OK)
    } catch {
      throw new Error(`--peers: ${spec.envVar}=${binary} is not an executable file`)
    }
    chosen.push({ spec, binary })
  }
  if (chosen.length === 0) {
    throw new Error(`--peers: no peer binary given; set ${PEER_SPECS.map((s) => s.envVar).join(' and/or ')} to the path of a built binary (see bench/README.md)`)
  }
  return { chosen, notes }
}

/** Starts one peer in front of `mockUrl` on a free 127.0.0.1 port, ready once the port accepts. */
export async function spawnPeer (choice: PeerChoice, mockUrl: string, allKeys: readonly string[]): Promise<Peer> {
  const { spec, binary } = choice
  const port = await freePort()
  const dir = join(benchDir(), `peer-${spec.name}`)
  mkdirSync(dir, { recursive: true })
  const keys = spec.keys(allKeys)
  const { args, env } = spec.launch(mockUrl, port, keys)
  const url = `http://127.0.0.1:${port}`
  const proc = await spawnServer({ name: spec.name, command: binary, args, env, cwd: dir, stderrToLog: true, tcpUrl: url })
  return { name: spec.name, url, pid: proc.pid, keys: new KeyRing(keys), process: proc }
}

/** Report lines: which peers ran, from which source, set up how; and which were skipped. */
export function peerLines (chosen: readonly PeerChoice[], notes: readonly string[]): string[] {
  return [
    ...chosen.map((c) => `- Peer **${c.spec.name}**: ${c.spec.source}; ${c.spec.setup}`),
    ...notes.map((n) => `- Peer ${n}`)
  ]
}
