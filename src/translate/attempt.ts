/**
 * Where an attempt's request is built: the translation of this attempt, decided from the client's
 * dialect and the attempt's target (`translationFor`), applied to the body, the upstream path and
 * the headers. Decided per attempt, so a request that tries targets of different dialects in turn
 * is translated from the client's own body each time.
 */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import { mapUpstreamPath } from '../routing/paths.js'
import { clientDialect, translationFor } from './index.js'
import type { Json } from './shared.js'
import type { Direction } from './types.js'

/** the client's own body, kept for the attempts after the first translated one */
const kClientBody = Symbol('translate: client body')
type Held = FastifyRequest & { [kClientBody]?: Json }

/**
 * Sets this attempt's translation on the plan (null: none) and, when there is one, the body and
 * path the target is sent. Throws a 400 naming a field the direction cannot carry.
 */
export function translateAttempt (request: FastifyRequest, target: UpstreamTarget): void {
  const plan = request.upstream
  const body = request.proxyBody
  const held = request as Held
  const direction = request.method === 'POST' && body?.json != null ? translationFor(clientDialect(plan.apiPath), target) : null
  if (direction === null) {
    // an earlier attempt was translated: this one goes in the client's own dialect
    if (plan.translation !== null && held[kClientBody] !== undefined && body != null) {
      body.replace(held[kClientBody])
      plan.path = mapUpstreamPath(target, plan.apiPath, plan.model)
    }
    plan.translation = null
    return
  }
  const original = held[kClientBody] ??= body?.json as Json
  const translated = direction.request(original, target.provider)
  body?.replace(translated.body)
  plan.translation = { direction, answer: translated.answer }
  plan.path = mapUpstreamPath(target, direction.upstreamPath, plan.model)
}

/** The dialect-specific request headers of the client that the upstream's dialect does not take. */
const CLIENT_DIALECT_HEADERS: Record<string, readonly string[]> = {
  messages: ['anthropic-version', 'anthropic-beta', 'anthropic-dangerous-direct-browser-access'],
  chat: ['openai-organization', 'openai-project', 'openai-beta'],
  responses: ['openai-organization', 'openai-project', 'openai-beta']
}

/**
 * The attempt's headers for the upstream's dialect: the client's dialect headers go, and a client
 * credential passed through (no upstream key) moves to the header the upstream reads.
 */
export function translateHeaders (headers: Record<string, string | string[]>, direction: Direction, passedThrough: boolean): void {
  for (const name of CLIENT_DIALECT_HEADERS[direction.client] ?? []) delete headers[name]
  if (!passedThrough) return
  if (direction.upstream === 'messages') {
    const auth = headers.authorization
    if (typeof auth === 'string' && /^bearer /i.test(auth) && headers['x-api-key'] === undefined) headers['x-api-key'] = auth.slice(7).trim()
    delete headers.authorization
  } else {
    const key = headers['x-api-key']
    if (typeof key === 'string' && headers.authorization === undefined) headers.authorization = `Bearer ${key}`
    delete headers['x-api-key']
  }
}
