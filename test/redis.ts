/**
 * A throwaway redis-server for tests: on a unix socket in a temp dir (no TCP port), no
 * persistence, killed when the test ends. Tests skip when redis-server is not installed.
 */
import type { TestContext } from 'node:test'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { tempDir } from './tmp.js'

export function redisServerInstalled (): boolean {
  return spawnSync('redis-server', ['--version']).status === 0
}

export async function startRedis (t: TestContext): Promise<Redis> {
  const dir = tempDir()
  const socket = join(dir, 'redis.sock')
  const server = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  t.after(() => { server.kill() })
  for (let i = 0; i < 300 && !existsSync(socket); i++) await sleep(10)
  const client = new Redis({ path: socket, maxRetriesPerRequest: 1 })
  t.after(() => client.disconnect())
  await client.ping()
  return client
}
