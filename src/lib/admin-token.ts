/**
 * The admin token check for the observability routes (`/metrics`, `/admin/usage`), in constant
 * time: both sides are hashed to 32 bytes, then compared with `timingSafeEqual`, so neither the
 * length nor the content of the token leaks through timing. Without a configured token the routes
 * answer 404 like an unknown route: never open.
 *
 * Routes using it are marked `config: { admin: true }`, which also tells client-key
 * authentication to leave them to this check.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { AdminTokenError, NotFoundError } from '../errors.js'
import { pathOnly } from '../logging.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** an admin route: guarded by the admin token instead of a client key */
    admin?: boolean
  }
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** The token a caller presented: `Authorization: Bearer …` or `x-api-key`. */
export function presentedToken (headers: FastifyRequest['headers']): string | null {
  const auth = headers.authorization
  if (typeof auth === 'string') {
    const match = /^bearer\s+(.+)$/i.exec(auth.trim())
    if (match !== null) return match[1].trim()
  }
  const key = headers['x-api-key']
  return typeof key === 'string' && key !== '' ? key : null
}

export function tokenMatches (presented: string | null, expected: Buffer): boolean {
  // a missing token is hashed too, so it takes the same time as a wrong one
  const ok = timingSafeEqual(sha256(presented ?? ''), expected)
  return ok && presented !== null
}

export function adminTokenGuard (token: string): onRequestAsyncHookHandler {
  const expected = token !== '' ? sha256(token) : null
  return async function checkAdminToken (request: FastifyRequest, reply: FastifyReply) {
    if (expected === null) throw new NotFoundError(request.method, pathOnly(request.url))
    if (!tokenMatches(presentedToken(request.headers), expected)) {
      reply.header('www-authenticate', 'Bearer')
      request.gw.errorClass = 'invalid_admin_token'
      throw new AdminTokenError()
    }
  }
}
