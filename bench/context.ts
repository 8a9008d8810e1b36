/**
 * What a scenario gets: the three paths it can drive (direct to the mock, the bare pipe, the
 * gateway), their processes for /proc readings, the client keys, and the run's sizes.
 */
import type { MockUpstream } from '../mock/upstream.js'
import type { KeyRing } from './load.js'
import type { Peer } from './peers.js'
import type { Row } from './report.js'
import type { ServerProcess } from './processes.js'

export type PathName = 'direct' | 'pipe' | 'gateway' | 'floor'

export interface BenchPath {
  name: PathName
  url: string
  /** the process whose CPU and RSS count for this path: the proxy, or for direct the mock (when it is its own process) */
  pid?: number
}

export interface Sizes {
  quick: boolean
  /** throughput scenarios: warm-up and measured seconds per path and round */
  warmS: number
  measureS: number
  rounds: number
  connections: number
  /** scenario 4: sequential requests per path (split over interleaved rounds) */
  latencyRequests: number
  latencyRounds: number
  /** scenario 5: concurrent paced streams and rounds of them per path */
  pacedStreams: number
  pacedRounds: number
  /** scenario 6 */
  openStreams: number
  openStreamDelayMs: number
  /** scenario 7, bytes */
  uploadBytes: number
  /** scenario 8 */
  soakRequests: number
  soakMaxSeconds: number
  /** scenario 9 */
  abandonedStreams: number
}

export function sizes (quick: boolean, soak: number | undefined): Sizes {
  if (quick) {
    return {
      quick,
      warmS: 0.2,
      measureS: 0.5,
      rounds: 1,
      connections: 8,
      latencyRequests: 100,
      latencyRounds: 2,
      pacedStreams: 2,
      pacedRounds: 1,
      openStreams: 50,
      openStreamDelayMs: 50,
      uploadBytes: 16 * 1024 * 1024,
      soakRequests: soak ?? 2000,
      soakMaxSeconds: 15,
      abandonedStreams: 4
    }
  }
  return {
    quick,
    // V8 is still compiling the gateway's hot paths for its first ~20,000 requests
    // (docs/performance.md): measured before that, a CPU figure is partly the compiler's
    warmS: 10,
    measureS: 4,
    rounds: 5,
    connections: 32,
    latencyRequests: 5000,
    latencyRounds: 10,
    pacedStreams: 16,
    pacedRounds: 4,
    openStreams: 1000,
    openStreamDelayMs: 250,
    uploadBytes: 1024 * 1024 * 1024,
    soakRequests: soak ?? 200_000,
    soakMaxSeconds: 600,
    abandonedStreams: 100
  }
}

export interface Group {
  direct: BenchPath
  pipe: BenchPath
  gateway: BenchPath
  /** bench/fastify-floor.ts: the bare pipe as one bare Fastify route (scenarios 1–3 measure it too) */
  floor: BenchPath
  gatewayProcess: ServerProcess
  /** the Go proxies of `--peers` (bench/peers.ts), in front of the same mock: scenarios 1, 2 and 4 measure them too */
  peers: Peer[]
  /** set when the mock runs inside the harness (scenarios that read its per-stream records) */
  mock?: MockUpstream
}

export interface Scenario {
  id: number
  title: string
  /** 'process': the mock is its own process; 'harness': the mock runs in the harness to expose its records */
  mock: 'process' | 'harness'
  run: (group: Group, ctx: RunContext) => Promise<Row[]>
}

export interface RunContext {
  sizes: Sizes
  keys: KeyRing
  log: (line: string) => void
}
