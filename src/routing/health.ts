/**
 * The health of deployments (a target and a model) and of targets: who is out of rotation until
 * when (cooldowns), and, per process, recent failures, a moving average of the time to the first
 * byte and the requests in flight.
 *
 * Cooldowns live behind one interface, `Cooldowns`, read synchronously on every group request:
 * - `MemoryCooldowns`: per process;
 * - `RedisCooldowns`: the same, shared through Redis keys with TTLs — a failure is counted under
 *   `{prefix}health:fails:{id}` (expiring after the window), a cooldown is `{prefix}health:cool:{id}`
 *   (its value the epoch ms it ends, expiring then), and every replica reads the cooldown keys of
 *   the deployments it knows every POLL_MS, so a cooldown set by one replica is honoured by all
 *   within that time. Redis failing never fails a request: the process then decides alone.
 * A target's active health check (`targets.<name>.healthCheck`) writes the same state under the id
 * `@{target}`: a target that fails its check cools every deployment on it.
 */
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { RedisHealth } from '../redis/health.js'

export interface CooldownRules {
  allowedFails: number
  cooldownMs: number
}

export interface Cooldowns {
  /** epoch ms until which `id` is out of rotation; 0 (or the past) = in rotation */
  until: (id: string) => number
  /**
   * A failure of `id` at `now`: counted within `cooldownMs`; the `allowedFails`-th starts a
   * cooldown of `cooldownMs`, or of `retryAfterMs` when longer. Returns the end of a cooldown this
   * failure started, else 0.
   */
  fail: (id: string, rules: CooldownRules, retryAfterMs: number, now: number) => number
  /** Out of rotation until `until` at once (a failed health check). */
  cool: (id: string, until: number) => void
  /** Back in rotation (a passed health check). */
  clear: (id: string) => void
  close: () => void
}

interface Window {
  start: number
  count: number
  until: number
}

export class MemoryCooldowns implements Cooldowns {
  protected readonly windows = new Map<string, Window>()

  until (id: string): number {
    return this.windows.get(id)?.until ?? 0
  }

  fail (id: string, rules: CooldownRules, retryAfterMs: number, now: number): number {
    let w = this.windows.get(id)
    if (w === undefined) {
      w = { start: now, count: 0, until: 0 }
      this.windows.set(id, w)
    }
    if (now - w.start >= rules.cooldownMs) {
      w.start = now
      w.count = 0
    }
    w.count++
    if (w.count < rules.allowedFails || w.until > now) return 0
    w.count = 0
    w.start = now
    w.until = now + Math.max(rules.cooldownMs, retryAfterMs)
    return w.until
  }

  cool (id: string, until: number): void {
    const w = this.windows.get(id)
    if (w === undefined) this.windows.set(id, { start: 0, count: 0, until })
    else w.until = Math.max(w.until, until)
  }

  clear (id: string): void {
    const w = this.windows.get(id)
    if (w !== undefined) {
      w.until = 0
      w.count = 0
    }
  }

  /** What Redis said (a cooldown another replica set); never shortens one this process knows. */
  protected mirror (id: string, until: number): void {
    const w = this.windows.get(id)
    if (w === undefined) {
      if (until > 0) this.windows.set(id, { start: 0, count: 0, until })
    } else if (until > w.until) w.until = until
  }

  close (): void {}
}

/** How often a replica reads the cooldowns the others set. */
export const POLL_MS = 250

export class RedisCooldowns extends MemoryCooldowns {
  readonly #redis: Redis
  readonly #health: RedisHealth
  readonly #prefix: string
  readonly #ids: readonly string[]
  readonly #log: FastifyBaseLogger
  readonly #timer: NodeJS.Timeout
  #polling = false

  /** `ids`: every deployment and target id this replica may be asked about */
  constructor (redis: Redis, health: RedisHealth, prefix: string, ids: readonly string[], log: FastifyBaseLogger) {
    super()
    this.#redis = redis
    this.#health = health
    this.#prefix = `${prefix}health:`
    this.#ids = ids
    this.#log = log
    this.#timer = setInterval(() => {
      try {
        this.#poll()
      } catch (err) {
        this.#polling = false
        this.#health.failed(err, 'health poll')
      }
    }, POLL_MS)
    this.#timer.unref()
  }

  override fail (id: string, rules: CooldownRules, retryAfterMs: number, now: number): number {
    const until = super.fail(id, rules, retryAfterMs, now)
    if (this.#health.bypassed) return until
    if (until > 0) {
      this.#share(id, until, now)
      return until
    }
    // the replicas' failures add up: the allowedFails-th of them all starts the cooldown
    const key = `${this.#prefix}fails:${id}`
    try {
      this.#count(key, id, rules, retryAfterMs)
    } catch (err) {
      this.#health.failed(err, 'health failure count')
    }
    return 0
  }

  #count (key: string, id: string, rules: CooldownRules, retryAfterMs: number): void {
    this.#redis.multi().set(key, '0', 'PX', rules.cooldownMs, 'NX').incr(key).exec().then((replies) => {
      const count = Number(replies?.[1]?.[1] ?? 0)
      if (count >= rules.allowedFails) {
        const at = Date.now()
        const end = at + Math.max(rules.cooldownMs, retryAfterMs)
        super.cool(id, end)
        this.#share(id, end, at)
      }
    }).catch((err: unknown) => { this.#health.failed(err, 'health failure count') })
  }

  override cool (id: string, until: number): void {
    super.cool(id, until)
    if (!this.#health.bypassed) this.#share(id, until, Date.now())
  }

  override clear (id: string): void {
    super.clear(id)
    if (this.#health.bypassed) return
    try {
      this.#redis.del(`${this.#prefix}cool:${id}`, `${this.#prefix}fails:${id}`).catch((err: unknown) => { this.#health.failed(err, 'health clear') })
    } catch (err) {
      this.#health.failed(err, 'health clear')
    }
  }

  override close (): void {
    clearInterval(this.#timer)
  }

  #share (id: string, until: number, now: number): void {
    const ttl = Math.max(1, until - now)
    // (a client that throws instead of rejecting must not fail the request that noted the failure)
    try {
      this.#redis.multi().set(`${this.#prefix}cool:${id}`, String(until), 'PX', ttl).del(`${this.#prefix}fails:${id}`).exec()
        .catch((err: unknown) => { this.#health.failed(err, 'health cooldown') })
    } catch (err) {
      this.#health.failed(err, 'health cooldown')
    }
  }

  #poll (): void {
    if (this.#polling || this.#health.bypassed || this.#ids.length === 0) return
    this.#polling = true
    this.#redis.mget(this.#ids.map(id => `${this.#prefix}cool:${id}`)).then((values) => {
      for (let i = 0; i < values.length; i++) {
        const until = Number(values[i])
        // a value Redis holds is data, not trusted: only a finite time counts
        if (values[i] !== null && Number.isFinite(until)) this.mirror(this.#ids[i], until)
      }
    }).catch((err: unknown) => {
      this.#health.failed(err, 'health poll')
      this.#log.debug({ errorClass: 'redis' }, 'deployment cooldowns could not be read from redis')
    }).finally(() => { this.#polling = false })
  }
}

/** A few recent failures per deployment, for the admin page. */
const RECENT = 5
/** weight of the newest sample in the moving average of the time to the first byte */
const EWMA_ALPHA = 0.3

export interface Stats {
  inFlight: number
  /** moving average of the time to the first byte, ms; null before the first answer */
  latencyMs: number | null
  /** newest last */
  recentFailures: Array<{ at: number, errorClass: string }>
  successes: number
  failures: number
}

/** What happened to attempts, for metrics (set by the plugin that owns the metrics). */
export interface HealthEvents {
  attempt: (target: string, outcome: string) => void
  cooldown: (id: string) => void
  failover: (group: string) => void
}

/** Cooldowns (shared or not) plus this process's statistics, per deployment id. */
export class HealthBoard {
  readonly cooldowns: Cooldowns
  readonly #stats = new Map<string, Stats>()
  events: HealthEvents | null = null

  constructor (cooldowns: Cooldowns) {
    this.cooldowns = cooldowns
  }

  stats (id: string): Stats {
    let s = this.#stats.get(id)
    if (s === undefined) {
      s = { inFlight: 0, latencyMs: null, recentFailures: [], successes: 0, failures: 0 }
      this.#stats.set(id, s)
    }
    return s
  }

  /** Until when deployment `id` is out of rotation: its own cooldown or its target's (`targetId`, `@{target}`). */
  coolingUntil (id: string, targetId: string): number {
    const own = this.cooldowns.until(id)
    const t = this.cooldowns.until(targetId)
    return own > t ? own : t
  }

  latency (id: string): number | null {
    return this.#stats.get(id)?.latencyMs ?? null
  }

  started (id: string): void {
    this.stats(id).inFlight++
  }

  /** An attempt answered (and was kept): its time to the first byte feeds the average. */
  succeeded (id: string, target: string, ttfbMs: number): void {
    const s = this.stats(id)
    s.inFlight--
    s.successes++
    s.latencyMs = s.latencyMs === null ? ttfbMs : s.latencyMs + EWMA_ALPHA * (ttfbMs - s.latencyMs)
    this.events?.attempt(target, 'success')
  }

  /** An attempt failed with `errorClass`; returns the end of the cooldown it started, or 0. */
  failed (id: string, target: string, errorClass: string, rules: CooldownRules, retryAfterMs: number, now = Date.now()): number {
    this.stats(id).inFlight--
    return this.failedLater(id, target, errorClass, rules, retryAfterMs, now)
  }

  /** An answer that had counted as a success failed after all (a stream that broke midway). */
  failedLater (id: string, target: string, errorClass: string, rules: CooldownRules, retryAfterMs: number, now = Date.now()): number {
    const s = this.stats(id)
    s.failures++
    s.recentFailures.push({ at: now, errorClass })
    if (s.recentFailures.length > RECENT) s.recentFailures.shift()
    this.events?.attempt(target, errorClass)
    const until = this.cooldowns.fail(id, rules, retryAfterMs, now)
    if (until > 0) this.events?.cooldown(id)
    return until
  }

  /** An attempt that ended neither way (the client went away, a 4xx): only no longer in flight. */
  ended (id: string, target: string, outcome: string): void {
    this.stats(id).inFlight--
    this.events?.attempt(target, outcome)
  }

  close (): void {
    this.cooldowns.close()
  }
}

/** `Retry-After` in ms: seconds or an HTTP date; 0 when absent or unreadable. Bounded to a day. */
export function retryAfterMs (value: string | string[] | undefined, now = Date.now()): number {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined || v === '') return 0
  const seconds = Number(v)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(v) - now
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 86_400_000) : 0
}
