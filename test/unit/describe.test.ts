/**
 * The CLI's texts as functions (config/describe.ts): the help lists every settable option with
 * its flags, env names and default; the effective config as `--check-config` prints it masks every
 * secret and keeps names readable. test/cli.test.ts runs the same through the real command.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { GatewayConfig } from '../../config/schema.js'
import { helpText, maskedConfig } from '../../config/describe.js'
import { loadConfig } from '../../config/load.js'
import { SECRETS_YAML, assertHelpListsEveryOption, tempDir } from '../helper.js'

test('the help lists every settable option with its description, flags, env names and default', () => {
  const text = helpText()
  assertHelpListsEveryOption(text)
  for (const action of ['--check-config', '--version', '--config FILE']) assert.ok(text.includes(action), action)
})

test('the effective config masks every secret (keys, tokens, proxy and Redis passwords) and keeps names and normalised values', () => {
  const dir = tempDir()
  const { secrets } = SECRETS_YAML
  writeFileSync(join(dir, 'gw.yaml'), SECRETS_YAML.yaml)
  const { config } = loadConfig({ argv: ['--config', join(dir, 'gw.yaml'), '-p', '9001'], env: SECRETS_YAML.env, cwd: dir })
  const text = JSON.stringify(maskedConfig(config))
  for (const secret of secrets) assert.ok(!text.includes(secret), `${secret} is masked`)
  const effective = JSON.parse(text) as GatewayConfig
  assert.equal(effective.server.port, 9001, 'flags apply')
  assert.equal(effective.targets.claude.provider, 'anthropic', 'the normalised values are shown')
  assert.deepEqual(effective.targets.claude.keys.map(k => typeof k === 'string' ? k : k.name), ['key-1', 'backup'], 'key names stay readable')
  assert.equal(effective.auth.keys[0].name, 'web')
  assert.equal(effective.auth.keys[0].key, '[REDACTED]')
  assert.equal(effective.redis.url, '[REDACTED]')
  assert.equal(config.auth.keys[0].key, 'client-secret-5', 'the config itself is not changed')
})
