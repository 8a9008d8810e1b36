/**
 * Writes `.env.example` from the option table (config/env-example.ts). Run after adding or
 * changing an option: `npm run gen:env-example`. `--check` only compares and exits 1 on a
 * difference.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { envExample } from '../config/env-example.js'

const file = fileURLToPath(new URL('../.env.example', import.meta.url))
const text = envExample()

if (process.argv.includes('--check')) {
  let current = ''
  try { current = readFileSync(file, 'utf8') } catch {}
  if (current !== text) {
    process.stderr.write('.env.example is out of date: run npm run gen:env-example\n')
    process.exit(1)
  }
} else {
  writeFileSync(file, text)
  process.stdout.write(`wrote ${file}\n`)
}
