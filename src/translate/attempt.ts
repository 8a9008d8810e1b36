/**
 * Where an attempt's request is built: the translation of this attempt, decided from the client's
 * dialect and the attempt's target (`translationFor`), applied to the body, the upstream path and
 * the headers. Decided per attempt and always from the client's own body, so a request that tries
 * targets of different dialects in turn (a model group's deployments) is translated for each.
 */
import type { FastifyRequest } from 'fastify'
import type { Provider, UpstreamTarget } from '../upstream/target.js'
import { mapUpstreamPath } from '../routing/paths.js'
import { clientDialect, translationFor } from './index.js'
import type { Json } from './shared.js'
import type { ActiveTranslation, Direction } from './types.js'

/** the client's own body, kept once a translation replaced it */
const kClientBody = Symbol('translate: client body')
type Held = FastifyRequest & { [kClientBody]?: Json }

/** One attempt's request in the target's dialect. */
export interface TranslatedAttempt {
  translation: ActiveTranslation
  /** the body in the upstream's dialect */
  body: Json
  /** path and query relative to the target's base path */
  path: string
}

/** The client's body as it was before any translation replaced it; null when it is not JSON. */
function clientBody (request: FastifyRequest): Json | null {
  const held = (request as Held)[kClientBody]
  if (held !== undefined) return held
  const json = request.proxyBody?.json
  return json == null ? null : json as Json
}

/**
 * The request for `target` in its dialect, with `model` when the attempt names its own (a model
 * group's deployment); null when the target speaks the client's dialect (nothing to translate).
 * Throws a 400 naming a field the direction cannot carry. Changes nothing on the request.
 */
export function attemptTranslation (request: FastifyRequest, target: UpstreamTarget, model: string | null = null): TranslatedAttempt | null {
  if (request.method !== 'POST') return null
  const plan = request.upstream
  const direction = translationFor(clientDialect(plan.apiPath), target)
  if (direction === null) return null
  const original = clientBody(request)
  if (original === null) return null
  const translated = direction.request(model === null ? original : { ...original, model }, target.provider)
  return {
    translation: { direction, answer: translated.answer },
    body: translated.body,
    path: mapUpstreamPath(target, direction.upstreamPath, model ?? plan.model)
  }
}

/**
 * Sets this attempt's translation on the plan (null: none) and, when there is one, the body and
 * path the target is sent; an attempt after a translated one, to a target of the client's own
 * dialect, gets the client's body and path back.
 */
export function translateAttempt (request: FastifyRequest, target: UpstreamTarget): void {
  const plan = request.upstream
  const body = request.proxyBody
  const attempt = attemptTranslation(request, target)
  if (attempt === null) {
    const held = (request as Held)[kClientBody]
    if (plan.translation !== null && held !== undefined && body != null) {
      body.replace(held)
      plan.path = mapUpstreamPath(target, plan.apiPath, plan.model)
    }
    plan.translation = null
    return
  }
  ;(request as Held)[kClientBody] ??= clientBody(request) ?? undefined
  body?.replace(attempt.body)
  plan.translation = attempt.translation
  plan.path = attempt.path
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
export function translateHeaders (headers: Record<string, string | string[]>, direction: Direction, provider: Provider, passedThrough: boolean): void {
  for (const name of CLIENT_DIALECT_HEADERS[direction.client] ?? []) delete headers[name]
  if (!passedThrough) return
  if (direction.upstream === 'messages') {
    const auth = headers.authorization
    if (typeof auth === 'string' && /^bearer /i.test(auth) && headers['x-api-key'] === undefined) headers['x-api-key'] = auth.slice(7).trim()
    delete headers.authorization
    return
  }
  const key = headers['x-api-key']
  delete headers['x-api-key']
  if (typeof key !== 'string') return
  // Azure reads its key from api-key, every other Chat upstream from a bearer token
  if (provider === 'azure') headers['api-key'] ??= key
  else headers.authorization ??= `Bearer ${key}`
}
