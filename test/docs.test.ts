/**
 * The README's configuration reference cannot drift from the option table: every env name and
 * flag the loader accepts is documented.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { allOptions } from '../config/schema.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

test('every environment name is documented in the README', () => {
  const missing = allOptions.flatMap(o => o.env).filter(name => !readme.includes(`\`${name}\``))
  assert.deepEqual(missing, [])
})

test('every flag is documented in the README', () => {
  const missing = allOptions.flatMap(o => o.flags ?? []).filter(f => !readme.includes(`-${f}\``))
  assert.deepEqual(missing, [])
})

test('the README opens with the two set-up commands', () => {
  const firstBlock = readme.split('```')[1]
  assert.match(firstBlock, /npm ci && npm run demo/)
  assert.match(firstBlock, /npm ci && npm test/)
})
