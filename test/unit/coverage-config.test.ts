/**
 * `.c8rc.json` leaves out of the line count exactly the files that hold only types: TypeScript
 * erases them, nothing loads them, and `all: true` would count every line of them as uncovered.
 * A file that gains runtime code must be counted again, and a new types-only file is named here;
 * both are checked by transpiling each file the way tsx does and looking for code.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { globSync, readFileSync } from 'node:fs'
import ts from 'typescript'

interface C8Config { include: string[], exclude: string[] }

function holdsOnlyTypes (file: string): boolean {
  const js = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, removeComments: true }
  }).outputText
  return js.replace(/export \{\};?/g, '').trim() === ''
}

test('the coverage count leaves out the types-only files, and only them', () => {
  const config = JSON.parse(readFileSync('.c8rc.json', 'utf8')) as C8Config
  const named = config.exclude.filter(p => !p.includes('*')).sort()
  const sources = config.include.flatMap(p => globSync(`${p.replace(/\*\*$/, '**/*.ts')}`)).filter(f => !f.endsWith('.d.ts'))
  assert.ok(sources.length > 50, 'the include globs find the sources')
  const typesOnly = sources.filter(holdsOnlyTypes).sort()
  assert.deepEqual(named, typesOnly, '.c8rc.json "exclude" must name exactly the files without runtime code')
})
