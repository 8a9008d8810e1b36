/**
 * The blacklist as the rest of the gateway sees it (`fastify.blacklist`): the copy in memory that
 * requests are checked against, kept on disk by the file writer and shared through Redis when
 * configured. Every change goes through here, so the three never disagree for long.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Blacklist, BlacklistEntry } from './blacklist.js'
import type { BlacklistFileWriter } from './blacklist-file.js'
import type { BlacklistSync } from './blacklist-sync.js'

export interface BlacklistStats {
  /** requests refused because their address was blacklisted */
  refused: number
  /** addresses blacklisted automatically */
  autoAdded: number
  /** automatic additions dropped because the list was full */
  dropped: number
}

export class BlacklistService {
  readonly stats: BlacklistStats = { refused: 0, autoAdded: 0, dropped: 0 }
  readonly #list: Blacklist
  readonly #maxAuto: number
  readonly #log: FastifyBaseLogger
  #writer: BlacklistFileWriter | null = null
  #sync: BlacklistSync | null = null

  constructor (list: Blacklist, maxAuto: number, log: FastifyBaseLogger) {
    this.#list = list
    this.#maxAuto = maxAuto
    this.#log = log
  }

  attach (writer: BlacklistFileWriter | null, sync: BlacklistSync | null): void {
    this.#writer = writer
    this.#sync = sync
  }

  has (ip: string): boolean {
    return this.#list.has(ip)
  }

  get (ip: string): BlacklistEntry | undefined {
    return this.#list.get(ip)
  }

  list (): BlacklistEntry[] {
    return this.#list.list()
  }

  get size (): number {
    return this.#list.size
  }

  /**
   * Adds or replaces an entry (admin API). Resolves once the change is in Redis and in the file,
   * so an acknowledged change survives a crash right after the answer.
   */
  async add (entry: BlacklistEntry): Promise<void> {
    const saved = this.#list.set(entry) ? this.#writer?.schedule() : undefined
    await this.#sync?.added(entry)
    await saved
  }

  /**
   * An automatic addition. Bounded: past `maxEntries` new addresses are not added (and counted),
   * so a flood from many addresses cannot grow the list without limit either.
   */
  async addAutomatic (entry: BlacklistEntry): Promise<boolean> {
    if (this.#list.has(entry.ip)) return false
    if (this.#list.size >= this.#maxAuto) {
      if (this.stats.dropped++ === 0) this.#log.warn({ maxEntries: this.#maxAuto }, 'blacklist is full: further automatic additions are dropped (blacklist.maxEntries)')
      return false
    }
    this.stats.autoAdded++
    // in force at once; nobody waits for the file here: saved with the others of its time
    if (this.#list.set(entry)) this.#writer?.defer()
    await this.#sync?.added(entry)
    return true
  }

  async remove (ip: string): Promise<boolean> {
    const existed = this.#list.has(ip)
    const saved = this.#list.delete(ip) ? this.#writer?.schedule() : undefined
    await this.#sync?.removed(ip)
    await saved
    return existed
  }

  /** Drops expired entries everywhere. */
  async sweep (): Promise<void> {
    const gone = this.#list.sweep()
    if (gone.length === 0) return
    this.#writer?.defer()
    for (const ip of gone) await this.#sync?.removed(ip)
  }

  /** Called when another replica changed the list: keep the file in step. */
  changedElsewhere (): void {
    // nobody waits for this save (and a restart re-reads Redis anyway)
    this.#writer?.defer()
  }
}
