/**
 * TEMPORARY admin guard, to be replaced at merge by the shared admin guard of the client-keys work:
 * admin route plugins take their guard as an option (`{ guard }`), so the swap is one line in
 * src/app.ts. Same rules: `Authorization: Bearer <admin.token>` compared in constant time (both
 * sides hashed, so neither length nor prefix leaks), and with no token configured every admin
 * route answers 404, as if it did not exist.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { onRequestAsyncHookHandler } from 'fastify'
import { AdminTokenError, NotFoundError } from '../../src/errors.js'
import { pathOnly } from '../../src/logging.js'

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

export function adminTokenGuard (token: string): onRequestAsyncHookHandler {
  const expected = digest(token)
  return async function requireAdminToken (request) {
    if (token === '') throw new NotFoundError(request.method, pathOnly(request.url))
    const header = request.headers.authorization ?? ''
    const given = /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '').trim() : header.trim()
    if (!timingSafeEqual(digest(given), expected)) throw new AdminTokenError()
  }
}
