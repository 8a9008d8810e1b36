/**
 * A real `redis-server` for tests, on a free loopback port, with no persistence, stopped by the
 * test. When redis-server is not installed the test fails with a message saying how to get it
 * (scripts/ensure-redis.sh); it never skips silently.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { freePort } from './ports.js'

export interface RedisServer {
  url: string
  port: number
  /** kills the server (an outage as the gateway sees it: connections drop) */
  stop: () => Promise<void>
  /** starts it again on the same port, empty */
  start: () => Promise<void>
  /** SIGSTOP: connections stay open and nothing is answered (a stalled Redis, not a dead one) */
  pause: () => void
  /** SIGCONT: it answers again, queued commands first */
  resume: () => void
}

export function requireRedisServer (): void {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error('redis-server is not installed: run scripts/ensure-redis.sh (Debian package redis-server); these tests need a real Redis')
  }
}

/** Resolves once the server answers PING (bounded: 100 tries). */
async function waitForPong (port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>(resolve => {
      const socket = createConnection({ host: '127.0.0.1', port })
      socket.once('error', () => resolve(false))
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.once('data', (d) => { socket.destroy(); resolve(d.toString().startsWith('+PONG')) })
    })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server on port ${port} did not answer PING`)
}

/** @param running false: pick the port but start nothing yet (Redis down when the gateway boots) */
export async function startRedis (t: TestContext, running = true): Promise<RedisServer> {
  requireRedisServer()
  const port = await freePort()
  let child: ChildProcess | null = null
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    child = proc
    const exited = once(proc, 'exit').then(([code]) => { throw new Error(`redis-server exited early (code ${String(code)})`) })
    exited.catch(() => {})
    await Promise.race([waitForPong(port), exited])
  }
  const stop = async (): Promise<void> => {
    const proc = child
    child = null
    if (proc === null || proc.exitCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }
  const signal = (name: NodeJS.Signals): void => {
    const proc = child as ChildProcess | null
    if (proc === null || proc.exitCode !== null) throw new Error('redis-server is not running')
    proc.kill(name)
  }
  if (running) await start()
  t.after(stop)
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, pause: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') }
}

/** A real redis-server plus an ioredis client connected to it, both stopped with the test. */
export async function startRedisClient (t: TestContext): Promise<Redis> {
  const server = await startRedis(t)
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.after(() => client.disconnect())
  await client.ping()
  return client
}
