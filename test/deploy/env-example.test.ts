/**
 * `.env.example` lists every environment variable the gateway reads, is the generated file, and
 * changes nothing when copied to `.env`, even with every setting uncommented.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { allOptions } from '../../config/schema.js'
import { loadConfig } from '../../config/load.js'
import { envDefault, settable } from '../../config/describe.js'
import { COMPOSE_VARIABLES, FILE_VARIABLES, envExample, gatewayEnvNames } from '../../config/env-example.js'
import { tempDir } from '../tmp.js'
import { ROOT, envExampleEntries, read } from './files.js'

const committed = read('.env.example')

test('the committed .env.example is the generated one (npm run gen:env-example)', () => {
  assert.equal(committed, envExample(), '.env.example is out of date: run npm run gen:env-example')
})

test('the generator script agrees in --check mode', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('scripts/gen-env-example.ts', ROOT)), '--check'], { encoding: 'utf8', cwd: fileURLToPath(ROOT) })
  assert.equal(r.status, 0, r.stderr)
})

test('every environment name of the option table appears, as a setting or a listed alias', () => {
  const entries = envExampleEntries(committed)
  const listed = new Set(entries.flatMap(e => [e.name, ...e.aliases]))
  const missing = gatewayEnvNames().filter(name => !listed.has(name))
  assert.deepEqual(missing, [])
  // the brief's extras are there too: the config file names and the standard proxy variables
  for (const name of ['CONFIG_FILE', 'GATEWAY_CONFIG_FILE', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) assert.ok(listed.has(name), name)
})

test('every name in .env.example is read by the gateway or by docker-compose.yml', () => {
  const known = new Set([...gatewayEnvNames(), ...COMPOSE_VARIABLES.map(v => v.name)])
  const unknown = envExampleEntries(committed).flatMap(e => [e.name, ...e.aliases]).filter(n => !known.has(n))
  assert.deepEqual(unknown, [])
})

test('each setting has its comment, its default and its aliases', () => {
  const byName = new Map(envExampleEntries(committed).map(e => [e.name, e]))
  for (const o of settable(allOptions).filter(o => o.env.length > 0)) {
    const entry = byName.get(o.env[0])
    assert.ok(entry !== undefined, o.env[0])
    assert.equal(entry.value, envDefault(o), `default of ${o.env[0]}`)
    assert.ok(entry.comment.startsWith(`# ${o.doc}`), `comment of ${o.env[0]}`)
    assert.deepEqual(entry.aliases, o.env.slice(1), `aliases of ${o.env[0]}`)
    if (o.seed !== undefined) assert.ok(entry.comment.includes(`seed ${o.seed}`), `seed of ${o.env[0]}`)
  }
  assert.equal(byName.get('PROXY_PORT'), undefined, 'aliases are listed with their setting, not as settings')
  assert.match(byName.get('GATEWAY_PORT')?.comment ?? '', /aliases PROXY_PORT/)
  assert.equal(byName.get('GATEWAY_PORT')?.value, '8080')
  assert.deepEqual(byName.get('GATEWAY_CONFIG_FILE')?.aliases, FILE_VARIABLES[0].aliases)
})

test('copying it to .env changes nothing, and neither does uncommenting every setting', () => {
  const defaults = loadConfig({ env: {}, cwd: tempDir() }).config
  assert.ok(committed.split('\n').every(line => line === '' || line.startsWith('#')), 'every line is a comment')

  const copied = tempDir()
  writeFileSync(join(copied, '.env'), committed)
  assert.deepEqual(loadConfig({ env: {}, cwd: copied }).config, defaults)

  const uncommented = tempDir()
  const text = envExampleEntries(committed).map(e => `${e.name}=${e.value}`).join('\n')
  writeFileSync(join(uncommented, '.env'), text)
  const { config, origins } = loadConfig({ env: {}, cwd: uncommented })
  assert.deepEqual(config, defaults)
  assert.ok([...origins.values()].some(o => o.startsWith('env ')), 'the uncommented settings were read')
})
