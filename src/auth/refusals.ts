/**
 * Refused authentications (client keys and the admin token): the 401 of a refused key, and the
 * 429 of an address that made too many. Key guessing is limited per address (`refusals`,
 * src/abuse/refusal-limit.ts): each refused key counts, and an address over the limit is refused
 * with 429 before its key is looked at.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RefusalLimit } from '../abuse/refusal-limit.js'
import { AuthRefusalsLimitedError, InvalidApiKeyError, isAnthropicPath } from '../errors.js'

/**
 * An address that had too many refused keys (or admin tokens) in its window gets 429, whatever
 * it presents now: a right guess must not be told apart from a wrong one until the window ends.
 */
export function refuseGuessing (request: FastifyRequest, reply: FastifyReply, refusals: RefusalLimit | null): void {
  const waitMs = refusals?.blockedFor(request.clientIp) ?? 0
  if (waitMs === 0) return
  const seconds = Math.ceil(waitMs / 1000)
  reply.header('retry-after', String(seconds))
  reply.header('retry-after-ms', String(Math.ceil(waitMs)))
  request.outcome.errorClass = 'auth_refusals_limited'
  throw new AuthRefusalsLimitedError(seconds)
}

/** A refused client key: 401, counted toward the address's refused authentications. */
export function refuse (request: FastifyRequest, reply: FastifyReply, reason: string, refusals: RefusalLimit | null): never {
  refusals?.record(request.clientIp)
  // OpenAI clients expect the challenge; Anthropic's API does not send one
  if (!isAnthropicPath(request.upstream.apiPath)) reply.header('www-authenticate', 'Bearer')
  request.outcome.errorClass = reason
  throw new InvalidApiKeyError()
}
