/**
 * Requests in flight per scope (a client key, or an address network): what keeps one tenant
 * from holding every upstream connection with requests that never end (a body trickled a byte at
 * a time, an answer never read). Counts live in this process only: the upstream connection pool
 * they protect is per process too. A scope is forgotten when its last request ends, so the map
 * holds no more entries than there are requests in flight.
 */
export class InFlight {
  readonly #counts = new Map<string, number>()
  #total = 0

  /** requests in flight, every scope together */
  get total (): number {
    return this.#total
  }

  /**
   * Takes a slot unless `cap` are taken. Returns the function that gives it back: it may be
   * called any number of times, from any of the events that end a request, and releases once.
   */
  take (scope: string, cap: number): (() => void) | null {
    const n = this.#counts.get(scope) ?? 0
    if (n >= cap) return null
    this.#counts.set(scope, n + 1)
    this.#total++
    let held = true
    return () => {
      if (!held) return
      held = false
      this.#total--
      const left = (this.#counts.get(scope) ?? 1) - 1
      if (left <= 0) this.#counts.delete(scope)
      else this.#counts.set(scope, left)
    }
  }
}
