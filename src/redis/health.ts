/**
 * Redis availability as the gateway experiences it: one warn line per outage, one info line when
 * it ends, counters for metrics, and a circuit breaker (`bypassed`) so that a stalled Redis costs
 * requests nothing but the path they have for a dead one (plugins/redis.ts explains why).
 */
import type { FastifyBaseLogger } from 'fastify'

export interface RedisHealthOptions {
  /** after a failure, how long requests skip Redis before a probe asks it again */
  coolDownMs?: number
  /** one cheap round trip (PING); none: only other callers' successes close the breaker */
  probe?: () => Promise<unknown>
}

/** Availability of Redis as the plugins experience it, and the breaker requests consult. */
export class RedisHealth {
  /** true while connected and answering */
  available = false
  /** outages since start (each logged once) */
  outages = 0
  /** failed connection attempts and commands since start */
  failures = 0
  #down = false
  #closing = false
  #prober: NodeJS.Timeout | null = null
  #probing = false
  readonly #log: FastifyBaseLogger
  readonly #coolDownMs: number
  readonly #probe: (() => Promise<unknown>) | null

  constructor (log: FastifyBaseLogger, opts: RedisHealthOptions = {}) {
    this.#log = log
    this.#coolDownMs = opts.coolDownMs ?? 5000
    this.#probe = opts.probe ?? null
  }

  /**
   * True from a failure until Redis answers again: a request does not wait on Redis then, it
   * takes the path it has for a dead Redis.
   */
  get bypassed (): boolean {
    return this.#down
  }

  /** A connection error or a failed command: the first one of an outage is logged. */
  failed (err: unknown, operation: string): void {
    if (this.#closing) return // commands cut short by our own shutdown are no outage
    this.failures++
    this.available = false
    if (this.#down) return
    this.#down = true
    this.outages++
    this.#log.warn({ operation, cause: (err as Error)?.message ?? String(err), outages: this.outages },
      'redis unavailable: rate limits follow redis.failClosed, blacklist checks use the copy in memory; reconnecting')
    this.#startProbing()
  }

  closing (): void {
    this.#closing = true
    this.#stopProbing()
  }

  /** Connected (again), or a command succeeded after failures. */
  recovered (): void {
    this.available = true
    if (!this.#down) return
    this.#down = false
    this.#stopProbing()
    this.#log.info({ failures: this.failures }, 'redis available again')
  }

  #startProbing (): void {
    const probe = this.#probe
    if (probe === null || this.#prober !== null) return
    this.#prober = setInterval(() => {
      if (this.#probing) return // a stalled probe waits for its own timeout; one at a time
      this.#probing = true
      probe().then(() => this.recovered(), (err: unknown) => this.failed(err, 'probe'))
        .finally(() => { this.#probing = false })
    }, this.#coolDownMs)
    this.#prober.unref()
  }

  #stopProbing (): void {
    if (this.#prober !== null) clearInterval(this.#prober)
    this.#prober = null
  }
}
