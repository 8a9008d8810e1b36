/**
 * The container health probe finds the gateway wherever its configuration put it: env names of
 * any seed, a YAML file, or the gateway's own flags read from PID 1's command line. (Its pure
 * parts, the flags taken from PID 1 and the probe address, are tested in the unit tier:
 * test/unit/health-probe.test.ts.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { probe } from '../../src/health-probe.js'
import { startGateway, tempDir } from '../helper.js'

test('the probe reads the port from seed env names, the YAML file and flags', async (t) => {
  const gw = await startGateway(t)
  const port = new URL(gw.url).port
  const cwd = tempDir()
  assert.equal(await probe({ argv: [], env: { PROXY_PORT: port }, cwd }), true, 'seed 001/002 PROXY_PORT')
  assert.equal(await probe({ argv: ['-listen', `127.0.0.1:${port}`], env: {}, cwd }), true, 'seed 003 -listen')
  assert.equal(await probe({ argv: [], env: { OPENAI_PROXY_LISTEN: `127.0.0.1:${port}` }, cwd }), true, 'seed 003 OPENAI_PROXY_LISTEN')
  writeFileSync(join(cwd, 'gateway.yaml'), `server:\n  port: ${port}\n`)
  assert.equal(await probe({ argv: [], env: {}, cwd }), true, './gateway.yaml')
  await gw.app.close()
  await assert.rejects(probe({ argv: [], env: { PROXY_PORT: port }, cwd: tempDir() }), 'nothing listens any more')
})
