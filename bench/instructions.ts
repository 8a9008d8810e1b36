/**
 * Instructions per request of the gateway, counted by valgrind's callgrind: a measure that moves
 * far less with the machine's load or clock than CPU time (which swings by a third between runs on
 * a shared 2-core machine), for judging one change against another. The gateway runs the bench's
 * production chain (bench/gateway-env.ts) in front of the mock; `--warm` requests (default 20,000)
 * are sent with callgrind's instrumentation off, then `--requests` requests are counted. V8 is
 * still compiling the hot paths well past 5,000 requests (40 % of the instructions counted after
 * 5,000 were the optimizing compilers', 1 % after 20,000): counts after a short warm-up measure
 * the compiler, not the request path. On a loaded machine the count moves too: V8 times some
 * collections and compilations by the clock.
 *
 *   npm run bench:instructions -- [--stream] [--requests 200] [--warm 20000] [--build DIR] [--skip-build] [--set KEY=VALUE …]
 *
 * --keep FILE: the counted callgrind dump is kept there (read it with callgrind_annotate).
 * --connections N: client connections (default 4), each sending one request after another.
 * --budgets: every client key with budgets that never refuse (bench/gateway-env.ts `budgetedKeys`),
 * to compare with a run without it (docs/money.md). --build DIR: a saved build (a copy of dist/) instead of this tree's. --set: one gateway setting
 * changed (repeatable), for what one part of the chain costs, e.g. `--set GATEWAY_LOG_LEVEL=warn`. Needs valgrind
 * (Debian's package); a run takes a few minutes. Everything stays on 127.0.0.1.
 */
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { buildDist, freePort, killAll, ROOT, spawnMock } from './processes.js'
import { budgetedKeys, clientKeys, gatewayEnv } from './gateway-env.js'
import { KeyRing, NON_STREAM_CHAT, STREAM_CHAT, type RequestSpec } from './load.js'

const { values } = parseArgs({
  options: {
    stream: { type: 'boolean', default: false },
    requests: { type: 'string', default: '200' },
    /** requests sent before counting, uninstrumented: until V8 stops compiling the hot paths */
    warm: { type: 'string', default: '20000' },
    /** client connections, each sending one request after another */
    connections: { type: 'string', default: '4' },
    build: { type: 'string' },
    'skip-build': { type: 'boolean', default: false },
    set: { type: 'string', multiple: true, default: [] },
    budgets: { type: 'boolean', default: false },
    /** a node flag for the gateway (repeatable), e.g. --node-arg=--single-threaded */
    'node-arg': { type: 'string', multiple: true, default: [] },
    /** count the bare pipe or the Fastify floor instead of the gateway (the same requests) */
    baseline: { type: 'string' },
    /** keep the counted dump at this path (for callgrind_annotate) */
    keep: { type: 'string' }
  }
})

function settings (pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw new Error(`--set expects KEY=VALUE, got ${pair}`)
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

const READY_TIMEOUT_MS = 180_000
/** callgrind runs the gateway some 50 times slower: its upstream timeouts would answer 502 */
const SLOW_TIMEOUTS = { GATEWAY_CONNECT_TIMEOUT_MS: '600000', GATEWAY_FIRST_BYTE_TIMEOUT_MS: '600000', GATEWAY_IDLE_TIMEOUT_MS: '600000' }

async function waitHealthy (url: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`)
      if (res.status === 200) return
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`the gateway under callgrind was not ready after ${READY_TIMEOUT_MS} ms`)
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}

/** The address a baseline prints once listening ({"pipe": url} or {"floor": url}). */
async function readyUrl (stdout: NodeJS.ReadableStream | null, kind: string): Promise<string> {
  if (stdout === null) throw new Error('no stdout to read the address from')
  let text = ''
  for await (const chunk of stdout) {
    text += String(chunk)
    const line = text.split('\n').find(l => l.includes(`"${kind}"`))
    if (line !== undefined) return (JSON.parse(line) as Record<string, string>)[kind]
  }
  throw new Error(`the ${kind} ended before it listened`)
}

/** `n` requests over `clients` connections; any answer but 200 stops the run. */
async function send (pool: Pool, spec: RequestSpec, keys: KeyRing, n: number, clients: number): Promise<void> {
  let next = 0
  const client = async (): Promise<void> => {
    while (next < n) {
      next++
      const res = await pool.request({ method: spec.method, path: spec.path, body: spec.body, headers: { ...spec.headers, authorization: `Bearer ${keys.next()}` } })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${text.slice(0, 300)}`)
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
}

/** The last dump callgrind wrote (the counted requests). */
function lastDump (dir: string): string {
  const last = readdirSync(dir).filter(name => /\.out\.\d+$/.test(name)).sort().at(-1)
  if (last === undefined) throw new Error('callgrind wrote no dump')
  return join(dir, last)
}

/** The instruction total of the last dump. */
function countedInstructions (dir: string): number {
  const last = lastDump(dir)
  const total = /^(?:summary|totals): (\d+)/m.exec(readFileSync(last, 'utf8'))
  if (total === null) throw new Error(`no total in ${last}`)
  return Number(total[1])
}

async function main (): Promise<void> {
  const build = values.build !== undefined ? resolve(values.build) : join(ROOT, 'dist')
  if (values.build === undefined && !values['skip-build']) buildDist()
  const n = Number(values.requests)
  const spec = values.stream ? STREAM_CHAT : NON_STREAM_CHAT
  const mock = await spawnMock('dist')
  const port = await freePort()
  const out = mkdtempSync(join(tmpdir(), 'gw-callgrind-'))
  const baseline = values.baseline
  if (baseline !== undefined && baseline !== 'pipe' && baseline !== 'floor') throw new Error('--baseline is pipe or floor')
  const script = baseline === undefined ? join(build, 'src/cli.js') : join(build, 'bench', baseline === 'pipe' ? 'bare-pipe.js' : 'fastify-floor.js')
  const gateway = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(out, 'cg.%p.out')}`, '--dump-line=no', '--instr-atstart=no', process.execPath, ...values['node-arg'], script], {
    env: baseline === undefined
      ? { PATH: process.env.PATH ?? '', ...gatewayEnv(mock.url, port), ...SLOW_TIMEOUTS, ...(values.budgets ? { GATEWAY_CLIENT_KEYS: budgetedKeys() } : {}), ...settings(values.set) }
      : { PATH: process.env.PATH ?? '', PIPE_UPSTREAM_URL: mock.url },
    stdio: ['ignore', baseline === undefined ? 'ignore' : 'pipe', 'ignore']
  })
  const url = baseline === undefined ? `http://127.0.0.1:${port}` : await readyUrl(gateway.stdout, baseline)
  const clients = Number(values.connections)
  const pool = new Pool(url, { connections: clients })
  try {
    if (baseline === undefined) await waitHealthy(url)
    const keys = new KeyRing(clientKeys())
    await send(pool, spec, keys, Number(values.warm), clients)
    execFileSync('callgrind_control', ['--instr=on', String(gateway.pid)], { stdio: 'ignore' })
    execFileSync('callgrind_control', ['--zero', String(gateway.pid)], { stdio: 'ignore' })
    await send(pool, spec, keys, n, clients)
    execFileSync('callgrind_control', ['--dump', String(gateway.pid)], { stdio: 'ignore' })
    const perRequest = Math.round(countedInstructions(out) / n)
    if (values.keep !== undefined) copyFileSync(lastDump(out), values.keep)
    const set = (values.budgets ? ' budgets' : '') + (values.set.length > 0 ? ` ${values.set.join(' ')}` : '') + (values['node-arg'].length > 0 ? ` node ${values['node-arg'].join(' ')}` : '')
    console.log(`| ${values.stream ? 'streaming chat, 17 chunks' : 'non-streaming chat'} | ${baseline ?? build}${set} | ${n} | ${perRequest.toLocaleString('en-US')} |`)
  } finally {
    await pool.close()
    gateway.kill('SIGKILL')
    await mock.stop()
    killAll()
    rmSync(out, { recursive: true, force: true })
  }
}

await main()
