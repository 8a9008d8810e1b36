/**
 * `black.json` under the data directory (`BASE_PATH/black.json`): read once at boot,
 * rewritten atomically after changes (gathered, see `BlacklistFileWriter`).
 *
 * Format: `{"version":1,"entries":[{"ip","addedAt","reason","expiresAt"}]}`. The older shape
 * (`{"blacks":[…],"ip_error_counter":{…}}`, docs/migration/ai-proxy.md) is read too, so an
 * existing blacklist carries over.
 * A file that is not JSON, or not one of these shapes, is reported in one line and moved aside
 * (`black.json.corrupt-<time>`), and the gateway starts with an empty list instead of refusing to
 * start or silently overwriting the evidence. Invalid entries in an otherwise good file (hand
 * edits) are skipped and named in one line.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { removeStaleTemps, writeFileAtomic } from '../atomic-write.js'
import { parseEntry, type BlacklistEntry } from './blacklist.js'

export const BLACKLIST_FILE = 'black.json'

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** The older shape: bare addresses in `blacks`, error counters (with times) beside them. */
function seed002Entries (doc: Record<string, unknown>, now: number): unknown[] {
  if (!Array.isArray(doc.blacks)) return []
  const counters = isObject(doc.ip_error_counter) ? doc.ip_error_counter : {}
  return doc.blacks.map(ip => {
    const counter = typeof ip === 'string' && isObject(counters[ip]) ? counters[ip] : {}
    const last = typeof counter.lastError === 'number' ? counter.lastError : now
    const kind = typeof counter.errorType === 'string' ? `, last error ${counter.errorType}` : ''
    return { ip, addedAt: last, reason: `imported from seed 002 black.json${kind}` }
  })
}

function moveAside (path: string, why: string, log: FastifyBaseLogger): void {
  const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
  try {
    renameSync(path, aside)
    log.warn({ file: path, movedTo: aside, problem: why }, 'blacklist file is corrupt: moved aside, starting with an empty blacklist')
  } catch (err) {
    log.warn({ file: path, problem: why, moveError: (err as Error).message }, 'blacklist file is corrupt and could not be moved aside: starting with an empty blacklist')
  }
}

/** Entries still in force from the file; never throws. */
export function loadBlacklistFile (path: string, log: FastifyBaseLogger, now = Date.now()): BlacklistEntry[] {
  const stale = removeStaleTemps(path)
  if (stale.length > 0) log.info({ file: path, removed: stale.length }, 'blacklist: temporary files of an interrupted write removed')
  if (!existsSync(path)) return []
  let doc: unknown
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== undefined) {
      log.warn({ file: path, cause: (err as Error).message }, 'blacklist file cannot be read: starting with an empty blacklist')
      return []
    }
    moveAside(path, `not JSON: ${(err as Error).message}`, log)
    return []
  }
  if (!isObject(doc) || (!Array.isArray(doc.entries) && !Array.isArray(doc.blacks))) {
    moveAside(path, 'expected {"version":1,"entries":[…]} (or seed 002\'s {"blacks":[…]})', log)
    return []
  }
  const raw = [...(Array.isArray(doc.entries) ? doc.entries : []), ...seed002Entries(doc, now)]
  const entries = new Map<string, BlacklistEntry>()
  const problems: string[] = []
  for (const [i, value] of raw.entries()) {
    const parsed = parseEntry(value, now)
    if (typeof parsed === 'string') problems.push(`entry ${i}: ${parsed}`)
    else if (parsed.expiresAt === null || Date.parse(parsed.expiresAt) > now) entries.set(parsed.ip, parsed)
  }
  if (problems.length > 0) {
    log.warn({ file: path, ignored: problems.length, problems: problems.slice(0, 5) }, 'blacklist file: invalid entries ignored')
  }
  return [...entries.values()]
}

export function serializeBlacklist (entries: readonly BlacklistEntry[]): string {
  return `${JSON.stringify({ version: 1, entries }, null, 2)}\n`
}

/** How long changes nobody waits for are gathered before one save writes them all. */
export const SAVE_DELAY_MS = 1000

/**
 * Saves the list after changes, as whole atomic rewrites, but not one per change: the file is the
 * whole list (up to `blacklist.maxEntries` entries), so a flood of automatic additions saved one
 * by one would rewrite it once per address.
 * - `schedule()`: a change someone waits for (the admin API). Its save starts at once, and it
 *   resolves once a save that began after the call has ended (written, or failed and logged): an
 *   admin change is acknowledged only when it is on disk, so a crash right after the answer
 *   cannot lose it.
 * - `defer()`: a change nobody waits for (an automatic addition, another replica's change, an
 *   expiry). It is saved within `delayMs`, together with every other change of that time, or
 *   earlier with the next `schedule()`; a crash within that time loses it, as it would have lost
 *   the write in flight before (another replica's change and expiries are re-read at boot).
 * Saves never overlap; changes asked for while one is running are folded into the next.
 */
export class BlacklistFileWriter {
  readonly #path: string
  readonly #log: FastifyBaseLogger
  readonly #snapshot: () => BlacklistEntry[]
  readonly #delayMs: number
  #running: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  /** a change nobody waits for is not on disk yet */
  #deferred = false
  #failing = false
  /** changes waited for so far, and the number covered by the last save that ended */
  #requested = 0
  #saved = 0
  #waiters: Array<{ upTo: number, resolve: () => void }> = []

  constructor (path: string, log: FastifyBaseLogger, snapshot: () => BlacklistEntry[], delayMs = SAVE_DELAY_MS) {
    this.#path = path
    this.#log = log
    this.#snapshot = snapshot
    this.#delayMs = delayMs
  }

  schedule (): Promise<void> {
    const upTo = ++this.#requested
    const saved = new Promise<void>(resolve => this.#waiters.push({ upTo, resolve }))
    this.#running ??= this.#drain()
    return saved
  }

  defer (): void {
    this.#deferred = true
    if (this.#running === null) this.#arm()
  }

  /** Resolves once every change is on disk (or failed and was logged); deferred ones are saved now. */
  async flush (): Promise<void> {
    for (;;) {
      this.#disarm()
      if (this.#deferred) this.#running ??= this.#drain()
      if (this.#running === null) return
      await this.#running
    }
  }

  #arm (): void {
    if (this.#timer !== null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#deferred) this.#running ??= this.#drain()
    }, this.#delayMs)
    this.#timer.unref()
  }

  #disarm (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  async #drain (): Promise<void> {
    do {
      this.#disarm()
      this.#deferred = false
      // the snapshot below includes every change made up to here
      const covers = this.#requested
      try {
        await writeFileAtomic(this.#path, serializeBlacklist(this.#snapshot()))
        if (this.#failing) this.#log.info({ file: this.#path }, 'blacklist file written again')
        this.#failing = false
      } catch (err) {
        // one line per run of failures; the next change tries again
        if (!this.#failing) this.#log.warn({ file: this.#path, cause: (err as Error).message }, 'blacklist file could not be written; the list stays in memory')
        this.#failing = true
      }
      this.#settle(covers)
    } while (this.#saved < this.#requested)
    this.#running = null
    // changes nobody waits for that came during the save: gathered for one more, later
    if (this.#deferred) this.#arm()
  }

  #settle (covers: number): void {
    this.#saved = covers
    const waiting = this.#waiters
    this.#waiters = []
    for (const w of waiting) {
      if (w.upTo <= this.#saved) w.resolve()
      else this.#waiters.push(w)
    }
  }
}
