/**
 * The container health probe finds the gateway wherever its configuration put it: env names of
 * any seed, a YAML file, or the gateway's own flags read from PID 1's command line.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gatewayArgv, probe, probeUrl } from '../../src/health-probe.js'
import { startGateway, tempDir } from '../helper.js'

test('the gateway flags come from PID 1\'s command line when PID 1 is the gateway', () => {
  assert.deepEqual(gatewayArgv('node\0dist/src/cli.js\0-listen\0:9000\0'), ['-listen', ':9000'])
  assert.deepEqual(gatewayArgv('/usr/local/bin/node\0/app/dist/src/cli.js\0'), [])
  assert.deepEqual(gatewayArgv('node\0--import\0tsx\0src/cli.ts\0-p\x002023\0-nocid\0'), ['-p', '2023', '-nocid'])
  assert.deepEqual(gatewayArgv('/sbin/init\0splash\0'), [], 'another PID 1 (tini, systemd): no flags')
  assert.deepEqual(gatewayArgv(''), [])
})

test('the probe goes to loopback when the gateway listens on every interface', () => {
  assert.equal(probeUrl('0.0.0.0', 8080), 'http://127.0.0.1:8080/healthz')
  assert.equal(probeUrl('::', 8080), 'http://127.0.0.1:8080/healthz')
  assert.equal(probeUrl('127.0.0.1', 2023), 'http://127.0.0.1:2023/healthz')
  assert.equal(probeUrl('::1', 9000), 'http://[::1]:9000/healthz')
  assert.equal(probeUrl('10.1.2.3', 6543), 'http://10.1.2.3:6543/healthz')
})

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
