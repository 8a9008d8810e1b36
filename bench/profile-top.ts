/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile`): self time by function and by
 * package/file, so that the hot path can be read without a flame-graph viewer.
 *
 *   node --import tsx bench/profile-top.ts bench/out/profiles/CPU.….cpuprofile [top=30]
 */
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

const [file, topArg] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: profile-top.ts FILE.cpuprofile [top]')
const top = Number(topArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfUs = new Map<number, number>()
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
// percentages are of busy time: idle samples (waiting in epoll) say nothing about cost
for (const [id] of selfUs) if (byId.get(id)?.callFrame.functionName === '(idle)') selfUs.delete(id)
const total = [...selfUs.values()].reduce((a, b) => a + b, 0)

function where (url: string): string {
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 13).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith('node:')) return url
  if (url === '') return '(native/gc)'
  const i = url.search(/\/(dist|src|plugins|routes|config|bench)\//)
  return i === -1 ? url : url.slice(i + 1)
}

const fns = new Map<string, number>()
const files = new Map<string, number>()
for (const [id, us] of selfUs) {
  const n = byId.get(id)
  if (n === undefined) continue
  const f = n.callFrame
  const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}  ${where(f.url)}:${f.lineNumber + 1}`
  fns.set(key, (fns.get(key) ?? 0) + us)
  const w = where(f.url)
  files.set(w, (files.get(w) ?? 0) + us)
}
const show = (title: string, m: Map<string, number>): void => {
  process.stdout.write(`\n${title} (busy ${(total / 1000).toFixed(0)} ms)\n`)
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${(us / total * 100).toFixed(1).padStart(5)} %  ${k}\n`)
  }
}
show('self time by function', fns)
show('self time by package / file', files)
