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
import { isRetryableFailure, noteKeyRefused, switchKey } from '../routing/failover.js'
import { joinUpstreamPath, mapUpstreamPath } from '../routing/paths.js'
import { addTargetHeaders, requireCredential } from '../routing/credentials.js'
import { acceptsCoding, decodableCoding, decoderFor } from './response-rewrite.js'
import { StreamEndWatch } from '../lib/stream-end.js'
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
  const target = plan.target
  if (target === null) throw new Error('forward() called without a target')
  const client = new ClientWatch(request, reply)
  // a stage failed on the upstream's body and so did its error handling: the response ends here
  const onFault = (err: unknown): void => {
    outcome.errorClass = 'gateway_stream_fault'
    request.log.error({ err }, 'response stream failed; the connection was closed')
    reply.raw.destroy()
  }

  // (no promise to wait on for every other request)
  if (plan.formModel?.value != null && !await awaitFormModel(request, reply, target)) return undefined

  // the attempt's dialect: the body and path in the target's, when it speaks another (src/translate/)
  translateAttempt(request, target)
  const { body, length } = requestBody(request)
  // the same choice as upstreamKeyFor, keeping the pool and its key for failover
  const credential = requireCredential(request, target)
  const pool = credential.kind === 'pool' ? credential.pool : null
  let poolKey = pool !== null ? pool.pick() : null
  let headers = upstreamRequestHeaders(request.headers, {
    provider: target.provider,
    key: poolKey !== null ? poolKey.key : credential.kind === 'mapped' ? credential.key : null,
    requestId: request.id,
    contentLength: length
  })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(headers, target, request.client)
  if (plan.translation !== null) translateHeaders(headers, plan.translation.direction, target.provider, credential.kind === 'own')
  if (opts.rewriteRequestHeaders !== undefined) headers = opts.rewriteRequestHeaders(request, headers)
  if (poolKey !== null) outcome.keyName = poolKey.name
  // one retry on the next key, only when the body can be sent again (a Buffer, or none): a
  // streamed body (request.raw, or an upload counted on its way) is consumed by the first try
  let failover = pool !== null && pool.size > 1 && (body === null || body === undefined || Buffer.isBuffer(body))

  const dispatchOptions: Dispatcher.DispatchOptions = {
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, plan.path),
    method: request.method as Dispatcher.HttpMethod,
    headers,
    body,
    headersTimeout: opts.firstByteTimeoutMs ?? target.firstByteTimeoutMs,
    bodyTimeout: opts.idleTimeoutMs ?? target.idleTimeoutMs
  }
  let exchange: UpstreamExchange
  let res: UpstreamAnswer
  for (;;) {
    try {
      if (client.gone) throw new Error('client gone before the upstream request')
      exchange = new UpstreamExchange(onFault)
      client.exchange = exchange
      outcome.attempts++
      target.dispatcher.dispatch(dispatchOptions, exchange)
      res = await exchange.answer
    } catch (err) {
      if (client.gone) {
        // the client is gone: nothing to answer
        outcome.errorClass = 'client_abort'
        reply.hijack()
        return undefined
      }
      // an upload limit (or a form's model field) tripped mid-body: undici aborted the upstream
      // request with our 4xx
      if (isStreamedBodyRefusal(err)) throw err
      const failure = classifyUpstreamError(err)
      if (failover && pool !== null && poolKey !== null && isRetryableFailure(failure.errorClass)) {
        failover = false
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
    if (pool === null || poolKey === null) break
    if (res.statusCode === 401) noteKeyRefused(request, target, pool, poolKey)
    if (res.statusCode !== 429 || !failover) break
    failover = false
    exchange.attach(DISCARD)
    poolKey = switchKey(request, target, pool, poolKey, headers, 'upstream_429')
  }

  outcome.ttfbMs = performance.now() - outcome.startedAt
  outcome.status = res.statusCode
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

/**
 * A form whose model field names an Azure deployment: the path waits for the field. False when
 * the client left before it arrived (nothing to answer).
 */
async function awaitFormModel (request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget): Promise<boolean> {
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
  plan.path = mapUpstreamPath(target, formModel.url, model)
  return true
}

/** The answer's headers and stages, then the deliver phase. */
function respond (request: FastifyRequest, reply: FastifyReply, exchange: UpstreamExchange, res: UpstreamAnswer, registry: StageRegistry, opts: ForwardOptions): void {
  const outcome = request.outcome
  const target = request.upstream.target as UpstreamTarget
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
