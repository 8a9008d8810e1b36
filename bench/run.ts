/**
 * `npm run bench`: drives the gateway, a bare undici pipe and the mock upstream directly, each a
 * separate process on 127.0.0.1, and prints a markdown table with the issue's targets.
 *
 *   npm run bench                       every scenario, full size (5–10 minutes)
 *   npm run bench -- --only 1,2,4       some scenarios
 *   npm run bench -- --quick            short runs (smoke test; the numbers mean little)
 *   npm run bench -- --soak 500000      scenario 8's request count (default 200,000)
 *   npm run bench -- --write            also write the report into docs/performance.md
 *   npm run bench -- --profile          gateway and pipe under --cpu-prof (bench/out/profiles/{gateway,pipe})
 *   npm run bench -- --mode src         run the servers through tsx instead of the tsc build
 *   npm run bench -- --set K=V          override one gateway env setting (experiments; repeatable)
 *   npm run bench -- --warm S           seconds of load on each path before it is measured (default 10)
 *   npm run bench -- --peers            also the Go proxies named by BENCH_PEER_AIGC_PROXY / BENCH_PEER_JB_PROXY_LLM
 *                                       (bench/peers.ts) in scenarios 1, 2 and 4
 *
 * Everything is bounded: each scenario by count and time, the whole run by --max-minutes.
 */
import { cpus, loadavg } from 'node:os'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { startMockUpstream } from '../mock/upstream.js'
import { sizes as sizesFor, type Group, type RunContext, type Scenario } from './context.js'
import { CHAIN, clientKeys, gatewayEnv } from './gateway-env.js'
import { KeyRing } from './load.js'
import { buildDist, freePort, removeBenchDir, ROOT, scriptArgs, spawnBaseline, spawnMock, spawnServer, type RunMode, type ServerProcess } from './processes.js'
import { choosePeers, peerLines, spawnPeer, type Peer, type PeerChoice } from './peers.js'
import { markdownTable, summary, type Row } from './report.js'
import { latency, models, nonStreamChat, soak, streamChat } from './scenarios/throughput.js'
import { abandonedStreams, openStreams, pacedChunkDelay } from './scenarios/streams.js'
import { bigUpload } from './scenarios/upload.js'
import { translatedStream, translatedTargetEnv } from './scenarios/translated.js'

const SCENARIOS: readonly Scenario[] = [nonStreamChat, streamChat, models, latency, pacedChunkDelay, openStreams, bigUpload, soak, abandonedStreams, translatedStream]
const RESULTS_FILE = join(ROOT, 'docs/performance.md')
const BEGIN = '<!-- bench:begin (written by `npm run bench -- --write`) -->'
const END = '<!-- bench:end -->'

interface Args {
  only: Set<number>
  quick: boolean
  soak?: number
  write: boolean
  profile: boolean
  mode: RunMode
  skipBuild: boolean
  maxMinutes: number
  /** experiment overrides of the gateway's environment */
  set: Record<string, string>
  /** --peers: the Go proxies given by BENCH_PEER_*, and a note for each one skipped */
  peers?: { chosen: PeerChoice[], notes: string[] }
  warmS?: number
}

function parse (argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      soak: { type: 'string' },
      write: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      mode: { type: 'string', default: 'dist' },
      'skip-build': { type: 'boolean', default: false },
      'max-minutes': { type: 'string', default: '30' },
      set: { type: 'string', multiple: true, default: [] },
      peers: { type: 'boolean', default: false },
      /** seconds of load on each path before a throughput scenario measures it */
      warm: { type: 'string' }
    }
  })
  const ids = new Set(SCENARIOS.map((s) => s.id))
  const only = values.only === undefined ? ids : new Set(values.only.split(',').map((s) => Number(s.trim())))
  for (const id of only) if (!ids.has(id)) throw new Error(`--only: no scenario ${id} (there are 1 to ${SCENARIOS.length})`)
  const soakN = values.soak === undefined ? undefined : Number(values.soak)
  if (soakN !== undefined && (!Number.isSafeInteger(soakN) || soakN < 100)) throw new Error('--soak: a request count of at least 100')
  if (values.mode !== 'dist' && values.mode !== 'src') throw new Error('--mode: dist or src')
  const maxMinutes = Number(values['max-minutes'])
  if (!(maxMinutes > 0)) throw new Error('--max-minutes: a positive number')
  const set: Record<string, string> = {}
  for (const pair of values.set) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw new Error(`--set: KEY=VALUE, got '${pair}'`)
    set[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  const warmS = values.warm === undefined ? undefined : Number(values.warm)
  if (warmS !== undefined && !(warmS >= 0)) throw new Error('--warm: seconds, 0 or more')
  return { set, warmS, peers: values.peers ? choosePeers() : undefined, only, quick: values.quick, soak: soakN, write: values.write, profile: values.profile, mode: values.mode, skipBuild: values['skip-build'], maxMinutes }
}

const log = (line: string): void => { process.stderr.write(line + '\n') }

interface Running {
  group: Group
  processes: ServerProcess[]
  closeMock?: () => Promise<void>
}

async function startGroup (kind: Scenario['mock'], args: Args, keys: readonly string[]): Promise<Running> {
  const processes: ServerProcess[] = []
  let mockUrl: string
  let mockPid: number | undefined
  let closeMock: (() => Promise<void>) | undefined
  const group: Partial<Group> = {}
  try {
    if (kind === 'process') {
      const mock = await spawnMock(args.mode)
      processes.push(mock)
      mockUrl = mock.url
      mockPid = mock.pid
    } else {
      const mock = await startMockUpstream({ record: true })
      group.mock = mock
      closeMock = () => mock.close()
      mockUrl = mock.url
    }
    const profile = (name: string): string[] => args.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/out/profiles', name)}`] : []
    // a port chosen here and readiness by /healthz: the gateway may run at a level that hides its 'listening' line
    const port = await freePort()
    const started = await Promise.allSettled([
      spawnServer({
        name: 'gateway',
        args: [...profile('gateway'), ...scriptArgs(args.mode, 'src/cli.ts')],
        env: { ...gatewayEnv(mockUrl, port), ...(args.only.has(translatedStream.id) ? translatedTargetEnv(mockUrl) : {}), ...args.set },
        healthUrl: `http://127.0.0.1:${port}`
      }),
      spawnBaseline('pipe', args.mode, mockUrl, profile('pipe')),
      spawnBaseline('floor', args.mode, mockUrl)
    ])
    for (const s of started) if (s.status === 'fulfilled') processes.push(s.value)
    for (const s of started) if (s.status === 'rejected') throw s.reason
    const [gateway, pipe, floor] = processes.slice(-3)
    // peers only where the mock is its own process: the scenarios that measure them (1, 2, 4) run there
    const peers: Peer[] = []
    for (const choice of kind === 'process' ? args.peers?.chosen ?? [] : []) {
      const peer = await spawnPeer(choice, mockUrl, keys)
      processes.push(peer.process)
      peers.push(peer)
    }
    return {
      group: {
        ...group,
        direct: { name: 'direct', url: mockUrl, pid: mockPid },
        pipe: { name: 'pipe', url: pipe.url, pid: pipe.pid },
        gateway: { name: 'gateway', url: gateway.url, pid: gateway.pid },
        floor: { name: 'floor', url: floor.url, pid: floor.pid },
        gatewayProcess: gateway,
        peers
      },
      processes,
      closeMock
    }
  } catch (err) {
    await stopGroup({ group: group as Group, processes, closeMock })
    throw err
  }
}

async function stopGroup (running: Running): Promise<void> {
  for (const p of [...running.processes].reverse()) await p.stop()
  await running.closeMock?.()
}

/** Which parts of the production chain answer as configured: probed where a request can tell. */
async function probeChain (group: Group, keys: KeyRing): Promise<string[]> {
  const noKey = await request(`${group.gateway.url}/v1/models`)
  await noKey.body.dump()
  const withKey = await request(`${group.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${keys.next()}` } })
  await withKey.body.dump()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const logged = readFileSync(group.gatewayProcess.logFile, 'utf8').includes('"msg":"request completed"')
  const probes: Record<string, string> = {
    'auth: 100 client keys': noKey.statusCode === 401 || noKey.statusCode === 403
      ? `verified: ${noKey.statusCode} without a key, ${withKey.statusCode} with one`
      : `not enforced: ${noKey.statusCode} without a key`,
    'rate limit, set high': withKey.headers['x-ratelimit-limit-requests'] !== undefined
      ? `verified: x-ratelimit-limit-requests ${String(withKey.headers['x-ratelimit-limit-requests'])}`
      : 'not seen: no x-ratelimit-limit-requests header',
    'access log at info': logged ? 'verified: access lines in the gateway\'s stdout' : 'NOT seen in the gateway\'s stdout',
    'IP allow/deny check': 'no probe (loopback is allowed either way)'
  }
  return CHAIN.map((part) => `- ${part.name}: **${part.on ? 'on' : 'off'}** (${part.note}); ${probes[part.name] ?? ''}`)
}

function machineLines (args: Args, startLoad: number[]): string[] {
  const argv = process.argv.slice(2)
  return [
    `- Command: \`npm run bench${argv.length > 0 ? ' -- ' + argv.join(' ') : ''}\`${args.quick ? ' (**quick mode: the numbers mean little**)' : ''}`,
    `- Date: ${new Date().toISOString()}`,
    `- Machine: \`nproc\` = ${cpus().length} (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ` +
      `load average at start ${startLoad.map((n) => n.toFixed(2)).join(' ')} (a shared machine: other engineers' jobs may run alongside)`,
    `- Processes: load generator (autocannon / undici) in the harness; gateway \`node ${args.mode === 'dist' ? 'dist/src/cli.js' : '--import tsx src/cli.ts'}\`, ` +
      `bare pipe \`${args.mode === 'dist' ? 'dist/bench/bare-pipe.js' : 'bench/bare-pipe.ts'}\` and mock upstream each their own process ` +
      '(for 5 and 9 the mock runs in the harness, to read its per-chunk records)'
  ]
}

function writeResults (report: string): void {
  const block = `${BEGIN}\n${report}\n${END}`
  const current = existsSync(RESULTS_FILE) ? readFileSync(RESULTS_FILE, 'utf8') : ''
  const start = current.indexOf(BEGIN)
  const end = current.indexOf(END)
  const next = start !== -1 && end > start
    ? current.slice(0, start) + block + current.slice(end + END.length)
    : `# Performance\n\n${block}\n${current}`
  writeFileSync(RESULTS_FILE, next)
}

async function main (): Promise<void> {
  const args = parse(process.argv.slice(2))
  const startLoad = loadavg()
  // process.exit() runs the 'exit' handler of processes.ts, which kills the servers still running
  const guard = setTimeout(() => {
    log(`bench: still running after --max-minutes ${args.maxMinutes}: giving up`)
    process.exit(3)
  }, args.maxMinutes * 60_000)
  process.once('SIGINT', () => process.exit(130))
  process.once('SIGTERM', () => process.exit(143))
  if (args.mode === 'dist' && !args.skipBuild) {
    log('bench: building (tsc)…')
    buildDist()
  }
  const keys = new KeyRing(clientKeys())
  const sizes = sizesFor(args.quick, args.soak)
  if (args.warmS !== undefined) sizes.warmS = args.warmS
  const ctx: RunContext = { sizes, keys, log }
  const selected = SCENARIOS.filter((s) => args.only.has(s.id))
  const rows = new Map<number, Row[]>()
  let chain: string[] = []
  try {
    for (const kind of ['process', 'harness'] as const) {
      const scenarios = selected.filter((s) => s.mock === kind)
      if (scenarios.length === 0) continue
      const running = await startGroup(kind, args, keys.keys)
      try {
        if (chain.length === 0) chain = await probeChain(running.group, keys)
        for (const scenario of scenarios) {
          log(`bench: ${scenario.id}. ${scenario.title}…`)
          rows.set(scenario.id, await scenario.run(running.group, ctx))
        }
      } finally {
        await stopGroup(running)
      }
    }
  } finally {
    removeBenchDir()
  }
  clearTimeout(guard)
  const table = markdownTable(selected.flatMap((s) => rows.get(s.id) ?? []))
  const { passed, failed } = summary([...rows.values()].flat())
  const report = [
    ...machineLines(args, startLoad),
    '- Gateway chain for these numbers (bench/gateway-env.ts):',
    ...chain.map((line) => `  ${line}`),
    ...(args.peers === undefined ? [] : peerLines(args.peers.chosen, args.peers.notes)),
    '',
    table,
    '',
    `Targets: ${passed} passed, ${failed} failed.`
  ].join('\n')
  process.stdout.write(report + '\n')
  if (args.write) {
    writeResults(report)
    log(`bench: wrote ${RESULTS_FILE}`)
  }
}

main().catch((err: unknown) => {
  log(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  process.exit(1)
})
