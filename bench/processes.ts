/**
 * The benchmark's server processes (mock upstream, gateway, bare pipe): spawned as separate Node
 * processes on 127.0.0.1, their stdout written to a file (as a log shipper would read it), ready
 * once a JSON line announces their URL; and what /proc says about them (CPU time, RSS).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, truncateSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'

export const ROOT = resolve(import.meta.dirname, '..')

const READY_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

export interface ServerProcess {
  name: string
  pid: number
  url: string
  /** the file its stdout goes to */
  logFile: string
  /** lines written to stdout since the last truncateLog() */
  logLines: () => number
  truncateLog: () => void
  stop: () => Promise<void>
}

export interface SpawnSpec {
  name: string
  /** the executable; node when absent (a peer proxy's binary otherwise) */
  command?: string
  /** node arguments: flags then the script (or the command's arguments) */
  args: string[]
  /** working directory; the bench dir when absent */
  cwd?: string
  /** also send stderr to the log file (servers that log there, as Go's `log` package does) */
  stderrToLog?: boolean
  env: Record<string, string>
  /** picks the URL out of one parsed stdout line; undefined when the line is not the ready line */
  readyUrl?: (line: Record<string, unknown>) => string | undefined
  /** or: the URL is known in advance, and the server is ready once GET `${url}/healthz` answers 200 */
  healthUrl?: string
  /** or: the URL is known in advance, and the server is ready once its port accepts a connection (no health route) */
  tcpUrl?: string
}

/** A free port on 127.0.0.1 for a server whose readiness does not depend on what it logs. */
export async function freePort (): Promise<number> {
  const server = createNetServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function healthy (url: string): Promise<boolean> {
  try {
    const res = await request(`${url}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 })
    await res.body.dump()
    return res.statusCode === 200
  } catch {
    return false
  }
}

async function accepts (url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    socket.setTimeout(1000)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
  })
}

let workDir: string | undefined

/** Every server still running, so that no exit path of the harness leaves one behind. */
const live = new Set<ChildProcess>()

/** Last resort (harness timeout, signal, crash): SIGKILL whatever is still running. */
export function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}
process.once('exit', killAll)

/** A private temp dir for log files and as the servers' cwd (no stray .env or gateway.yaml is read). */
export function benchDir (): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'gw-bench-'))
  return workDir
}

export function removeBenchDir (): void {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true })
  workDir = undefined
}

function findReadyUrl (text: string, readyUrl: NonNullable<SpawnSpec['readyUrl']>): string | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const url = readyUrl(JSON.parse(line) as Record<string, unknown>)
      if (url !== undefined) return url
    } catch { /* a partial line: read again later */ }
  }
  return undefined
}

function countLines (file: string): number {
  const buf = readFileSync(file)
  let n = 0
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) n++
  return n
}

export async function spawnServer (spec: SpawnSpec): Promise<ServerProcess> {
  const dir = benchDir()
  const logFile = join(dir, `${spec.name}-${Date.now()}.log`)
  // append mode, so truncating the file between scenarios does not leave the writer's offset behind
  const fd = openSync(logFile, 'a')
  const child = spawn(spec.command ?? process.execPath, spec.args, {
    cwd: spec.cwd ?? dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, ...spec.env },
    stdio: ['ignore', fd, spec.stderrToLog === true ? fd : 'pipe']
  })
  closeSync(fd)
  live.add(child)
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => { if (stderr.length < 20_000) stderr += s })
  let exited: number | null | undefined
  child.once('exit', (code) => { exited = code; live.delete(child) })

  const deadline = Date.now() + READY_TIMEOUT_MS
  let url: string | undefined
  while (url === undefined) {
    const said = (): string => (spec.stderrToLog === true ? readFileSync(logFile, 'utf8').slice(-20_000) : stderr).trim()
    if (exited !== undefined) throw new Error(`${spec.name} exited with ${String(exited)} before it was ready: ${said()}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${spec.name} not ready after ${READY_TIMEOUT_MS} ms: ${said()}`)
    }
    await sleep(50)
    if (spec.healthUrl !== undefined) url = await healthy(spec.healthUrl) ? spec.healthUrl : undefined
    else if (spec.tcpUrl !== undefined) url = await accepts(spec.tcpUrl) ? spec.tcpUrl : undefined
    else if (spec.readyUrl !== undefined) url = findReadyUrl(readFileSync(logFile, 'utf8'), spec.readyUrl)
  }
  return {
    name: spec.name,
    pid: child.pid ?? 0,
    url,
    logFile,
    logLines: () => countLines(logFile),
    truncateLog: () => truncateSync(logFile, 0),
    stop: () => stopChild(child, () => exited !== undefined)
  }
}

async function stopChild (child: ChildProcess, hasExited: () => boolean): Promise<void> {
  if (hasExited()) return
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await done
  clearTimeout(timer)
}

/** How to run a TypeScript entry point: from the tsc build (realistic) or through tsx. */
export type RunMode = 'dist' | 'src'

export function scriptArgs (mode: RunMode, srcPath: string): string[] {
  // resolved here: the servers run in a temp dir, where a bare 'tsx' would not resolve
  if (mode === 'src') return ['--import', import.meta.resolve('tsx'), join(ROOT, srcPath)]
  return [join(ROOT, 'dist', srcPath.replace(/\.ts$/, '.js'))]
}

/** The embedded mock upstream, in its own process. */
export async function spawnMock (mode: RunMode): Promise<ServerProcess> {
  return await spawnServer({ name: 'mock', args: scriptArgs(mode, 'mock/cli.ts'), env: {}, readyUrl: (l) => l.mock as string | undefined })
}

/** The two baselines in front of `mockUrl`: the bare undici pipe, and the same as one bare Fastify route (`env`: e.g. FLOOR_RELAY). */
export async function spawnBaseline (kind: 'pipe' | 'floor', mode: RunMode, mockUrl: string, nodeArgs: readonly string[] = [], env: Record<string, string> = {}, name?: string): Promise<ServerProcess> {
  return await spawnServer({
    name: name ?? (kind === 'pipe' ? 'pipe' : 'fastify-floor'),
    args: [...nodeArgs, ...scriptArgs(mode, kind === 'pipe' ? 'bench/bare-pipe.ts' : 'bench/fastify-floor.ts')],
    env: { ...env, PIPE_UPSTREAM_URL: mockUrl },
    readyUrl: (l) => l[kind] as string | undefined
  })
}

/** `npm run build`, plus the bare pipe with the same compiler and settings (bench/tsconfig.build.json). */
export function buildDist (): void {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  for (const project of ['tsconfig.build.json', 'bench/tsconfig.build.json']) {
    execFileSync(process.execPath, [tsc, '-p', join(ROOT, project)], { stdio: 'inherit', cwd: ROOT })
  }
  for (const file of ['dist/src/cli.js', 'dist/mock/cli.js', 'dist/bench/bare-pipe.js', 'dist/bench/fastify-floor.js', 'dist/bench/reply-from.js']) {
    if (!existsSync(join(ROOT, file))) throw new Error(`the build did not produce ${file}`)
  }
}

// ---- /proc ----------------------------------------------------------------------------------

let clockTicks: number | undefined

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux we meet). */
function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU time (user + system, all threads) the process has used so far, in microseconds. */
export function cpuMicros (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name may contain spaces: fields are counted after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) * 1e6 / ticksPerSecond()
}

/** Resident set size in bytes. */
export function rssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status)
  return match === null ? 0 : Number(match[1]) * 1024
}

export const MiB = 1024 * 1024

/** Samples a process's RSS every `everyMs` until stopped; keeps the peak and every sample. */
export function sampleRss (pid: number, everyMs = 100): { stop: () => { peak: number, samples: number[] } } {
  const samples: number[] = [rssBytes(pid)]
  const timer = setInterval(() => {
    try { samples.push(rssBytes(pid)) } catch { /* the process is gone; stop() reports what we have */ }
  }, everyMs)
  return {
    stop () {
      clearInterval(timer)
      try { samples.push(rssBytes(pid)) } catch { /* gone */ }
      return { peak: Math.max(...samples), samples }
    }
  }
}
