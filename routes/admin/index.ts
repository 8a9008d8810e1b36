/**
 * The admin API under `/admin`. Every route here, and every other admin route, lives in the admin
 * scope (src/app.ts), guarded by the admin token (plugins/admin-auth.ts); without a token it answers 404.
 *
 * - `POST /admin/cache/clear` → `{"cleared":{"<cache>":<entries>,…}}`, every registered cache.
 * - `GET /admin/keys` → the client keys' names and settings, never the keys or their hashes.
 */
import type { FastifyPluginAsync } from 'fastify'
import { NotFoundError } from '../../src/errors.js'
import { pathOnly } from '../../src/logging.js'

const adminRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.post('/cache/clear', async function clearCaches (request) {
    const cleared = await fastify.caches.clearAll()
    request.log.info({ cleared }, 'caches cleared')
    return { cleared }
  })

  fastify.get('/keys', async function listKeys () {
    const { mode, passThroughUnknown, header, keys } = fastify.clientAuth
    return { mode, passThroughUnknown, header: header === '' ? null : header, keys }
  })

  // unknown admin paths are guarded too, so they reveal nothing to a caller without the token
  async function unknownAdminRoute (request: { method: string, url: string }): Promise<never> {
    throw new NotFoundError(request.method, pathOnly(request.url))
  }
  fastify.all('/', unknownAdminRoute)
  fastify.all('/*', unknownAdminRoute)
}

export default adminRoutes
