/**
 * One attempt of a model group: what is sent to a deployment — its target, the path, the body with
 * the deployment's model — built from the request as the client sent it (and as the request
 * plugins prepared it), never from a previous attempt. The one place that decides how a request
 * becomes a request for a given deployment: a module that adapts requests for a target of
 * another dialect (translation) extends this function.
 */
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from './target.js'
import type { Deployment } from '../routing/model-groups.js'
import { mapUpstreamPath } from '../routing/paths.js'
import { isAnthropicPath } from '../errors.js'

export interface AttemptRequest {
  target: UpstreamTarget
  /** path and query relative to the target's base path */
  path: string
  body: Buffer
  /** the model the deployment is asked for */
  model: string
}

/** The dialect a target speaks: Anthropic's Messages API, or OpenAI's (Azure and compatibles too). */
function dialectOf (target: UpstreamTarget): 'anthropic' | 'openai' {
  return target.provider === 'anthropic' ? 'anthropic' : 'openai'
}

/** Whether `target` can take this request: it speaks the client's dialect (there is no translation here). */
export function takesRequest (request: FastifyRequest, target: UpstreamTarget): boolean {
  return dialectOf(target) === (isAnthropicPath(request.upstream.apiPath) ? 'anthropic' : 'openai')
}

/**
 * The request for `deployment`, or null when this deployment cannot take it (`takesRequest`),
 * logged once per attempt.
 */
export function attemptRequest (request: FastifyRequest, deployment: Deployment, continuation: string | null = null): AttemptRequest | null {
  const plan = request.upstream
  const target = deployment.target
  if (!takesRequest(request, target)) {
    const client = isAnthropicPath(plan.apiPath) ? 'anthropic' : 'openai'
    request.log.warn({ group: plan.group?.name, deployment: deployment.id, clientDialect: client, targetDialect: dialectOf(target) }, 'deployment skipped: its target speaks another dialect than the request')
    return null
  }
  const body = request.proxyBody
  return {
    target,
    path: mapUpstreamPath(target, plan.apiPath, deployment.model),
    body: body === null ? Buffer.alloc(0) : continuation !== null ? continuationBody(body.json ?? {}, deployment.model, continuation) : body.bytesWith('model', deployment.model),
    model: deployment.model
  }
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
