/**
 * The registry of the gateway's caches, so `POST /admin/cache/clear` can empty every one of them
 * without knowing which plugins exist. A plugin that keeps a cache registers it once:
 *
 *   fastify.caches.register('models', () => cache.clear())   // returns how many entries went
 *
 * and declares `dependencies: ['gateway-caches']`.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

/** Empties one cache and returns the number of entries it held (a shared store answers async). */
export type ClearCache = () => number | Promise<number>

export interface CacheRegistry {
  register: (name: string, clear: ClearCache) => void
  names: () => string[]
  /** Clears every registered cache: `{ name: entriesCleared }`. */
  clearAll: () => Promise<Record<string, number>>
}

declare module 'fastify' {
  interface FastifyInstance {
    caches: CacheRegistry
  }
}

export function createCacheRegistry (): CacheRegistry {
  const clearers = new Map<string, ClearCache>()
  return {
    register (name, clear) {
      if (clearers.has(name)) throw new Error(`cache "${name}" is registered twice`)
      clearers.set(name, clear)
    },
    names: () => [...clearers.keys()],
    async clearAll () {
      const cleared: Record<string, number> = {}
      for (const [name, clear] of clearers) cleared[name] = await clear()
      return cleared
    }
  }
}

const caches: FastifyPluginAsync = async (fastify) => {
  fastify.decorate('caches', createCacheRegistry())
}

export default fp(caches, { name: 'gateway-caches', fastify: '5.x' })
