/**
 * Writes the files generated from the option table: `.env.example` (config/env-example.ts) and
 * `docs/configuration.md` (config/reference.ts). Run after adding or changing an option:
 * `npm run gen:env-example`. `--check` only compares and exits 1 on a difference.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { envExample } from '../config/env-example.js'
import { configurationReference } from '../config/reference.js'

const generated: Array<{ file: string, text: string }> = [
  { file: fileURLToPath(new URL('../.env.example', import.meta.url)), text: envExample() },
  { file: fileURLToPath(new URL('../docs/configuration.md', import.meta.url)), text: configurationReference() }
]

function current (file: string): string {
  try { return readFileSync(file, 'utf8') } catch { return '' }
}

if (process.argv.includes('--check')) {
  const stale = generated.filter(g => current(g.file) !== g.text)
  for (const g of stale) process.stderr.write(`${g.file} is out of date: run npm run gen:env-example\n`)
  if (stale.length > 0) process.exit(1)
} else {
  for (const g of generated) {
    mkdirSync(dirname(g.file), { recursive: true })
    writeFileSync(g.file, g.text)
    process.stdout.write(`wrote ${g.file}\n`)
  }
}
