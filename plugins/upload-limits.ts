/**
 * Limits on streamed request bodies (multipart uploads to /v1/files, /v1/audio/*, /v1/images/*,
 * /v1/uploads/{id}/parts, raw audio…): total size, file size, file count, field count and field
 * size, each refused with a 413 that names the limit; and, for a key restricted to some models, the
 * form's `model` field (src/auth/allowed-models.ts, `formModelCheck`).
 *
 * The body is not held: it flows from the client socket through a counting pass-through
 * (src/uploads/limiter.ts) into the upstream request. (One exception: a form whose `model` field
 * chooses an Azure deployment is held until that field, within `modelFieldHoldBytes`.) A
 * declared Content-Length over the total limit is refused before the upstream is contacted; a
 * limit crossed mid-stream errors the pass-through, which makes undici abort the upstream
 * request, and the client gets the 413.
 * The rest of the refused body is read and discarded for a while (so the client, still sending,
 * can read the 413 instead of a reset connection), then the connection is cut.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { GatewayConfig } from '../config/schema.js'
import { UploadCheckFailedError, UploadTotalTooLargeError, isStreamedBodyRefusal } from '../src/errors.js'
import { guarded, thrownSummary } from '../src/lib/guarded.js'
import { UploadLimiter } from '../src/uploads/limiter.js'
import { formModelCheck } from '../src/auth/allowed-models.js'
import { ProxyBody } from '../src/proxy/proxy-body.js'

export interface UploadLimitsOptions {
  uploads: GatewayConfig['uploads']
}

/** How long a refused body is still read (and dropped) before the connection is closed. */
const DISCARD_MS = 10_000

function hasBody (raw: IncomingMessage): boolean {
  const length = raw.headers['content-length']
  if (length !== undefined) return length !== '0'
  return raw.headers['transfer-encoding'] !== undefined
}

/**
 * Reads and drops what is left of a refused body, for a bounded time, then closes the connection
 * once both the body and the 413 are through: a keep-alive connection that went idle only after
 * the answer would otherwise hold up a graceful shutdown until its keep-alive timeout.
 */
function discardRest (raw: IncomingMessage, res: ServerResponse): void {
  const socket = raw.socket
  // a request injected in-process (fastify.inject) has a stand-in socket with nothing to close
  if (raw.destroyed || socket === null || typeof socket.destroy !== 'function') return
  const cut = setTimeout(() => socket.destroy(), DISCARD_MS)
  cut.unref()
  let pending = 2
  const done = (): void => {
    if (--pending > 0) return
    clearTimeout(cut)
    socket.destroy()
  }
  if (raw.complete) done()
  else raw.once('end', done)
  if (res.writableFinished) done()
  else res.once('finish', done)
  socket.once('close', () => clearTimeout(cut))
  raw.resume()
}

/** Client socket → limiter, with backpressure; a client that goes away destroys the limiter (and so the upstream request). */
function limitedBody (request: FastifyRequest, reply: FastifyReply, limits: UploadLimitsOptions['uploads']): UploadLimiter {
  const raw = request.raw
  const plan = request.upstream
  const hold = plan.formModel !== null ? { maxBytes: limits.modelFieldHoldBytes } : null
  const limiter = new UploadLimiter(raw.headers, limits, formModelCheck(request), hold)
  // the form's first `model` field names the request's model in its usage record and token
  // metrics (a restricted key's check sets it first, and may refuse it)
  limiter.onModelField = (value) => { plan.model ??= value }
  if (plan.formModel !== null) plan.formModel.value = limiter.modelField
  // on the client socket's stack: a throw fails this upload, never the process
  const fail = (err: unknown): void => { limiter.destroy(new UploadCheckFailedError({ cause: err })) }
  const onData = guarded((chunk: Buffer): void => { if (!limiter.write(chunk)) raw.pause() }, fail)
  const onDrain = guarded((): void => { raw.resume() }, fail)
  const onEnd = guarded((): void => { limiter.end() }, fail)
  const onClose = guarded((): void => { if (!raw.complete) limiter.destroy(new Error('client closed the connection during the upload')) }, fail)
  const detach = (): void => {
    raw.off('data', onData)
    raw.off('end', onEnd)
    raw.off('close', onClose)
    limiter.off('drain', onDrain)
  }
  raw.on('data', onData)
  raw.once('end', onEnd)
  raw.once('close', onClose)
  limiter.on('drain', onDrain)
  limiter.once('error', (err) => {
    detach()
    if (!isStreamedBodyRefusal(err)) return
    // a listener of the parser threw: the one line that says so (the client gets a plain 500)
    if (err.statusCode >= 500) request.log.error({ code: err.code, cause: thrownSummary(err.cause), counts: limiter.counts }, 'upload check failed')
    else request.log.info({ code: err.code, counts: limiter.counts }, 'upload refused')
    discardRest(raw, reply.raw)
  })
  limiter.once('close', detach)
  return limiter
}

const uploadLimits: FastifyPluginAsync<UploadLimitsOptions> = async (fastify, { uploads }) => {
  const limits = { ...uploads }

  // callback form: a sync decision, no promise per request
  fastify.addHook('preHandler', function limitStreamedBody (request, reply, done) {
    // JSON bodies were read (and bounded) by the body parser; only unread bodies stream
    if (request.proxyBody !== null || request.body !== undefined || !hasBody(request.raw)) return done()
    const declared = Number(request.headers['content-length'])
    if (declared > limits.maxTotalBytes) {
      discardRest(request.raw, reply.raw)
      throw new UploadTotalTooLargeError(limits.maxTotalBytes)
    }
    request.proxyBody = ProxyBody.streamed(limitedBody(request, reply, limits))
    done()
  })
}

export default fp(uploadLimits, { name: 'gateway-upload-limits', fastify: '5.x', dependencies: ['gateway-request-state'] })
