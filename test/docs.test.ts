/**
 * The documentation cannot drift from the code: the configuration reference is the one generated
 * from the option table and names every env name and flag the loader accepts; the README stays a
 * short entry page that opens with the two set-up commands; every relative link resolves.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { allOptions } from '../config/schema.js'
import { configurationReference } from '../config/reference.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8')
const readme = read('README.md')
const reference = read('docs/configuration.md')

test('the committed docs/configuration.md is the generated one (npm run gen:env-example)', () => {
  assert.equal(reference, configurationReference(), 'docs/configuration.md is out of date: run npm run gen:env-example')
})

test('every environment name is documented in the configuration reference', () => {
  const missing = allOptions.flatMap(o => o.env).filter(name => !reference.includes(`\`${name}\``))
  assert.deepEqual(missing, [])
})

test('every flag is documented in the configuration reference', () => {
  const missing = allOptions.flatMap(o => o.flags ?? []).filter(f => !reference.includes(`-${f}\``))
  assert.deepEqual(missing, [])
})

test('the README opens with the two set-up commands', () => {
  const firstBlock = readme.split('```')[1]
  assert.match(firstBlock, /npm ci && npm run demo/)
  assert.match(firstBlock, /npm ci && npm test/)
})

test('the README stays an entry page of about 200 lines; the rest is in docs/', () => {
  assert.ok(readme.split('\n').length <= 210, `README.md has ${readme.split('\n').length} lines`)
})

function markdownFiles (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? markdownFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [])
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function anchor (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')
}

function anchors (text: string): Set<string> {
  const out = new Set<string>()
  let fenced = false
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const m = fenced ? null : /^#+ (.*)$/.exec(line)
    if (m !== null) out.add(anchor(m[1]))
  }
  return out
}

test('every relative link in README.md, SECURITY.md and docs/ points at a file (and heading) that exists', () => {
  const broken: string[] = []
  for (const file of ['README.md', 'SECURITY.md', 'bench/README.md', ...markdownFiles('docs')]) {
    const text = read(file).replace(/^```[\s\S]*?^```$/gm, '')
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]
      if (/^[a-z]+:/.test(link)) continue
      const [path, hash] = link.split('#')
      const target = path === '' ? join(ROOT, file) : join(ROOT, dirname(file), path)
      if (!existsSync(target)) broken.push(`${file}: ${link}`)
      else if (hash !== undefined && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(hash)) broken.push(`${file}: ${link} (no such heading in ${relative(ROOT, target)})`)
    }
  }
  assert.deepEqual(broken, [])
})

test('each predecessor project has its migration guide, named by the project', () => {
  for (const project of ['aigc-proxy', 'jb-proxy-llm', 'ai-proxy', 'openai-proxy', 'free-sophnet-api']) {
    assert.match(read(`docs/migration/${project}.md`), new RegExp(`^# Coming from ${project}\n`))
  }
})
