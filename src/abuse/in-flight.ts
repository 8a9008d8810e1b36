/**
 * Requests in flight per scope (a client key, or an address network): what keeps one tenant
 * from holding every upstream connection with requests that never end (a body trickled a byte at
 * a time, an answer never read). Counts live in this process only: the upstream connection pool
 * they protect is per process too.
 *
 * A scope whose last request ended keeps its entry, and the idle entries are forgotten together
 * once there are more than `idleKept` of them: the map holds no more entries than there are
 * requests in flight plus `idleKept`. A map entry added and deleted on every request would make
 * V8 rebuild the map's table again and again, each old table linked to its successor: once one
 * of them is old, every later one survives the young-generation collections
 * (docs/performance.md, "Tables rebuilt on every request").
 */
interface Scope { n: number }

const IDLE_SCOPES_KEPT = 1024

export class InFlight {
  readonly #scopes = new Map<string, Scope>()
  readonly #idleKept: number
  #total = 0
  #idle = 0

  constructor (idleKept = IDLE_SCOPES_KEPT) {
    this.#idleKept = idleKept
  }

  /** requests in flight, every scope together */
  get total (): number {
    return this.#total
  }

  /** scopes remembered, with requests in flight or idle (for tests) */
  get scopes (): number {
    return this.#scopes.size
  }

  /**
   * Takes a slot unless `cap` are taken. Returns the function that gives it back: it may be
   * called any number of times, from any of the events that end a request, and releases once.
   */
  take (scope: string, cap: number): (() => void) | null {
    let s = this.#scopes.get(scope)
    if (s === undefined) {
      s = { n: 0 }
      this.#scopes.set(scope, s)
      this.#idle++
    }
    if (s.n >= cap) return null
    if (s.n === 0) this.#idle--
    s.n++
    this.#total++
    const taken = s
    let held = true
    return () => {
      if (!held) return
      held = false
      this.#total--
      if (--taken.n === 0 && ++this.#idle > this.#idleKept) this.#forgetIdle()
    }
  }

  #forgetIdle (): void {
    for (const [scope, s] of this.#scopes) if (s.n === 0) this.#scopes.delete(scope)
    this.#idle = 0
  }
}
