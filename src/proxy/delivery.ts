/**
 * The deliver phase: the one path an upstream answer takes to the client, whatever stages it
 * passes. The body comes either straight from the exchange (no stage, or only synchronous
 * `ChunkStage`s, run inline on each chunk) or from a chain of Transform stages (a decoder, a
 * JSON rewrite, a debug tap); both feed the same writer, which keeps the upstream's pace
 * (pausing it while the client's socket is full) and handles a failure in one place:
 * - before anything was sent: the shaped error answer (a 5xx in the client's SDK shape);
 * - after, in an event stream: a final error event (STYLE.md §3.3.5), so the client's SDK reports it;
 * - after, in any other body: the connection is cut, so the client sees a truncated body, never a
 *   whole one.
 *
 * The reply is hijacked: the writer owns the response. Fastify's onResponse hooks still run when
 * it finishes. Headers go out at once, except behind a Transform stage, which may still set the
 * final length (a rewritten JSON body): then they go with the first byte.
 */
import { pipeline, type Readable, type Transform } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { bodyReadable, type UpstreamExchange } from './exchange.js'
import { asTransform, isChunkStage, runStages, type ChunkStage } from './chunk-stages.js'
import type { StreamEndWatch } from '../lib/stream-end.js'
import { classifyUpstreamError, streamErrorEvent, type UpstreamFailure } from './upstream-errors.js'
import { UpstreamProtocolError, errorBody, shapeError } from '../errors.js'

export type Stage = Transform | ChunkStage

/** What the writer needs of the request beyond its reply. */
export interface DeliveryContext {
  request: FastifyRequest
  reply: FastifyReply
  /** the answer is an event stream (a failure after its headers becomes a final error event) */
  sse: boolean
  /** the client speaks Anthropic's dialect: its error event has Anthropic's shape */
  anthropic: boolean
  /** records the failure's class on the request's outcome */
  noteFailure: (errorClass: string) => void
}

interface Writer {
  write: (chunk: Buffer | string) => boolean
  end: (tail: Buffer | string) => void
  fail: (err: Error, tail: (event: string) => Buffer | string) => void
  /** the client's socket drained: call once when write returned false */
  onDrain: (resume: () => void) => void
}

/** What describes the upstream's body, not a gateway error that replaces it. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'x-accel-buffering', 'cache-control']

/**
 * Sends `status` and `headers` (the gateway's own reply headers win) and the body from
 * `exchange` through `stages`, upstream side first; `watch` sees what the client is sent.
 */
export function deliver (ctx: DeliveryContext, exchange: UpstreamExchange, status: number, headers: Record<string, string | string[]>, stages: readonly Stage[], watch: StreamEndWatch | null): void {
  const { reply } = ctx
  const own = reply.getHeaders()
  for (const name in own) {
    const value = own[name]
    if (value !== undefined) headers[name] = typeof value === 'number' ? String(value) : value
  }
  reply.hijack()
  const inline = stages.every(isChunkStage)
  const writer = openWriter(ctx, status, headers, !inline)
  if (writer === null) {
    exchange.abort()
    return
  }
  if (inline) fromExchange(ctx, exchange, writer, stages as readonly ChunkStage[], watch)
  else fromChain(ctx, exchange, writer, stages, watch)
}

/**
 * The writer over the client's response; null when the headers could not be written (then the
 * client got a 502 already).
 */
function openWriter (ctx: DeliveryContext, status: number, headers: Record<string, string | string[]>, lazyHead: boolean): Writer | null {
  const { request } = ctx
  const res = ctx.reply.raw
  try {
    if (lazyHead) {
      res.statusCode = status
      for (const name in headers) res.setHeader(name, headers[name])
    } else {
      res.writeHead(status, headers)
    }
  } catch (err) {
    // a header Node will not send (a control character in an upstream's value): nothing was
    // written yet, so the client gets a clear 502 instead of a hang
    ctx.noteFailure('upstream_bad_response')
    request.log.warn({ err }, 'upstream response headers could not be passed on')
    if (lazyHead) for (const name of res.getHeaderNames()) res.removeHeader(name)
    sendShaped(ctx, shapeError(new UpstreamProtocolError()))
    return null
  }
  let failed = false
  return {
    write: (chunk) => res.destroyed ? true : res.write(chunk),
    end: (tail) => {
      if (res.destroyed) return
      if (tail.length > 0) res.end(tail)
      else res.end()
    },
    fail: (err, tail) => {
      if (failed) return
      failed = true
      // the client went away and we aborted the upstream: nobody is left to answer
      if (res.destroyed || err.name === 'AbortError' || err.name === 'RequestAbortedError') {
        res.destroy()
        return
      }
      const failure = classifyUpstreamError(err)
      ctx.noteFailure(failure.errorClass)
      logFailure(ctx, failure, res.headersSent)
      if (!res.headersSent) {
        // nothing was sent: the shaped error, without the upstream's description of its own body
        for (const name of BODY_HEADERS) res.removeHeader(name)
        sendShaped(ctx, shapeError(failure.error))
        return
      }
      if (!ctx.sse) {
        res.destroy()
        return
      }
      res.end(tail(streamErrorEvent(failure, ctx.anthropic)))
    },
    onDrain: (resume) => { res.once('drain', resume) }
  }
}

function logFailure (ctx: DeliveryContext, failure: UpstreamFailure, sent: boolean): void {
  ctx.request.log.warn({ errorClass: failure.errorClass, cause: failure.detail }, sent
    ? `upstream ${ctx.sse ? 'stream' : 'response'} failed after headers were sent`
    : 'upstream response failed before its body was sent')
}

function sendShaped (ctx: DeliveryContext, shaped: ReturnType<typeof shapeError>): void {
  const res = ctx.reply.raw
  res.writeHead(shaped.status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(errorBody(ctx.request.upstream.apiPath, shaped, ctx.request.upstream.target?.provider)))
}

/** The exchange's chunks through synchronous stages, in undici's callback: no stream of our own. */
function fromExchange (ctx: DeliveryContext, exchange: UpstreamExchange, writer: Writer, stages: readonly ChunkStage[], watch: StreamEndWatch | null): void {
  let staged = stages.length > 0
  let waiting = false
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
      ctx.request.log.warn({ err }, 'response stage failed; the rest of the body passed on unchanged')
      return chunk
    }
  }
  exchange.attach({
    data (chunk) {
      const out = through(chunk, false)
      if (out.length === 0) return true
      watch?.write(out)
      if (writer.write(out)) return true
      if (!waiting) {
        waiting = true
        writer.onDrain(resume)
      }
      return false
    },
    end () {
      const tail = through('', true)
      watch?.write(tail)
      writer.end(tail)
    },
    // what the stages held goes out before the error event
    error (err) { writer.fail(err, (event) => through(event, true)) }
  })
}

/**
 * The exchange's body through a chain of Transform stages (synchronous ones wrapped), then to the
 * writer. pipeline(): a failure anywhere destroys every stage with it, and the last reports it.
 */
function fromChain (ctx: DeliveryContext, exchange: UpstreamExchange, writer: Writer, stages: readonly Stage[], watch: StreamEndWatch | null): void {
  const onStageError = (err: unknown): void => { ctx.request.log.warn({ err }, 'response stage failed; the rest of the body passed on unchanged') }
  const transforms = stages.map(stage => asTransform(stage, onStageError))
  // last: it must see what the client is sent
  if (watch !== null) transforms.push(asTransform(watch.stage(), onStageError))
  const source = bodyReadable(exchange)
  pipeline([source, ...transforms], () => {})
  const out: Readable = transforms[transforms.length - 1]
  out.on('data', (chunk: Buffer) => {
    if (writer.write(chunk)) return
    out.pause()
    writer.onDrain(() => out.resume())
  })
  out.once('end', () => writer.end(''))
  // a client that goes away aborts the exchange (forward.ts), which destroys the chain with it
  out.once('error', (err) => writer.fail(err, (event) => event))
}
