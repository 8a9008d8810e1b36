/**
 * Gives memory back after a burst. V8 grows its heap to the load it just saw and collects only
 * when something allocates: a gateway that goes quiet after a burst keeps the burst's garbage,
 * and its RSS, until the next request (how much over the warm level depends on where the last
 * collection happened to fall: benchmark scenario 8, docs/performance.md). Once
 * no request has arrived for `idleMs` after at least `BURST` requests, one full collection runs
 * (a few milliseconds on a quiet process) and V8 returns the emptied pages.
 *
 * The collection is not free for the traffic after it: the next burst runs as if the process had
 * just started, at a multiple of the usual CPU per request for its first second or two
 * (docs/performance.md, round 5; the same with an asynchronous major GC or with bytecode
 * flushing off, so it is the full collection itself). Hence the long default
 * (60 s): a gateway that is quiet for a minute gets its memory back, one that answers bursts a
 * few seconds apart is not slowed down by it.
 *
 * Requests are counted on the HTTP server's own 'request' event: no Fastify hook per request.
 */
import fp from 'fastify-plugin'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyPluginAsync } from 'fastify'

export interface IdleMemoryOptions {
  /** quiet time before the collection; 0 turns this off */
  idleMs: number
}

/** requests since the last collection that make a burst worth collecting after */
const BURST = 1000

/** `gc()` without the --expose-gc command-line flag (the flag can be set at run time). */
function exposeGc (): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc
  if (typeof existing === 'function') return existing
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    return typeof gc === 'function' ? gc as () => void : null
  } catch {
    return null
  }
}

const idleMemory: FastifyPluginAsync<IdleMemoryOptions> = async (fastify, { idleMs }) => {
  if (idleMs <= 0) return
  const collect = exposeGc()
  if (collect === null) {
    fastify.log.warn('garbage collection cannot be triggered here: memory after bursts is left to V8')
    return
  }
  let seen = 0
  let checked = 0
  let collectedAt = 0
  let quietSince = performance.now()
  const count = (): void => { seen++ }
  fastify.server.on('request', count)

  const timer = setInterval(() => {
    const now = performance.now()
    if (seen !== checked) {
      checked = seen
      quietSince = now
      return
    }
    if (seen - collectedAt < BURST || now - quietSince < idleMs) return
    collectedAt = seen
    const started = performance.now()
    collect()
    fastify.log.debug({ ms: Math.round((performance.now() - started) * 10) / 10 }, 'quiet after a burst: memory collected')
  }, Math.max(100, Math.min(Math.floor(idleMs / 4), 5000)))
  timer.unref()

  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    fastify.server.off('request', count)
  })
}

export default fp(idleMemory, { name: 'gateway-idle-memory', fastify: '5.x' })
