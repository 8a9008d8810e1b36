/**
 * One attempt of a model group: what is sent to a deployment — its target, the path, the body with
 * the deployment's model — built from the request as the client sent it (and as the request
 * plugins prepared it), never from a previous attempt. The one place that decides how a request
 * becomes a request for a given deployment, in the deployment target's dialect (translated from
 * the client's when it speaks another: src/translate/attempt.ts).
 */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from './target.js'
import type { Deployment } from '../routing/model-groups.js'
import { mapUpstreamPath } from '../routing/paths.js'
import { isAnthropicPath } from '../errors.js'
import { clientDialect, translationFor } from '../translate/index.js'
import { attemptTranslation } from '../translate/attempt.js'
import type { ActiveTranslation } from '../translate/types.js'
import { UntranslatableFieldError } from '../translate/shared.js'

export interface AttemptRequest {
  target: UpstreamTarget
  /** path and query relative to the target's base path */
  path: string
  body: Buffer
  /** the model the deployment is asked for */
  model: string
  /** the attempt is in the target's dialect, not the client's (src/translate/); null: the client's */
  translation: ActiveTranslation | null
}

/** The dialect family of a target, for the endpoints no translation covers (embeddings, files, …). */
function dialectOf (target: UpstreamTarget): 'anthropic' | 'openai' {
  return target.provider === 'anthropic' ? 'anthropic' : 'openai'
}

/** Whether the target speaks the client's dialect itself (no translation). */
function speaksClientDialect (request: FastifyRequest, target: UpstreamTarget): boolean {
  const client = clientDialect(request.upstream.apiPath)
  if (client === null) return dialectOf(target) === (isAnthropicPath(request.upstream.apiPath) ? 'anthropic' : 'openai')
  return target.dialects.includes(client)
}

/** Whether `target` can take this request: it speaks the client's dialect, or a translation reaches it. */
export function takesRequest (request: FastifyRequest, target: UpstreamTarget): boolean {
  return speaksClientDialect(request, target) || translationFor(clientDialect(request.upstream.apiPath), target) !== null
}

/**
 * The request for `deployment`, or null when this deployment cannot take it (`takesRequest`; a
 * stream continuation only in the client's own dialect: it joins the stream the client already
 * reads), logged once per attempt.
 */
export function attemptRequest (request: FastifyRequest, deployment: Deployment, continuation: string | null = null): AttemptRequest | null {
  const plan = request.upstream
  const target = deployment.target
  if (!speaksClientDialect(request, target)) {
    const translated = continuation === null ? translatedFor(request, deployment) : null
    if (translated !== null) {
      return { target, path: translated.path, body: Buffer.from(JSON.stringify(translated.body)), model: deployment.model, translation: translated.translation }
    }
    const client = isAnthropicPath(plan.apiPath) ? 'anthropic' : 'openai'
    request.log.warn({ group: plan.group?.name, deployment: deployment.id, clientDialect: client, targetDialect: dialectOf(target) }, 'deployment skipped: its target speaks another dialect than the request')
    return null
  }
  const body = request.proxyBody
  return {
    target,
    path: mapUpstreamPath(target, plan.apiPath, deployment.model),
    body: body === null ? Buffer.alloc(0) : continuation !== null ? continuationBody(body.json ?? {}, deployment.model, continuation) : body.bytesWith('model', deployment.model),
    model: deployment.model,
    translation: null
  }
}

/** the first refusal of a deployment's translation, for the answer when no deployment could take the request */
const kRefusal = Symbol('attempt: translation refusal')
type WithRefusal = FastifyRequest & { [kRefusal]?: Error }

/**
 * The deployment's attempt translated, or null; a field its dialect cannot carry skips this
 * deployment (another may take the request as it is) and is kept for `translationRefusal`.
 */
function translatedFor (request: FastifyRequest, deployment: Deployment): ReturnType<typeof attemptTranslation> {
  try {
    return attemptTranslation(request, deployment.target, deployment.model)
  } catch (err) {
    if (!(err instanceof UntranslatableFieldError)) throw err
    request.log.warn({ group: request.upstream.group?.name, deployment: deployment.id, reason: err.message }, 'deployment skipped: the request cannot be translated to its dialect')
    ;(request as WithRefusal)[kRefusal] ??= err
    return null
  }
}

/** The 400 of a field no deployment's translation could carry, when that is why none took the request. */
export function translationRefusal (request: FastifyRequest): Error | null {
  return (request as WithRefusal)[kRefusal] ?? null
}

/** What a stream continuation asks the next deployment (src/proxy/stream-resume.ts). */
export const CONTINUE_INSTRUCTION = 'Your previous message was cut off. Continue it exactly where it stopped: do not repeat any of it, add no preamble.'

/**
 * A chat completion request continuing `received`, the text a broken stream had sent: the
 * conversation, then that text as the assistant's message and the instruction to go on (nothing
 * added when nothing was received: the request as it was).
 */
function continuationBody (json: Readonly<Record<string, unknown>>, model: string, received: string): Buffer {
  const messages = Array.isArray(json.messages) ? json.messages : []
  const more = received === '' ? [] : [{ role: 'assistant', content: received }, { role: 'user', content: CONTINUE_INSTRUCTION }]
  return Buffer.from(JSON.stringify({ ...json, model, messages: [...messages, ...more] }))
}
