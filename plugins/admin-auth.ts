/**
 * The admin token guard for every `/admin/*` route, wherever it is registered.
 *
 * An `onRoute` hook marks each route whose path starts with `/admin` as an admin route
 * (`config.admin`); a route elsewhere can opt in with `config: { admin: true }`. A root
 * `onRequest` hook, registered before client authentication (which skips admin routes), checks
 * the admin token on those routes. A plugin that adds admin routes (blacklist, usage, …) only has
 * to register them under the `/admin` prefix after this plugin: it cannot forget the guard.
 *
 * With no admin token configured, every admin route answers 404 like an unknown route: the admin
 * API is never open (seed 001 left its cache-clear endpoint open). The token is compared in
 * constant time (both sides hashed, then `timingSafeEqual`), and is read from the same headers as
 * a client key. A refused token counts toward the address's refused authentications, like a
 * refused client key (plugins/auth.ts, `refuseGuessing`).
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { AdminTokenError, NotFoundError } from '../src/errors.js'
import { pathOnly } from '../src/logging.js'
import type { RefusalLimit } from '../src/abuse/refusal-limit.js'
import { presentedKeys, refuseGuessing, secretMatches, sha256 } from './auth.js'
import { routeConfigOf } from './request-state.js'

export interface AdminAuthOptions {
  /** empty → the admin API is off (404) */
  adminToken: string
  /** the configured client-key header, also accepted for the admin token (seed 001) */
  header: string
  /** refused authentications per address, shared with client authentication; null = not limited */
  refusals?: RefusalLimit | null
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** an admin route: guarded by the admin token instead of a client key */
    admin?: boolean
  }
}

export function isAdminPath (url: string): boolean {
  return url === '/admin' || url.startsWith('/admin/')
}

const adminAuth: FastifyPluginAsync<AdminAuthOptions> = async (fastify, { adminToken, header, refusals = null }) => {
  const expected = adminToken !== '' ? sha256(adminToken) : null

  fastify.addHook('onRoute', function markAdminRoutes (route) {
    if (isAdminPath(route.url) && route.config?.admin !== true) route.config = { ...route.config, admin: true }
  })

  // callback form: a sync check, no promise per request
  fastify.addHook('onRequest', function adminGuard (request, reply, done) {
    if (routeConfigOf(request)?.admin !== true) return done()
    if (expected === null) throw new NotFoundError(request.method, pathOnly(request.url))
    refuseGuessing(request, reply, refusals)
    if (!secretMatches(presentedKeys(request.headers, header), expected)) {
      refusals?.record(request.clientIp)
      reply.header('www-authenticate', 'Bearer')
      request.gw.errorClass = 'invalid_admin_token'
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
