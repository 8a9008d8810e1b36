/**
 * docker-compose.yml, checked without a Docker engine: the Compose CLI validates it offline, and
 * every variable it names is one the gateway reads (or one of its own, documented in .env.example).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { defaultOf } from '../../config/describe.js'
import { COMPOSE_VARIABLES, gatewayEnvNames } from '../../config/env-example.js'
import { loadConfig } from '../../config/load.js'
import { tempDir } from '../tmp.js'
import {
  ROOT, composeCommand, composeFile, dockerfileStages, envExampleEntries, healthcheckCommand,
  interpolated, only, read, serviceEnv, stageEnv
} from './files.js'

const text = read('docker-compose.yml')
const compose = composeFile(text)
const gateways = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('llm-gateway') === true)

test('every variable the compose file names is read by the gateway, or is a compose variable documented in .env.example', () => {
  const gatewayNames = new Set(gatewayEnvNames())
  const composeNames = new Set(COMPOSE_VARIABLES.map(v => v.name))
  const named = [
    ...gateways.flatMap(([, s]) => Object.keys(serviceEnv(s))),
    ...interpolated(text)
  ]
  assert.ok(named.length > 0)
  for (const name of named) assert.ok(gatewayNames.has(name) || composeNames.has(name), `${name} is neither a gateway setting nor a documented compose variable`)
  // the gateway's settings set by the compose file are gateway settings, not compose variables
  for (const [, s] of gateways) for (const name of Object.keys(serviceEnv(s))) assert.ok(gatewayNames.has(name), name)
  const documented = new Set(envExampleEntries().map(e => e.name))
  for (const name of interpolated(text)) assert.ok(documented.has(name), `${name} is documented in .env.example`)
})

test('the settings the compose file forces give a valid config that listens where the ports point', () => {
  for (const [name, service] of gateways) {
    const env = serviceEnv(service)
    const { config } = loadConfig({ env, cwd: tempDir() })
    assert.equal(config.server.host, '0.0.0.0', `${name} listens on every interface`)
    const containerPorts = (service.ports ?? []).map(p => Number(p.split(':').at(-1)))
    assert.deepEqual(containerPorts, [config.server.port], `${name} publishes the port it listens on`)
    const mounts = (service.volumes ?? []).map(v => v.split(':')[1])
    assert.ok(mounts.includes(config.blacklist.dir), `${name}: BASE_PATH (${config.blacklist.dir}) is a volume`)
  }
})

test('gateway services: env_file .env, restart policy, SIGTERM with a grace period, the image health probe', () => {
  const runtime = dockerfileStages().at(-1)
  assert.ok(runtime !== undefined)
  const imageProbe = healthcheckCommand(only(runtime, 'HEALTHCHECK')[0])
  assert.ok(gateways.length >= 2, 'a gateway and its second replica')
  for (const [name, s] of gateways) {
    assert.equal(s.env_file, '.env', name)
    assert.equal(s.restart, 'unless-stopped', name)
    assert.equal(s.stop_signal, 'SIGTERM', name)
    const graceSeconds = Number(String(s.stop_grace_period).replace(/s$/, ''))
    assert.ok(graceSeconds * 1000 > (defaultOf('server.shutdownGraceMs') as number), `${name}: docker waits longer than the gateway's own grace period`)
    assert.deepEqual(s.healthcheck?.test, ['CMD', ...imageProbe], `${name} probes like the image`)
    // the image's own defaults agree with what compose forces
    assert.equal(serviceEnv(s).BASE_PATH, stageEnv(runtime).BASE_PATH)
    assert.equal(serviceEnv(s).GATEWAY_HOST, stageEnv(runtime).GATEWAY_HOST)
  }
})

test('Redis is optional (a profile), and the replicas profile runs two gateways sharing it', () => {
  const [first] = gateways[0]
  assert.equal(compose.services[first].profiles, undefined, 'the first gateway runs without any profile')
  assert.equal(compose.services[first].depends_on, undefined, 'and does not need Redis')
  const redis = compose.services.redis
  assert.ok(redis.profiles?.includes('redis') === true && redis.profiles.includes('replicas'))
  assert.equal(redis.ports, undefined, 'Redis is not published outside the compose network')
  const replicas = gateways.filter(([, s]) => s.profiles === undefined || s.profiles.includes('replicas'))
  assert.equal(replicas.length, 2)
  const published = replicas.map(([, s]) => s.ports?.[0].split(':')[0])
  assert.equal(new Set(published).size, 2, 'each replica has its own host port')
  const volumes = replicas.map(([, s]) => s.volumes?.[0].split(':')[0])
  assert.equal(new Set(volumes).size, 2, 'each replica has its own data volume')
})

test('the Compose CLI validates the file offline, with and without profiles', () => {
  const cmd = composeCommand()
  assert.ok(cmd !== null, 'a Compose CLI is installed (scripts/ensure-docker-compose.sh)')
  const dir = tempDir('gw-compose-')
  copyFileSync(fileURLToPath(new URL('docker-compose.yml', ROOT)), join(dir, 'docker-compose.yml'))
  copyFileSync(fileURLToPath(new URL('.env.example', ROOT)), join(dir, '.env'))
  // a clean environment: only the .env copy may feed the interpolations
  const env = { PATH: process.env.PATH ?? '', HOME: dir }
  const profiles: string[][] = [[], ['--profile', 'redis'], ['--profile', 'replicas']]
  for (const profile of profiles) {
    const r: SpawnSyncReturns<string> = spawnSync(cmd[0], [...cmd.slice(1), ...profile, 'config'], { cwd: dir, env, encoding: 'utf8' })
    assert.equal(r.status, 0, `${cmd.join(' ')} ${profile.join(' ')} config: ${r.stderr}`)
    const resolved = parseYaml(r.stdout) as { services: Record<string, { ports?: Array<{ published?: number | string, target?: number } | string> }> }
    const ports = JSON.stringify(resolved.services.gateway.ports)
    assert.match(ports, /8080/, 'the default published port')
  }
})
