/**
 * Where a proxy's CPU goes, all of it: `perf record -g -e cpu-clock` on the pipe, the Fastify
 * floor and the gateway (every thread: the event loop, V8's GC and compiler threads, and the
 * kernel's share, such as the loopback delivery a socket write pays for) while a fixed load runs,
 * with the JS functions named through `--perf-basic-prof`. A V8 `--cpu-prof` sees the main thread's JS only and
 * charges the kernel's time to whichever JS function made the call; this does not.
 *
 *   node --import tsx bench/perf-record.ts [--stream] [--seconds 4] [--top 40] [--grep REGEX]
 *                                          [--variant 'name:KEY=V,…' …] [--skip-build]
 *
 * Prints, per path, µs per request and the functions with the most inclusive time (a callee's
 * time counts in its callers: the onResponse hooks, say, include the access line), in µs per
 * request. Needs Debian's `linux-perf`; not part of `npm run bench`.
 */
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { cannon, KeyRing, NON_STREAM_CHAT, STREAM_CHAT } from './load.js'
import { clientKeys } from './gateway-env.js'
import { benchDir, buildDist, removeBenchDir, spawnBaseline, spawnMock, type ServerProcess } from './processes.js'
import { parseVariant, spawnGatewayVariant } from './variants.js'

const run = promisify(execFile)
const { values } = parseArgs({
  options: {
    stream: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '4' },
    /** seconds of load before recording (JIT and caches settle) */
    warm: { type: 'string', default: '3' },
    /** also list the functions with the most self time */
    self: { type: 'boolean', default: false },
    /** record the gateway variants only, not the pipe and the floor */
    'gateway-only': { type: 'boolean', default: false },
    /** keep the perf data (and the gateway's map files) and print where, for `perf report` by hand */
    keep: { type: 'boolean', default: false },
    top: { type: 'string', default: '40' },
    /** only functions whose name matches (e.g. 'dist/|pino|fastify') */
    grep: { type: 'string' },
    variant: { type: 'string', multiple: true, default: ['gateway:'] },
    'skip-build': { type: 'boolean', default: false }
  }
})
const spec = values.stream ? STREAM_CHAT : NON_STREAM_CHAT
const keys = new KeyRing(clientKeys())
const seconds = Number(values.seconds)
const HZ = 4000
const PERF_MAP = ['--perf-basic-prof']

interface Entry { children: number, self: number, symbol: string }

/** What kind of work a symbol is (self time), for the summary line of each path. */
const KINDS: ReadonlyArray<[string, RegExp]> = [
  ['kernel', /^\[k\]/],
  ['GC', /Heap::|Scaveng|MarkCompact|Marking|Sweeper|MinorGC|MajorGC|Evacuat|GCTracer|CppHeap|Builtins_RecordWrite/],
  ['JIT compiler', /compiler::|Compil|Maglev|Turboshaft|Baseline(?!OutOfLine)|RegExpCompiler|Parser<|Scanner|PreParser/],
  ['gateway code', /\/dist\/(?:src|plugins|routes|config)\//],
  ['JS packages', /node_modules\//],
  ['Node core JS', /\bnode:/],
  ['other JS', /^\[\.\] (?:JS|RegExp):/]
]

/** Self time by kind, in µs per request ('V8 and Node native' is the rest: builtins, runtime, libuv, libc). */
function byKind (text: string, perRequest: (pct: number) => string): string {
  const sums = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\[[.k]\]\s+.*)$/.exec(line)
    if (m === null) continue
    const kind = KINDS.find(([, re]) => re.test(m[2]))?.[0] ?? 'V8 and Node native'
    sums.set(kind, (sums.get(kind) ?? 0) + Number(m[1]))
  }
  return [...sums].sort((a, b) => b[1] - a[1]).map(([kind, pct]) => `${kind} ${perRequest(pct)}`).join(' · ')
}

/** `perf report --children` rows: inclusive and self percentages of all samples, per symbol. */
function parseReport (text: string): Entry[] {
  const entries: Entry[] = []
  for (const line of text.split('\n')) {
    const m = /^\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(.*)$/.exec(line)
    if (m !== null) entries.push({ children: Number(m[1]), self: Number(m[2]), symbol: m[3].trim() })
  }
  return entries
}

async function recorded (name: string, proc: ServerProcess): Promise<void> {
  await cannon(proc.url, [spec], keys, { connections: 16, durationS: Number(values.warm) })
  const data = join(benchDir(), `perf-${name}.data`)
  const perf = spawn('perf', ['record', '-q', '-g', '-e', 'cpu-clock', '-F', String(HZ), '-o', data, '-p', String(proc.pid), '--', 'sleep', String(seconds)], { stdio: 'ignore' })
  const done = new Promise((resolve) => perf.once('close', resolve))
  const load = await cannon(proc.url, [spec], keys, { connections: 16, durationS: seconds })
  await done
  const { stdout } = await run('perf', ['report', '-i', data, '--children', '--sort', 'sym', '-g', 'none', '--stdio'], { maxBuffer: 256 * 1024 * 1024 })
  const samples = Number(/Event count \(approx\.\): (\d+)/.exec(stdout)?.[1] ?? 0) / (1e9 / HZ)
  // the load ran a little longer than perf (cannon's stop is at a sample tick): scale to perf's window
  const requests = load.ok * Math.min(1, seconds / load.seconds)
  const usPerSample = 1e6 / HZ
  const perRequest = (pct: number): string => (pct / 100 * samples * usPerSample / requests).toFixed(2)
  process.stdout.write(`\n## ${name}: ${Math.round(samples * usPerSample / requests)} µs per request (${Math.round(requests)} requests, ${Math.round(samples)} samples)\n`)
  const flat = await run('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '-g', 'none', '--stdio'], { maxBuffer: 256 * 1024 * 1024 })
  process.stdout.write(`self time by kind, µs per request: ${byKind(flat.stdout, perRequest)}\n\n`)
  if (values.self) {
    process.stdout.write('| µs/request, self | kind | function |\n| ---: | --- | --- |\n')
    for (const line of flat.stdout.split('\n')) {
      const m = /^\s+([\d.]+)%\s+(\[[.k]\]\s+.*)$/.exec(line)
      if (m === null || Number(perRequest(Number(m[1]))) < 0.2) continue
      const kind = KINDS.find(([, re]) => re.test(m[2]))?.[0] ?? 'V8 and Node native'
      process.stdout.write(`| ${perRequest(Number(m[1]))} | ${kind} | ${m[2].slice(0, 120)} |\n`)
    }
    process.stdout.write('\n')
  }
  process.stdout.write('| µs/request, inclusive | self | function |\n| ---: | ---: | --- |\n')
  const filter = values.grep !== undefined ? new RegExp(values.grep) : null
  const rows = parseReport(stdout).filter((e) => filter === null || filter.test(e.symbol)).slice(0, Number(values.top))
  for (const e of rows) process.stdout.write(`| ${perRequest(e.children)} | ${perRequest(e.self)} | ${e.symbol.replace(/file:\/\/\S*?\/(dist|node_modules)\//, '$1/').replace(/\|/g, '\\|').slice(0, 120)} |\n`)
}

if (!values['skip-build']) buildDist()
const procs: ServerProcess[] = []
try {
  const mock = await spawnMock('dist')
  procs.push(mock)
  if (!values['gateway-only']) {
    const pipe = await spawnBaseline('pipe', 'dist', mock.url, PERF_MAP)
    procs.push(pipe)
    await recorded('pipe', pipe)
    const floor = await spawnBaseline('floor', 'dist', mock.url, PERF_MAP)
    procs.push(floor)
    await recorded('fastify-floor', floor)
  }
  for (const variant of values.variant.map(parseVariant)) {
    const gw = await spawnGatewayVariant(variant, mock.url, PERF_MAP)
    procs.push(gw)
    await recorded(variant.name, gw)
  }
} finally {
  await Promise.all(procs.map(async (p) => await p.stop()))
  if (values.keep) process.stdout.write(`\nperf data kept in ${benchDir()}\n`)
  else removeBenchDir()
}
