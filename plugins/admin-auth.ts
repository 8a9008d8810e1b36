/**
 * The admin token guard of the scope it is registered in: src/app.ts registers it first in the
 * `/admin` scope (and in the scope of the metrics page), so every route there, unknown admin paths
 * included, is checked, and no route elsewhere is. The scope is the guard: no route flag to
 * forget, and src/app.ts refuses to boot with an `/admin` route outside that scope.
 *
 * With no admin token configured, every admin route answers 404 like an unknown route: the admin
 * API is never open (seed 001 left its cache-clear endpoint open). The token is compared in
 * constant time (both sides hashed, then `timingSafeEqual`), and is read from the same headers as
 * a client key. A refused token counts toward the address's refused authentications, like a
 * refused client key (src/auth/refusals.ts, `refuseGuessing`).
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { AdminTokenError, NotFoundError } from '../src/errors.js'
import { pathOnly } from '../src/logging.js'
import type { RefusalLimit } from '../src/abuse/refusal-limit.js'
import { presentedKeys, secretMatches, sha256 } from '../src/auth/keys.js'
import { refuseGuessing } from '../src/auth/refusals.js'

export interface AdminAuthOptions {
  /** empty → the admin API is off (404) */
  adminToken: string
  /** the configured client-key header, also accepted for the admin token (seed 001) */
  header: string
  /** refused authentications per address, shared with client authentication; null = not limited */
  refusals?: RefusalLimit | null
}

export function isAdminPath (url: string): boolean {
  return url === '/admin' || url.startsWith('/admin/')
}

const adminAuth: FastifyPluginAsync<AdminAuthOptions> = async (fastify, { adminToken, header, refusals = null }) => {
  const expected = adminToken !== '' ? sha256(adminToken) : null

  // callback form: a sync check, no promise per request
  fastify.addHook('onRequest', function adminGuard (request, reply, done) {
    if (expected === null) throw new NotFoundError(request.method, pathOnly(request.url))
    refuseGuessing(request, reply, refusals)
    if (!secretMatches(presentedKeys(request.headers, header), expected)) {
      refusals?.record(request.clientIp)
      reply.header('www-authenticate', 'Bearer')
      request.outcome.errorClass = 'invalid_admin_token'
      throw new AdminTokenError()
    }
    done()
  })

  if (expected === null) fastify.log.info('no admin token configured: /admin/* answers 404')
}

export default fp(adminAuth, {
  name: 'gateway-admin-auth',
  fastify: '5.x',
  dependencies: ['gateway-request-state']
})
