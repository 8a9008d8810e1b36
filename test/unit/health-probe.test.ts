/**
 * The container health probe's own logic: which flags it takes from PID 1's command line, where
 * it sends its request, and the port it reads from env names, flags and the YAML file. The probe
 * is pointed at the embedded mock here (it answers /healthz too); test/deploy/health-probe.test.ts
 * probes a real gateway.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gatewayArgv, probe, probeUrl } from '../../src/health-probe.js'
import { startMock, tempDir } from '../helper.js'

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
  assert.equal(probeUrl('::1', 9000), 'http://[::1]:9000/healthz')
  assert.equal(probeUrl('10.1.2.3', 6543), 'http://10.1.2.3:6543/healthz')
})

test('the probe reads the port from seed env names, flags and ./gateway.yaml; nothing listening is a failure', async (t) => {
  const mock = await startMock(t)
  const port = String(mock.port)
  const cwd = tempDir()
  assert.equal(await probe({ argv: [], env: { PROXY_PORT: port }, cwd }), true, 'seed 001/002 PROXY_PORT')
  assert.equal(await probe({ argv: ['-listen', `127.0.0.1:${port}`], env: {}, cwd }), true, 'seed 003 -listen')
  writeFileSync(join(cwd, 'gateway.yaml'), `server:\n  port: ${port}\n`)
  assert.equal(await probe({ argv: [], env: {}, cwd }), true, './gateway.yaml')
  assert.equal(mock.count('/healthz'), 3)
  await mock.close()
  await assert.rejects(probe({ argv: [], env: { PROXY_PORT: port }, cwd: tempDir() }), 'nothing listens any more')
})
