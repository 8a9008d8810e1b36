/**
 * An in-memory stand-in for the few ioredis commands the gateway's Redis users call (the usage
 * store, the shared blacklist, the context-id store): strings with PX, hashes, pub/sub between
 * the clients of one fake server, MULTI/pipelines, `call` with the context store's compare-and-set
 * script, SCAN/UNLINK. The system tier tests the same code against a real redis-server; this one
 * lets the unit tier check what the code writes and how it behaves when Redis fails.
 */
import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'

type Reply = [Error | null, unknown]

export class FakeRedisServer {
  readonly strings = new Map<string, string>()
  readonly hashes = new Map<string, Map<string, string>>()
  /** PX / PEXPIRE values last set, by key (no clock: tests read them) */
  readonly ttls = new Map<string, number>()
  readonly subscribers = new Set<FakeRedisClient>()
  /** every command run, as `NAME key` */
  readonly log: string[] = []
  /** while set, every command fails with this error (a Redis that is down) */
  down: Error | null = null

  client (): Redis {
    return new FakeRedisClient(this) as unknown as Redis
  }

  run (name: string, args: Array<string | number>): unknown {
    this.log.push(`${name} ${String(args[0] ?? '')}`.trim())
    if (this.down !== null) throw this.down
    const [key, ...rest] = args.map(String)
    switch (name) {
      case 'GET': return this.strings.get(key) ?? null
      case 'SET': {
        if (rest.includes('NX') && this.strings.has(key)) return null
        this.strings.set(key, rest[0])
        if (rest[1] === 'PX') this.ttls.set(key, Number(rest[2]))
        return 'OK'
      }
      case 'HSET': this.#hash(key).set(rest[0], rest[1]); return 1
      case 'HDEL': return this.#hash(key).delete(rest[0]) ? 1 : 0
      case 'HGETALL': return Object.fromEntries(this.hashes.get(key) ?? [])
      case 'HINCRBY': {
        const h = this.#hash(key)
        const n = Number(h.get(rest[0]) ?? '0') + Number(rest[1])
        h.set(rest[0], String(n))
        return n
      }
      case 'PEXPIRE': this.ttls.set(key, Number(rest[0])); return 1
      case 'PUBLISH': {
        for (const sub of this.subscribers) if (sub.channels.has(key)) sub.emit('message', key, rest[0])
        return this.subscribers.size
      }
      case 'EVAL': return this.#compareAndSet(args)
      case 'SCAN': {
        const pattern = rest[1] ?? '*'
        const prefix = pattern.slice(0, -1).replace(/\\(.)/g, '$1')
        return ['0', [...this.strings.keys()].filter(k => k.startsWith(prefix))]
      }
      case 'UNLINK': return args.filter(k => this.strings.delete(String(k))).length
      case 'PING': return 'PONG'
      case 'INCR': {
        const n = Number(this.strings.get(key) ?? '0') + 1
        this.strings.set(key, String(n))
        return n
      }
      case 'DEL': return args.filter(k => this.strings.delete(String(k))).length
      case 'MGET': return args.map(k => this.strings.get(String(k)) ?? null)
      default: throw new Error(`the fake Redis has no ${name}`)
    }
  }

  #hash (key: string): Map<string, string> {
    let h = this.hashes.get(key)
    if (h === undefined) { h = new Map(); this.hashes.set(key, h) }
    return h
  }

  /** src/lib/context-store.ts's script: KEYS[1], ARGV = expected ('' = absent), value, ttl ms */
  #compareAndSet (args: Array<string | number>): number {
    const [, , key, expected, value, ttl] = args.map(String)
    if ((this.strings.get(key) ?? '') !== expected) return 0
    this.strings.set(key, value)
    if (Number(ttl) > 0) this.ttls.set(key, Number(ttl))
    return 1
  }
}

class FakeBatch {
  readonly #server: FakeRedisServer
  readonly #commands: Array<[string, Array<string | number>]> = []

  constructor (server: FakeRedisServer) { this.#server = server }

  #add (name: string, args: Array<string | number>): this {
    this.#commands.push([name, args])
    return this
  }

  get (...a: Array<string | number>): this { return this.#add('GET', a) }
  set (...a: Array<string | number>): this { return this.#add('SET', a) }
  hset (...a: Array<string | number>): this { return this.#add('HSET', a) }
  hdel (...a: Array<string | number>): this { return this.#add('HDEL', a) }
  hgetall (...a: Array<string | number>): this { return this.#add('HGETALL', a) }
  hincrby (...a: Array<string | number>): this { return this.#add('HINCRBY', a) }
  pexpire (...a: Array<string | number>): this { return this.#add('PEXPIRE', a) }
  publish (...a: Array<string | number>): this { return this.#add('PUBLISH', a) }
  incr (...a: Array<string | number>): this { return this.#add('INCR', a) }
  del (...a: Array<string | number>): this { return this.#add('DEL', a) }

  async exec (): Promise<Reply[]> {
    if (this.#server.down !== null) throw this.#server.down
    return this.#commands.map(([name, args]): Reply => {
      try { return [null, this.#server.run(name, args)] } catch (err) { return [err as Error, null] }
    })
  }
}

class FakeRedisClient extends EventEmitter {
  readonly channels = new Set<string>()
  readonly #server: FakeRedisServer
  status = 'ready'

  constructor (server: FakeRedisServer) {
    super()
    this.#server = server
  }

  async #run (name: string, args: Array<string | number>): Promise<unknown> {
    return this.#server.run(name, args)
  }

  get (key: string): Promise<unknown> { return this.#run('GET', [key]) }
  set (...a: Array<string | number>): Promise<unknown> { return this.#run('SET', a) }
  hgetall (key: string): Promise<unknown> { return this.#run('HGETALL', [key]) }
  del (...a: Array<string | number>): Promise<unknown> { return this.#run('DEL', a) }
  mget (keys: string[]): Promise<unknown> { return this.#run('MGET', keys) }
  ping (): Promise<unknown> { return this.#run('PING', []) }
  call (command: string, ...args: Array<string | number>): Promise<unknown> { return this.#run(command.toUpperCase(), args) }
  multi (): FakeBatch { return new FakeBatch(this.#server) }
  pipeline (): FakeBatch { return new FakeBatch(this.#server) }

  duplicate (): FakeRedisClient {
    const sub = new FakeRedisClient(this.#server)
    this.#server.subscribers.add(sub)
    return sub
  }

  async subscribe (channel: string): Promise<number> {
    this.channels.add(channel)
    return this.channels.size
  }

  disconnect (): void {
    this.#server.subscribers.delete(this)
    this.status = 'end'
  }
}
