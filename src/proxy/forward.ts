/**
 * The streaming forwarder: one upstream request per client request, over the target's keep-alive
 * undici Agent, bodies streamed both ways.
 *
 * Why not reply.from(): we need time-to-first-byte and idle timeouts set per request and per
 * target, response hooks that can insert event-level stream stages, key failover before the first
 * byte reaches the client, and a lean hot path that the benchmark holds to within 1.3× of a bare
 * undici pipe. It follows reply-from's shape (rewrite headers, stream the body, map errors).
 */
import { pipeline, Readable, type Transform } from 'node:stream'
import { addJsonMembers } from './body.js'
import { asTransform, changesBody, isChunkStage, runStages, type ChunkStage } from './chunk-stages.js'
import { bodyReadable, DISCARD, UpstreamExchange, type UpstreamAnswer } from './exchange.js'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { UpstreamTarget } from '../upstream/target.js'
import { addUpstreamHeaders, clientResponseHeaders, isEventStream, upstreamRequestHeaders, yieldLimitHeaders } from './headers.js'
import { checkedBody, ERROR_BODY_BOUND, holdBody, isErrorStatus } from './answer-check.js'
import type { SecretFilter } from '../lib/secret-filter.js'
import { classifyUpstreamError, streamErrorEvent } from './upstream-errors.js'
import { UpstreamProtocolError, errorBody, isAnthropicPath, isStreamedBodyRefusal, shapeError } from '../errors.js'
import { isRetryableFailure, noteKeyRefused, switchKey } from '../routing/failover.js'
import { mapUpstreamPath } from '../routing/paths.js'
import { configuredHeadersFor, requireCredential } from '../routing/credentials.js'
import type { ClientIdentity } from '../auth/client.js'
import { acceptsCoding, decodableCoding, decoderFor } from './response-rewrite.js'
import { StreamEndWatch } from '../lib/stream-end.js'

export interface ForwardOptions {
  /** request headers that must not go upstream (e.g. a custom client-auth header) */
  dropHeaders?: ReadonlySet<string>
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE'])
/** what describes the upstream's body, not a gateway error that replaces it */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'x-accel-buffering', 'cache-control']

/** Joins the target's base path and the request path; `…/v1` + `/v1/x` does not become `/v1/v1/x`. */
export function joinUpstreamPath (basePath: string, path: string): string {
  if (basePath === '') return path
  if (basePath.endsWith('/v1') && (path.startsWith('/v1/') || path === '/v1')) return basePath.slice(0, -3) + path
  return basePath + path
}

/**
 * What the upstream sees the request as, for keying caches without side effects: the mapped key,
 * the caller's own credentials (no upstream key), or the target's pool as a whole (all its keys
 * belong to one account, so they share one model list). Unlike upstreamKeyFor, picks no key.
 * Decided by src/routing/credentials.ts; a 403 for a client whose mapped keys are for other targets.
 */
export function upstreamIdentityFor (request: FastifyRequest, target: UpstreamTarget): { kind: 'key' | 'pool' | 'own', key: string | null } {
  const credential = requireCredential(request, target)
  if (credential.kind === 'mapped') return { kind: 'key', key: credential.key }
  return { kind: credential.kind, key: null }
}

/**
 * The key a request goes upstream with: the client's mapped key for this target, else the next
 * key of the target's pool, else none (the caller's own credentials pass; an unknown caller let
 * through by auth.passThroughUnknown never gets the gateway's key).
 */
export function upstreamKeyFor (request: FastifyRequest, target: UpstreamTarget): string | null {
  const credential = requireCredential(request, target)
  return credential.kind === 'mapped' ? credential.key : credential.kind === 'pool' ? credential.pool.pick().key : null
}

/**
 * Configured target headers replace the client's (for the clients that get them:
 * configuredHeadersFor); provider defaults only fill what is missing.
 */
export function addTargetHeaders (headers: Record<string, string | string[]>, target: UpstreamTarget, client: ClientIdentity | null): void {
  const configured = configuredHeadersFor(client, target)
  if (configured !== null) Object.assign(headers, configured)
  if (target.defaultHeaders !== null) {
    for (const name in target.defaultHeaders) if (headers[name] === undefined) headers[name] = target.defaultHeaders[name]
  }
}

function requestBody (request: FastifyRequest): { body: Dispatcher.DispatchOptions['body'], length?: number } {
  const gw = request.gw
  if (gw.rawBody !== null) {
    const buf = gw.bodyChanged && gw.json !== null
      ? Buffer.from(JSON.stringify(gw.json))
      : gw.bodyAdditions !== null ? addJsonMembers(gw.rawBody, gw.bodyAdditions) : gw.rawBody
    return { body: buf, length: buf.length }
  }
  if (NO_BODY_METHODS.has(request.method) && request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) {
    return { body: null }
  }
  // unparsed content types (multipart, audio, …) stream from the client socket, through the
  // upload limits' counting pass-through when one is installed
  return { body: gw.bodyStream ?? request.raw }
}

export async function forward (request: FastifyRequest, reply: FastifyReply, opts: ForwardOptions = {}): Promise<FastifyReply | undefined> {
  const gw = request.gw
  const target = gw.target
  if (target === null) throw new Error('forward() called without a target')

  // a client that goes away (before or after the upstream answered) aborts the upstream request
  let exchange: UpstreamExchange | null = null
  let clientGone = false
  const onClientClose = (): void => {
    // ended: everything was handed to the socket, the upstream body with it (a HEAD answer ends
    // at once while the body is drained)
    if (reply.raw.writableEnded) return
    clientGone = true
    // the stream's last event reached the client, which closed before the body's formal end
    // (a gzip trailer, the chunked terminator): complete; the upstream's rest is not needed
    if (gw.streamEnd?.complete === true) {
      exchange?.abort()
      return
    }
    // an upstream failure mid-body was classified first; otherwise the client left
    gw.errorClass ??= 'client_abort'
    exchange?.abort()
  }
  reply.raw.once('close', onClientClose)
  // a stage failed on the upstream's body and so did its error handling: the response ends here
  const onFault = (err: unknown): void => {
    gw.errorClass = 'gateway_stream_fault'
    request.log.error({ err }, 'response stream failed; the connection was closed')
    reply.raw.destroy()
  }

  // a form whose model field names an Azure deployment: the path waits for the field
  const formModel = gw.formModel
  if (formModel?.value != null) {
    let model: string | null
    try {
      model = await formModel.value
    } catch (err) {
      // refused while the form streamed (a limit, a model the key may not use, the model field
      // too late): the client's 4xx; otherwise the client left before the field arrived
      if (isStreamedBodyRefusal(err)) throw err
      gw.errorClass ??= 'client_abort'
      reply.hijack()
      reply.raw.destroy()
      return undefined
    }
    if (model !== null) gw.model ??= model
    gw.upstreamPath = mapUpstreamPath(target, formModel.url, model)
  }

  const { body, length } = requestBody(request)
  // the same choice as upstreamKeyFor, keeping the pool and its key for failover
  const credential = requireCredential(request, target)
  const pool = credential.kind === 'pool' ? credential.pool : null
  let poolKey = pool !== null ? pool.pick() : null
  const headers = upstreamRequestHeaders(request.headers, {
    provider: target.provider,
    key: poolKey !== null ? poolKey.key : credential.kind === 'mapped' ? credential.key : null,
    requestId: request.id,
    drop: opts.dropHeaders,
    contentLength: length
  })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(headers, target, gw.client)
  if (poolKey !== null) gw.upstreamKeyName = poolKey.name
  // one retry on the next key, only when the body can be sent again (a Buffer, or none): a
  // streamed body (request.raw, or an upload counted on its way) is consumed by the first try
  let failover = pool !== null && pool.size > 1 && (body === null || body === undefined || Buffer.isBuffer(body))

  const dispatchOptions: Dispatcher.DispatchOptions = {
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, gw.upstreamPath),
    method: request.method as Dispatcher.HttpMethod,
    headers,
    body,
    headersTimeout: target.firstByteTimeoutMs,
    bodyTimeout: target.idleTimeoutMs
  }
  let res: UpstreamAnswer
  for (;;) {
    try {
      if (clientGone) throw new Error('client gone before the upstream request')
      exchange = new UpstreamExchange(onFault)
      target.dispatcher.dispatch(dispatchOptions, exchange)
      res = await exchange.answer
    } catch (err) {
      if (clientGone) {
        // the client is gone: nothing to answer
        gw.errorClass = 'client_abort'
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
      gw.errorClass = failure.errorClass
      request.log.warn({ upstream: target.name, errorClass: failure.errorClass, cause: failure.detail }, 'upstream request failed')
      throw failure.error
    }
    if (pool === null || poolKey === null) break
    if (res.statusCode === 401) noteKeyRefused(request, target, pool, poolKey)
    if (res.statusCode !== 429 || !failover) break
    failover = false
    exchange.attach(DISCARD)
    poolKey = switchKey(request, target, pool, poolKey, headers, 'upstream_429')
  }

  gw.ttfbMs = performance.now() - gw.startedAt
  gw.upstreamStatus = res.statusCode
  // (a HEAD answer has no body to check, and its length describes what a GET would get)
  if (target.secrets !== null && isErrorStatus(res.statusCode) && request.method !== 'HEAD') {
    try {
      exchange = await checkErrorBody(exchange, res, target.secrets, request)
    } catch (err) {
      // the client went away while the body was held: nothing to answer
      if (clientGone) {
        reply.hijack()
        return undefined
      }
      throw err
    }
  }
  // the upstream's limit headers say when to retry its 429; the gateway's own stay under theirs
  if (res.statusCode === 429) yieldLimitHeaders(reply)
  const sse = isEventStream(res.headers['content-type'])
  const stages = runResponseHooks(request, reply, res, sse)
  const out = clientResponseHeaders(res.headers, target.secrets)
  if (sse) {
    out['x-accel-buffering'] = 'no'
    out['cache-control'] = 'no-cache'
    // an error event inside a 200 stream: the upstream failed, though its status said otherwise
    gw.streamEnd = new StreamEndWatch(() => { gw.errorClass ??= 'upstream_stream_error' })
  }
  if (changesBody(stages)) delete out['content-length']

  // synchronous stages (or none): the answer is written to the client's response from undici's
  // handler directly, without a body stream or reply.send(stream)
  if (stages.every(isChunkStage)) {
    relay(exchange, request, reply, res.statusCode, out, stages, sse)
    return reply
  }
  reply.code(res.statusCode)
  addUpstreamHeaders(reply, out)
  const onStageError = (err: unknown): void => { request.log.warn({ err }, 'response stage failed; the rest of the body passed on unchanged') }
  const transforms = stages.map(stage => asTransform(stage, onStageError))
  // last: it must see what the client is sent
  if (gw.streamEnd !== null) transforms.push(asTransform(gw.streamEnd.stage(), onStageError))
  // the failure of any part of the chain (the upstream body, a decoder, a stage) reaches its
  // last stream: an event stream ends with an error event, a plain body is cut
  const answer = chain(bodyReadable(exchange), transforms)
  return reply.send(guardBody(answer, request, reply, sse))
}

/**
 * Writes the upstream's answer to the client's response as it arrives: status and headers (the
 * gateway's own win, as in setUpstreamHeaders), each chunk through the synchronous stages, the
 * upstream's pace kept by pausing it while the client's socket is full. Fastify is told the reply
 * is handled (hijack); its onResponse hooks still run when the response finishes.
 */
function relay (exchange: UpstreamExchange, request: FastifyRequest, reply: FastifyReply, status: number, headers: Record<string, string | string[]>, stages: readonly ChunkStage[], sse: boolean): void {
  const res = reply.raw
  const own = reply.getHeaders()
  for (const name in own) {
    const value = own[name]
    if (value !== undefined) headers[name] = typeof value === 'number' ? String(value) : value
  }
  reply.hijack()
  try {
    res.writeHead(status, headers)
  } catch (err) {
    // a header Node will not send (a control character in an upstream's value): nothing was
    // written yet, so the client gets a clear 502 instead of a hang
    exchange.abort()
    request.gw.errorClass = 'upstream_bad_response'
    request.log.warn({ err }, 'upstream response headers could not be passed on')
    const shaped = shapeError(new UpstreamProtocolError())
    res.writeHead(shaped.status, { 'content-type': 'application/json; charset=utf-8' })
    res.end(JSON.stringify(errorBody(request.url, shaped, request.gw.target?.provider)))
    return
  }
  let staged = stages.length > 0
  let waiting = false
  const watch = request.gw.streamEnd
  const resume = (): void => {
    waiting = false
    exchange.resume()
  }
  /** a stage that throws is a bug, not the client's problem: the rest of the body passes unchanged */
  const through = (chunk: Buffer | string, ending: boolean): Buffer | string => {
    if (!staged) return chunk
    try {
      return runStages(stages, chunk, ending)
    } catch (err) {
      staged = false
      request.log.warn({ err }, 'response stage failed; the rest of the body passed on unchanged')
      return chunk
    }
  }
  exchange.attach({
    data (chunk) {
      if (res.destroyed) return true
      const out = through(chunk, false)
      if (out.length === 0) return true
      watch?.write(out)
      if (res.write(out)) return true
      if (!waiting) {
        waiting = true
        res.once('drain', resume)
      }
      return false
    },
    end () {
      if (res.destroyed) return
      const tail = through('', true)
      if (tail.length > 0) res.end(tail)
      else res.end()
    },
    error (err) {
      // the client went away and we aborted the upstream: nobody is left to answer
      if (res.destroyed || err.name === 'AbortError' || err.name === 'RequestAbortedError') {
        res.destroy()
        return
      }
      const failure = classifyUpstreamError(err)
      request.gw.errorClass = failure.errorClass
      if (!sse) {
        // a body cut short cannot become an error status: the client's connection is destroyed,
        // so it sees a truncated body, never a whole one
        request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, 'upstream response failed after headers were sent')
        res.destroy()
        return
      }
      // an event stream ends with a final error event instead (STYLE.md §3.3.5), after what the
      // stages held
      request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, 'upstream stream failed after headers were sent')
      const event = through(streamErrorEvent(failure, request.gw.target?.provider === 'anthropic' || isAnthropicPath(request.url)), true)
      res.end(event)
    }
  })
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
    request.gw.errorClass = failure.errorClass
    request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, 'upstream error body failed')
    throw failure.error
  }
  const body = held === null ? null : checkedBody(held, res.headers['content-encoding'], secrets)
  if (body === null) {
    request.gw.errorClass = 'upstream_bad_response'
    request.log.warn({ status: res.statusCode, bound: ERROR_BODY_BOUND, encoding: res.headers['content-encoding'] }, 'upstream error body too large or unreadable to check for secrets: not relayed')
    throw new UpstreamProtocolError()
  }
  delete res.headers['content-encoding']
  res.headers['content-length'] = String(body.length)
  return UpstreamExchange.replay(body)
}

/**
 * The stages the plugins want for this answer. A compressed body the gateway can decode is
 * decoded only when something reads it (a stage: usage, context tags, aliases, a debug tap; or,
 * for an event stream, the watch on its last event, src/lib/stream-end.ts) or the client's
 * Accept-Encoding does not take its coding; otherwise the compressed bytes pass through with
 * their Content-Encoding. The hooks see the headers as the body will reach them.
 */
function runResponseHooks (request: FastifyRequest, reply: FastifyReply, res: UpstreamAnswer, sse: boolean): Array<Transform | ChunkStage> {
  const hooks = request.gw.responseHooks
  const coding = decodableCoding(request.method, res.statusCode, res.headers)
  if (hooks.length === 0 && coding === null) return []
  const encoding = res.headers['content-encoding']
  if (coding !== null) delete res.headers['content-encoding']
  const stages: Array<Transform | ChunkStage> = []
  const start = { request, reply, statusCode: res.statusCode, headers: res.headers, isEventStream: sse }
  for (const hook of hooks) {
    const stage = hook(start)
    if (stage !== null) stages.push(stage)
  }
  if (coding === null) return stages
  if (!sse && stages.length === 0 && acceptsCoding(request.headers['accept-encoding'], coding)) {
    res.headers['content-encoding'] = encoding
    return stages
  }
  delete res.headers['content-length']
  stages.unshift(decoderFor(coding))
  return stages
}

/**
 * pipeline(), not pipe(): a client abort destroys the last stage and that reaches the upstream;
 * a failure anywhere destroys every stage with it, so the last one reports it (logged there).
 */
function chain (source: Readable, stages: Transform[]): Readable {
  pipeline([source, ...stages], () => {})
  return stages[stages.length - 1]
}

/**
 * The body of a chain, with its failure (the upstream reset or stalled, a body its encoding does
 * not decode, a stage failed) handled once, with one line: before anything was sent the client
 * gets the shaped 5xx; after, an event stream ends with a final error event (STYLE.md §3.3.5),
 * so the client's SDK reports it, and any other body is cut (Fastify destroys the connection),
 * so the client sees a truncated body, never a whole one.
 */
function guardBody (body: Readable, request: FastifyRequest, reply: FastifyReply, sse: boolean): Readable {
  // A bare Readable fed from 'data' events, not a PassThrough: one stream hop instead of
  // write → transform → push, which cost about 2.5 µs per SSE event (bench/RESULTS.md, scenario 2).
  const out = new Readable({ read () { if (body.isPaused()) body.resume() } })
  body.on('data', (chunk: Buffer) => { if (!out.push(chunk)) body.pause() })
  body.once('end', () => out.push(null))
  body.once('error', (err) => {
    // the client went away and we aborted the upstream: nobody is left to answer
    // (with stages in between, the abort can arrive before the pipeline destroyed `out`)
    if (out.destroyed || err.name === 'AbortError' || err.name === 'RequestAbortedError') {
      out.destroy()
      return
    }
    const failure = classifyUpstreamError(err)
    request.gw.errorClass = failure.errorClass
    const sent = reply.raw.headersSent
    request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, sent
      ? `upstream ${sse ? 'stream' : 'response'} failed after headers were sent`
      : 'upstream response failed before its body was sent')
    if (!sse || !sent) {
      // Fastify answers the shaped error while nothing was sent (a JSON body: the upstream's
      // description of its own body goes), and cuts the connection after
      if (!sent) for (const name of BODY_HEADERS) reply.removeHeader(name)
      out.destroy(failure.error)
      return
    }
    out.push(streamErrorEvent(failure, request.gw.target?.provider === 'anthropic' || isAnthropicPath(request.url)))
    out.push(null)
  })
  // client gone (Fastify destroys what it was sending): stop reading, which aborts the upstream
  out.once('close', () => { if (!body.destroyed) body.destroy() })
  return out
}
