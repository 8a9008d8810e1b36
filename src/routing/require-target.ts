/**
 * The checks between a request and its target, shared by the routing plugin (before any body is
 * read) and the route handlers (plugins/routing.ts chose the target; routes/ ask for it here).
 */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import { requireCredential, upstreamCredential } from './credentials.js'
import { NoTargetError, TargetForbiddenError } from './errors.js'
import { NotFoundError } from '../errors.js'

/**
 * The request's target, for route handlers: 404 when nothing matched, 403 when the client's key
 * may not use it or has no upstream credentials for it. The check is repeated here (it is cheap) so it holds even for a route whose
 * client identity was set after the routing plugin's hooks.
 */
export function requireTarget (request: FastifyRequest): UpstreamTarget {
  const plan = request.upstream
  if (plan.unknownTarget) throw new NotFoundError(request.method, request.url.split('?')[0])
  const target = plan.target
  if (target === null) throw new NoTargetError()
  assertAllowed(request, target)
  return target
}

/** The client's key may use the target, and has upstream credentials for it (src/routing/credentials.ts). */
export function assertAllowed (request: FastifyRequest, target: UpstreamTarget): void {
  const allowed = request.client?.allowedTargets
  if (allowed !== undefined && !allowed.includes(target.name)) throw new TargetForbiddenError()
  requireCredential(request, target)
}

/** Whether the client may use `target` (allowed targets, upstream credentials), without refusing. */
export function mayUse (request: FastifyRequest, target: UpstreamTarget): boolean {
  const allowed = request.client?.allowedTargets
  if (allowed !== undefined && !allowed.includes(target.name)) return false
  return upstreamCredential(request.client, target).kind !== 'refused'
}
