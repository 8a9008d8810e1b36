/**
 * Syscalls per request of the pipe, the Fastify floor and the gateway (strace -c on each process
 * while a fixed number of requests runs): where a proxy's CPU goes that a JS profile cannot show.
 *
 *   node --import tsx bench/syscalls.ts [--stream] [--amount 4000] [--variant 'name:KEY=V,…' …] [--skip-build]
 *
 * Needs strace (Debian's `strace` package); not part of `npm run bench`.
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { cannon, KeyRing, NON_STREAM_CHAT, STREAM_CHAT } from './load.js'
import { clientKeys } from './gateway-env.js'
import { buildDist, removeBenchDir, spawnBaseline, spawnMock, type ServerProcess } from './processes.js'
import { parseVariant, spawnGatewayVariant } from './variants.js'

const { values } = parseArgs({ options: { stream: { type: 'boolean', default: false }, amount: { type: 'string', default: '4000' }, variant: { type: 'string', multiple: true, default: ['gateway:'] }, 'skip-build': { type: 'boolean', default: false } } })
const amount = Number(values.amount)
const spec = values.stream ? STREAM_CHAT : NON_STREAM_CHAT
const keys = new KeyRing(clientKeys())
const procs: ServerProcess[] = []

async function traced (name: string, proc: ServerProcess): Promise<void> {
  await cannon(proc.url, [spec], keys, { connections: 16, amount: 1000 })
  const strace = spawn('strace', ['-c', '-f', '-p', String(proc.pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let out = ''
  strace.stderr.on('data', (c: Buffer) => { out += c.toString() })
  await sleep(500)
  await cannon(proc.url, [spec], keys, { connections: 16, amount })
  strace.kill('SIGINT')
  await new Promise((resolve) => strace.once('close', resolve))
  process.stdout.write(`\n## ${name}: ${amount} requests\n`)
  for (const line of out.split('\n')) {
    // counts only: strace's own times are mostly the cost of tracing
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line)
    if (m !== null && Number(m[1]) >= amount / 20) process.stdout.write(`${m[2].padEnd(16)} ${(Number(m[1]) / amount).toFixed(2)} per request\n`)
  }
}

if (!values['skip-build']) buildDist()
try {
  const mock = await spawnMock('dist')
  procs.push(mock)
  const pipe = await spawnBaseline('pipe', 'dist', mock.url)
  procs.push(pipe)
  const floor = await spawnBaseline('floor', 'dist', mock.url)
  procs.push(floor)
  await traced('pipe', pipe)
  await traced('fastify-floor', floor)
  for (const variant of values.variant.map(parseVariant)) {
    const gw = await spawnGatewayVariant(variant, mock.url)
    procs.push(gw)
    await traced(variant.name, gw)
  }
} finally {
  await Promise.all(procs.map(async (p) => await p.stop()))
  removeBenchDir()
}
