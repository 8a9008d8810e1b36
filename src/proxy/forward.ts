/**
 * The attempt phase: one request to the planned target over its keep-alive undici Agent, bodies
 * streamed both ways, a retry on the next key of a pool when the first failed before its answer
 * reached the client; then the answer goes to the deliver phase (src/proxy/delivery.ts).
 *
 * Why not reply.from(): docs/adr/0001-forwarder.md. It follows reply-from's shape and names
 * (rewrite headers, stream the body, map errors); plugins/forwarder.ts makes it `reply.forward()`.
 */
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { bodyReadable, DISCARD, UpstreamExchange, type UpstreamAnswer } from './exchange.js'
import { clientResponseHeaders, isEventStream, upstreamRequestHeaders, yieldLimitHeaders } from './headers.js'
import { checkedBody, ERROR_BODY_BOUND, holdBody, isErrorStatus } from './answer-check.js'
import { classifyUpstreamError } from './upstream-errors.js'
import { changesBody } from './chunk-stages.js'
import { deliver, type Stage } from './delivery.js'
import type { StageRegistry } from './stages.js'
import type { SecretFilter } from '../lib/secret-filter.js'
import type { UpstreamTarget } from '../upstream/target.js'
import { UpstreamProtocolError, isAnthropicPath, isStreamedBodyRefusal } from '../errors.js'
import { DeploymentFailover, isRetryableFailure, noteKeyRefused, switchKey } from '../routing/failover.js'
import type { KeyPool, PoolKey } from '../routing/key-pool.js'
import { retryAfterMs } from '../routing/health.js'
import { assertAllowed } from '../routing/require-target.js'
import type { AttemptRequest } from '../upstream/attempt.js'
import { ResumingStream, mayResume } from './stream-resume.js'
import { joinUpstreamPath, mapUpstreamPath } from '../routing/paths.js'
import { addTargetHeaders, requireCredential } from '../routing/credentials.js'
import { acceptsCoding, decodableCoding, decoderFor } from './response-rewrite.js'
import { StreamEndWatch, reportsFailure } from '../lib/stream-end.js'
import { translateAttempt, translateHeaders } from '../translate/attempt.js'

/** Options of `reply.forward()`, under @fastify/reply-from's names. */
export interface ForwardOptions {
  /** the headers of each attempt, after the gateway's own rules (credentials, hop-by-hop, target headers) */
  rewriteRequestHeaders?: (request: FastifyRequest, headers: Record<string, string | string[]>) => Record<string, string | string[]>
  /** the headers the client gets, after the gateway's own rules */
  rewriteHeaders?: (headers: Record<string, string | string[]>, request: FastifyRequest) => Record<string, string | string[]>
  /** takes the answer instead of the deliver phase (no stages run): the caller sends the reply */
  onResponse?: (request: FastifyRequest, reply: FastifyReply, res: UpstreamAnswer & { body: Readable }) => void
  /** answers a failure before the upstream answered, instead of the shaped error */
  onError?: (reply: FastifyReply, failure: { error: Error }) => void
  /** override the target's time to the first byte and longest gap between body chunks */
  firstByteTimeoutMs?: number
  idleTimeoutMs?: number
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE'])

/** Until the first attempt builds its own (no object per request for a placeholder). */
const NO_HEADERS: Record<string, string | string[]> = Object.freeze({}) as Record<string, string | string[]>

function requestBody (request: FastifyRequest): { body: Dispatcher.DispatchOptions['body'], length?: number } {
  const proxyBody = request.proxyBody
  if (proxyBody?.raw != null) {
    const buf = proxyBody.bytes()
    return { body: buf, length: buf.length }
  }
  if (NO_BODY_METHODS.has(request.method) && request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) {
    return { body: null }
  }
  // unparsed content types (multipart, audio, …) stream from the client socket, through the
  // upload limits' counting pass-through when one is installed
  return { body: proxyBody?.source ?? request.raw }
}

/** Whether the client still waits for this answer, and what to do when it leaves. */
class ClientWatch {
  gone = false
  exchange: UpstreamExchange | null = null

  constructor (request: FastifyRequest, reply: FastifyReply) {
    const outcome = request.outcome
    reply.raw.once('close', () => {
      // ended: everything was handed to the socket, the upstream body with it (a HEAD answer ends
      // at once while the body is drained)
      if (reply.raw.writableEnded) return
      this.gone = true
      // the stream's last event reached the client, which closed before the body's formal end
      // (a gzip trailer, the chunked terminator): complete; the upstream's rest is not needed.
      // Otherwise an upstream failure mid-body was classified first, or the client left
      if (outcome.streamEnd?.complete !== true) outcome.errorClass ??= 'client_abort'
      this.exchange?.abort()
    })
  }
}

export async function forward (request: FastifyRequest, reply: FastifyReply, stages: StageRegistry, opts: ForwardOptions = {}): Promise<FastifyReply | undefined> {
  const plan = request.upstream
  const outcome = request.outcome
  if (plan.target === null) throw new Error('forward() called without a target')
  const client = new ClientWatch(request, reply)
  // a stage failed on the upstream's body and so did its error handling: the response ends here
  const onFault = (err: unknown): void => {
    outcome.errorClass = 'gateway_stream_fault'
    request.log.error({ err }, 'response stream failed; the connection was closed')
    reply.raw.destroy()
  }

  // (no promise to wait on for every other request)
  if (plan.formModel?.value != null && !await awaitFormModel(request, reply)) return undefined

  let target = plan.target
  // a plain target's attempt in its dialect (src/translate/); a group's are translated per deployment
  if (plan.group === null) translateAttempt(request, target)
  let path = plan.path
  let { body, length } = requestBody(request)
  // a model group: its deployments, one attempt each (src/routing/failover.ts); null for a plain target
  const failover = plan.group !== null ? new DeploymentFailover(request, plan.group) : null
  /** the next deployment's attempt becomes the current one */
  const moveTo = (next: AttemptRequest): void => {
    target = next.target
    path = next.path
    body = next.body
    length = next.body.length
    plan.translation = next.translation
  }
  if (failover !== null) {
    const first = failover.next()
    if (first === null) throw failover.noneUsable()
    moveTo(first)
  }
  // one retry on the next key of a plain target's pool, only when the body can be sent again (a
  // Buffer, or none): a streamed body (request.raw, or an upload counted on its way) is consumed
  // by the first try
  let keyFailover = failover === null && (body === null || body === undefined || Buffer.isBuffer(body))

  // the attempt loop: each pass sends one attempt. A new target (the next deployment) gets its own
  // headers, credential and timeouts; the next key of the same pool only its credential
  let fresh = true
  let pool: KeyPool | null = null
  let poolKey: PoolKey | null = null
  let headers = NO_HEADERS
  let dispatchOptions: Dispatcher.DispatchOptions | null = null
  let exchange: UpstreamExchange
  let res: UpstreamAnswer
  /** a group's 200 event stream began with an error event */
  let errorFirst = false
  for (;;) {
    if (fresh) {
      fresh = false
      // the same choice as upstreamKeyFor, keeping the pool and its key for failover
      const credential = requireCredential(request, target)
      pool = credential.kind === 'pool' ? credential.pool : null
      poolKey = pool !== null ? pool.pick() : null
      headers = attemptHeaders(request, target, poolKey !== null ? poolKey.key : credential.kind === 'mapped' ? credential.key : null, length, opts)
      outcome.keyName = poolKey !== null ? poolKey.name : null
      outcome.target = target
      keyFailover &&= pool !== null && pool.size > 1
      dispatchOptions = {
        origin: target.origin,
        path: joinUpstreamPath(target.basePath, path),
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body,
        headersTimeout: opts.firstByteTimeoutMs ?? target.firstByteTimeoutMs,
        bodyTimeout: opts.idleTimeoutMs ?? target.idleTimeoutMs
      }
    }
    try {
      if (client.gone) throw new Error('client gone before the upstream request')
      exchange = new UpstreamExchange(onFault)
      client.exchange = exchange
      outcome.attempts++
      target.dispatcher.dispatch(dispatchOptions as Dispatcher.DispatchOptions, exchange)
      res = await exchange.answer
      errorFirst = failover !== null && readsFirstEvent(failover, res) && reportsFailure(await exchange.firstEvent(FIRST_EVENT_BOUND))
    } catch (err) {
      if (client.gone) {
        // the client is gone: nothing to answer
        failover?.abandoned()
        outcome.errorClass = 'client_abort'
        reply.hijack()
        return undefined
      }
      // an upload limit (or a form's model field) tripped mid-body: undici aborted the upstream
      // request with our 4xx
      if (isStreamedBodyRefusal(err)) throw err
      const failure = classifyUpstreamError(err)
      if (failover !== null) {
        failover.failed(failure.errorClass, 0, 0)
        const next = failover.retryable(failure.errorClass, 0) ? failover.next() : null
        if (next !== null) {
          request.log.warn({ group: failover.group.name, upstream: target.name, errorClass: failure.errorClass, cause: failure.detail, next: next.target.name }, 'upstream attempt failed: trying the next deployment')
          moveTo(next)
          fresh = true
          continue
        }
        failover.headers(reply, target)
      } else if (keyFailover && pool !== null && poolKey !== null && isRetryableFailure(failure.errorClass)) {
        keyFailover = false
        poolKey = switchKey(request, target, pool, poolKey, headers, failure.errorClass)
        continue
      }
      outcome.errorClass = failure.errorClass
      request.log.warn({ upstream: target.name, errorClass: failure.errorClass, cause: failure.detail }, 'upstream request failed')
      if (opts.onError !== undefined) {
        opts.onError(reply, { error: failure.error })
        return reply
      }
      throw failure.error
    }
    if (pool !== null && poolKey !== null && res.statusCode === 401) noteKeyRefused(request, target, pool, poolKey)
    if (failover !== null) {
      // (an answer that goes to the client, the usual case, waits for nothing)
      const next = res.statusCode < 400 && !errorFirst ? failover.answered(res.statusCode) : await nextAfterAnswer(request, failover, exchange, res, errorFirst)
      // (the answer's x-gateway-* headers are added with its own: respond())
      if (next === null) break
      moveTo(next)
      fresh = true
      continue
    }
    if (pool === null || poolKey === null || res.statusCode !== 429 || !keyFailover) break
    keyFailover = false
    exchange.attach(DISCARD)
    poolKey = switchKey(request, target, pool, poolKey, headers, 'upstream_429')
  }

  outcome.ttfbMs = performance.now() - outcome.startedAt
  outcome.status = res.statusCode
  if (failover !== null && mayResume(request, failover, res)) {
    // a stream that breaks midway goes on at the next deployment (src/proxy/stream-resume.ts)
    exchange = new ResumingStream(request, failover, exchange, res, (attempt, next) => { dispatchAttempt(request, attempt, next, opts) }, onFault).out
    client.exchange = exchange
  }
  // (a HEAD answer has no body to check, and its length describes what a GET would get)
  if (target.secrets !== null && isErrorStatus(res.statusCode) && request.method !== 'HEAD') {
    try {
      exchange = await checkErrorBody(exchange, res, target.secrets, request)
    } catch (err) {
      // the client went away while the body was held: nothing to answer
      if (client.gone) {
        reply.hijack()
        return undefined
      }
      throw err
    }
  }
  if (opts.onResponse !== undefined) {
    opts.onResponse(request, reply, { ...res, body: bodyReadable(exchange) })
    return reply
  }
  respond(request, reply, exchange, res, stages, opts)
  return reply
}

/** The headers of one attempt to `target` with upstream `key` (null: the client's own credentials pass). */
function attemptHeaders (request: FastifyRequest, target: UpstreamTarget, key: string | null, length: number | undefined, opts: ForwardOptions): Record<string, string | string[]> {
  let headers = upstreamRequestHeaders(request.headers, { provider: target.provider, key, requestId: request.id, contentLength: length })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(headers, target, request.client)
  // a translated attempt: the headers of the target's dialect (src/translate/attempt.ts)
  const translation = request.upstream.translation
  if (translation !== null) translateHeaders(headers, translation.direction, target.provider, key === null)
  if (opts.rewriteRequestHeaders !== undefined) headers = opts.rewriteRequestHeaders(request, headers)
  return headers
}

/** One attempt outside the attempt loop (a stream continuation): its own credential, headers and timeouts. */
function dispatchAttempt (request: FastifyRequest, attempt: AttemptRequest, exchange: UpstreamExchange, opts: ForwardOptions): void {
  const target = attempt.target
  const credential = requireCredential(request, target)
  const key = credential.kind === 'pool' ? credential.pool.pick().key : credential.kind === 'mapped' ? credential.key : null
  request.outcome.attempts++
  target.dispatcher.dispatch({
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, attempt.path),
    method: request.method as Dispatcher.HttpMethod,
    headers: attemptHeaders(request, target, key, attempt.body.length, opts),
    body: attempt.body,
    headersTimeout: opts.firstByteTimeoutMs ?? target.firstByteTimeoutMs,
    bodyTimeout: opts.idleTimeoutMs ?? target.idleTimeoutMs
  }, exchange)
}

/** The first event of a stream may only be read that far: an error event is short. */
const FIRST_EVENT_BOUND = 16 * 1024

/**
 * Whether a model group's answer is a `200` event stream whose first event is read before anything
 * reaches the client (upstreams do answer `200` and then fail): when the group retries on it.
 */
function readsFirstEvent (failover: DeploymentFailover, res: UpstreamAnswer): boolean {
  return res.statusCode === 200 && isEventStream(res.headers['content-type']) && failover.retryable('upstream_stream_error', 0)
}

/**
 * After a model group's attempt answered with an error status or an error event first: the next attempt when the answer is a failure the group
 * retries on (429, 5xx, an error event first) or says the context is too long (the context-window
 * fallback group), and a deployment is left; else null, and the answer goes to the client as it is.
 */
async function nextAfterAnswer (request: FastifyRequest, failover: DeploymentFailover, exchange: UpstreamExchange, res: UpstreamAnswer, errorFirst: boolean): Promise<AttemptRequest | null> {
  const status = res.statusCode
  const errorClass = errorFirst ? 'upstream_stream_error' : status === 429 ? 'upstream_429' : status >= 500 ? 'upstream_5xx' : 'upstream_4xx'
  if (!failover.retryable(errorClass, status)) {
    if (status === 400 && failover.group.contextWindowFallback !== null) return await contextFallback(request, failover, exchange, res)
    failover.failed(errorClass, status, 0)
    return null
  }
  failover.failed(errorClass, status, retryAfterMs(res.headers['retry-after']))
  const next = failover.next()
  if (next !== null) {
    exchange.abort()
    exchange.attach(DISCARD)
    request.log.warn({ group: failover.group.name, upstream: request.outcome.target?.name, status, errorClass, next: next.target.name }, 'upstream attempt failed: trying the next deployment')
  }
  return next
}

/** Bytes of a 400 answer read to see whether it says the context is too long. */
const CONTEXT_ERROR_BOUND = 64 * 1024

/**
 * A 400 from a group with a context-window fallback: held (bounded) and read; when it says the
 * context is too long (OpenAI's `context_length_exceeded`, Anthropic's "prompt is too long"), the
 * fallback group is tried; otherwise the held answer goes to the client as it came.
 */
async function contextFallback (request: FastifyRequest, failover: DeploymentFailover, exchange: UpstreamExchange, res: UpstreamAnswer): Promise<AttemptRequest | null> {
  const text = await exchange.firstEvent(CONTEXT_ERROR_BOUND)
  const tooLong = /context_length_exceeded|prompt is too long|maximum context length/i.test(text)
  failover.failed(tooLong ? 'context_length_exceeded' : 'upstream_4xx', res.statusCode, 0)
  if (!tooLong || !failover.widen()) return null
  const next = failover.next()
  if (next !== null) {
    exchange.abort()
    exchange.attach(DISCARD)
  }
  return next
}

/**
 * A form whose model field names an Azure deployment: the path waits for the field. False when
 * the client left before it arrived (nothing to answer).
 */
async function awaitFormModel (request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const plan = request.upstream
  const formModel = plan.formModel
  if (formModel?.value == null) return true
  let model: string | null
  try {
    model = await formModel.value
  } catch (err) {
    // refused while the form streamed (a limit, a model the key may not use, the model field
    // too late): the client's 4xx; otherwise the client left before the field arrived
    if (isStreamedBodyRefusal(err)) throw err
    request.outcome.errorClass ??= 'client_abort'
    reply.hijack()
    reply.raw.destroy()
    return false
  }
  if (model !== null) plan.model ??= model
  // a form routed by its model (the targets' `models` globs): the target is chosen now
  const routed = model !== null && formModel.route !== null ? formModel.route(model) : null
  if (routed !== null && routed !== plan.target) {
    assertAllowed(request, routed)
    plan.target = routed
  }
  plan.path = mapUpstreamPath(plan.target as UpstreamTarget, formModel.url, model)
  return true
}

/** The answer's headers and stages, then the deliver phase. */
function respond (request: FastifyRequest, reply: FastifyReply, exchange: UpstreamExchange, res: UpstreamAnswer, registry: StageRegistry, opts: ForwardOptions): void {
  const outcome = request.outcome
  // the attempt's target: for a model group, the deployment that answered
  const target = outcome.target as UpstreamTarget
  // the upstream's limit headers say when to retry its 429; the gateway's own stay under theirs
  if (res.statusCode === 429) yieldLimitHeaders(reply)
  const sse = isEventStream(res.headers['content-type'])
  const stages = responseStages(request, reply, res, sse, registry)
  let out = clientResponseHeaders(res.headers, target.secrets)
  if (sse) {
    out['x-accel-buffering'] = 'no'
    out['cache-control'] = 'no-cache'
    // an error event inside a 200 stream: the upstream failed, though its status said otherwise
    outcome.streamEnd = new StreamEndWatch(() => { outcome.errorClass ??= 'upstream_stream_error' })
  }
  if (changesBody(stages)) delete out['content-length']
  const attempts = outcome.attemptLog
  if (attempts !== null) {
    // a model group's answer says where it came from (set here, not on the reply: cheaper)
    out['x-gateway-target'] = target.name
    out['x-gateway-attempts'] = String(attempts.length)
  }
  if (opts.rewriteHeaders !== undefined) out = opts.rewriteHeaders(out, request)
  deliver({
    request,
    reply,
    sse,
    // a translated answer fails in the client's dialect (its stage passes such an event on as it is)
    anthropic: request.upstream.translation !== null
      ? request.upstream.translation.direction.client === 'messages'
      : target.provider === 'anthropic' || isAnthropicPath(request.upstream.apiPath),
    noteFailure: (errorClass) => { outcome.errorClass = errorClass }
  }, exchange, res.statusCode, out, stages, outcome.streamEnd)
}

/**
 * An error answer's body, held whole and checked for configured secrets (src/proxy/answer-check.ts),
 * as an exchange that replays it; `res.headers` then describe the checked body. Throws a 502 for
 * a body that cannot be checked, and the classified failure for an upstream that failed mid-body.
 */
async function checkErrorBody (exchange: UpstreamExchange, res: UpstreamAnswer, secrets: SecretFilter, request: FastifyRequest): Promise<UpstreamExchange> {
  let held: Buffer | null
  try {
    held = await holdBody(exchange, ERROR_BODY_BOUND)
  } catch (err) {
    // aborted because the client went away: not an upstream failure (forward() ends quietly)
    if ((err as Error).name === 'AbortError' || (err as Error).name === 'RequestAbortedError') throw err
    const failure = classifyUpstreamError(err)
    request.outcome.errorClass = failure.errorClass
    request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, 'upstream error body failed')
    throw failure.error
  }
  const body = held === null ? null : checkedBody(held, res.headers['content-encoding'], secrets)
  if (body === null) {
    request.outcome.errorClass = 'upstream_bad_response'
    request.log.warn({ status: res.statusCode, bound: ERROR_BODY_BOUND, encoding: res.headers['content-encoding'] }, 'upstream error body too large or unreadable to check for secrets: not relayed')
    throw new UpstreamProtocolError()
  }
  delete res.headers['content-encoding']
  res.headers['content-length'] = String(body.length)
  return UpstreamExchange.replay(body)
}

/**
 * The stages that apply to this answer. A compressed body the gateway can decode is decoded only
 * when something reads it (a stage: usage, context tags, aliases, a debug tap; or, for an event
 * stream, the watch on its last event, src/lib/stream-end.ts) or the client's Accept-Encoding
 * does not take its coding; otherwise the compressed bytes pass through with their
 * Content-Encoding. The stages see the headers as the body will reach them.
 */
function responseStages (request: FastifyRequest, reply: FastifyReply, res: UpstreamAnswer, sse: boolean, registry: StageRegistry): Stage[] {
  const coding = decodableCoding(request.method, res.statusCode, res.headers)
  if (registry.ordered.length === 0 && coding === null) return []
  const encoding = res.headers['content-encoding']
  if (coding !== null) delete res.headers['content-encoding']
  const stages = registry.make({ request, reply, statusCode: res.statusCode, headers: res.headers, isEventStream: sse })
  if (coding === null) return stages
  if (!sse && stages.length === 0 && acceptsCoding(request.headers['accept-encoding'], coding)) {
    res.headers['content-encoding'] = encoding
    return stages
  }
  delete res.headers['content-length']
  stages.unshift(decoderFor(coding))
  return stages
}
