/**
 * Config names of the body transforms: seed 000's inverted `-nocid` and `-cache`, seed 004's
 * `field_aliases`, the native env names, and the refusals.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, ConfigError } from '../../config/load.js'
import { tempDir } from '../helper.js'

test('defaults: both transforms off', () => {
  const { config } = loadConfig({ argv: [], env: {}, cwd: tempDir() })
  assert.deepEqual(config.transforms, {
    fieldAliases: {},
    fieldAliasesByTarget: {},
    reverseFieldAliases: false,
    contextId: { enabled: false, capacity: 10_000, ttlMs: 0 },
    maxJsonBytes: 32 * 1024 * 1024,
    maxHeldJsonBytes: 256 * 1024 * 1024,
    maxEventSize: 8 * 1024 * 1024
  })
})

test('seed 000: -nocid is a bare flag that turns context id ON; -cache sets its capacity', () => {
  const { config } = loadConfig({ argv: ['-nocid', '-cache', '5', '-p', '2023'], env: {}, cwd: tempDir() })
  assert.equal(config.transforms.contextId.enabled, true)
  assert.equal(config.transforms.contextId.capacity, 5)
  assert.equal(config.server.port, 2023)
  const last = loadConfig({ argv: ['-cache=7', '-nocid'], env: {}, cwd: tempDir() }).config
  assert.equal(last.transforms.contextId.enabled, true)
  assert.equal(last.transforms.contextId.capacity, 7)
  assert.equal(loadConfig({ argv: ['-nocid=false'], env: {}, cwd: tempDir() }).config.transforms.contextId.enabled, false)
})

test('native env names', () => {
  const { config } = loadConfig({
    argv: [],
    env: { GATEWAY_CONTEXT_ID: '1', GATEWAY_CONTEXT_ID_CAPACITY: '9', GATEWAY_CONTEXT_ID_TTL_MS: '60000', GATEWAY_FIELD_ALIASES: '{"a":"b"}', GATEWAY_FIELD_ALIASES_BY_TARGET: '{"eu":{"c":"d"}}', GATEWAY_FIELD_ALIASES_REVERSE: 'true' },
    cwd: tempDir()
  })
  assert.deepEqual(config.transforms.contextId, { enabled: true, capacity: 9, ttlMs: 60_000 })
  assert.deepEqual(config.transforms.fieldAliases, { a: 'b' })
  assert.deepEqual(config.transforms.fieldAliasesByTarget, { eu: { c: 'd' } })
  assert.equal(config.transforms.reverseFieldAliases, true)
})

test('seed 004 file: field_aliases lands on transforms.fieldAliases; an empty value means none', () => {
  const cwd = tempDir()
  writeFileSync(join(cwd, 'openai-chat-proxy-config.yaml'), 'base_url: https://example.com\nfield_aliases:\n  model: model_id\n')
  assert.deepEqual(loadConfig({ argv: [], env: {}, cwd }).config.transforms.fieldAliases, { model: 'model_id' })
  const empty = tempDir()
  writeFileSync(join(empty, 'openai-chat-proxy-config.yaml'), 'base_url: https://example.com\nfield_aliases:\n')
  assert.deepEqual(loadConfig({ argv: [], env: {}, cwd: empty }).config.transforms.fieldAliases, {})
})

test('refusals name the key: bad capacity, non-string alias, ambiguous reverse map', () => {
  assert.throws(() => loadConfig({ argv: ['-cache', '0'], env: {}, cwd: tempDir() }), (err: unknown) => err instanceof ConfigError && /transforms\.contextId\.capacity/.test(err.message))
  assert.throws(() => loadConfig({ argv: [], env: { GATEWAY_FIELD_ALIASES: '{"a":1}' }, cwd: tempDir() }), (err: unknown) => err instanceof ConfigError && /transforms\.fieldAliases/.test(err.message))
  assert.throws(() => loadConfig({ argv: [], env: { GATEWAY_FIELD_ALIASES: 'not json' }, cwd: tempDir() }), (err: unknown) => err instanceof ConfigError && /expected JSON/.test(err.message))
  assert.throws(
    () => loadConfig({ argv: [], env: { GATEWAY_FIELD_ALIASES: '{"a":"x"}', GATEWAY_FIELD_ALIASES_BY_TARGET: '{"eu":{"b":"x"}}', GATEWAY_FIELD_ALIASES_REVERSE: '1' }, cwd: tempDir() }),
    (err: unknown) => err instanceof ConfigError && /fieldAliasesByTarget\.eu: "a" and "b" both become "x"/.test(err.message)
  )
})
