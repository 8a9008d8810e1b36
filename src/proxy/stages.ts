/**
 * The response stages, registered once at boot in one visible order: the plugins that read or
 * rewrite answers (field aliases, context tags, usage, the debug tap) each add one, and the
 * forwarder asks each, per answer, whether it applies. Near-upstream stages run first (in the
 * order they were added), then near-client ones: field aliases translate the upstream's names
 * back before context-id reads `choices[].delta.content`, though context-id was registered first.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Transform } from 'node:stream'
import type { ChunkStage } from './chunk-stages.js'

export interface ResponseStart {
  request: FastifyRequest
  /** headers are not sent yet: a stage that learns the final body length may still set it */
  reply: FastifyReply
  statusCode: number
  /** upstream response headers, lower-cased; a stage may edit them (e.g. drop content-length) */
  headers: Record<string, string | string[] | undefined>
  isEventStream: boolean
}

/**
 * Called once the upstream answered, before anything is sent to the client: a stage to insert
 * between the upstream body and the client (a transform, a passive tap, or a synchronous
 * `ChunkStage` the forwarder runs without a stream of its own), or null where it does not apply.
 */
export type StageMaker = (start: ResponseStart) => Transform | ChunkStage | null

export type StagePosition = 'near-upstream' | 'near-client'

export interface StageEntry {
  /** for logs and the boot-time list */
  name: string
  position: StagePosition
  make: StageMaker
}

export class StageRegistry {
  readonly #nearUpstream: StageEntry[] = []
  readonly #nearClient: StageEntry[] = []
  #ordered: readonly StageEntry[] = []

  add (entry: StageEntry): void {
    if (entry.position === 'near-upstream') this.#nearUpstream.push(entry)
    else this.#nearClient.push(entry)
    this.#ordered = [...this.#nearUpstream, ...this.#nearClient]
  }

  /** every stage, upstream side first */
  get ordered (): readonly StageEntry[] {
    return this.#ordered
  }

  /** The stages that apply to this answer, upstream side first. */
  make (start: ResponseStart): Array<Transform | ChunkStage> {
    const out: Array<Transform | ChunkStage> = []
    for (const entry of this.#ordered) {
      const stage = entry.make(start)
      if (stage !== null) out.push(stage)
    }
    return out
  }
}
