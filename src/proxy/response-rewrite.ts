/**
 * Glue between the body-transform plugins (field aliases, context id) and the forwarder's
 * response hooks: which responses can be rewritten, in which order the stages run, and which
 * compressed bodies the gateway can read (and which the client takes compressed).
 *
 * A plugin that is off adds no hook at all, so the forwarder pipes the upstream body untouched
 * (the benchmark's "plugins off" path is exactly the core path).
 */
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import type { Transform } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import type { StageMaker, ResponseStart } from './stages.js'
import { JsonRewriteStream, type HeldBytes } from '../lib/json-transform.js'
import { SseRewriteStream, SseRewriter, type SseEventRewriter } from '../lib/sse-transform.js'
import type { ChunkStage } from './chunk-stages.js'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i

export function isJsonContentType (value: string | string[] | undefined): boolean {
  return typeof value === 'string' && JSON_TYPE.test(value)
}

/** What one plugin does to one response; either part may be missing. */
export interface ResponseRewrite {
  /** rewrites a whole JSON body: undefined keeps it byte for byte */
  json?: (value: unknown) => unknown
  sse?: SseEventRewriter
  /** awaited before a JSON body is sent (SSE rewriters have their own `beforeEnd`) */
  beforeEnd?: () => Promise<void> | void
}

export interface RewriteLimits {
  maxJsonBytes: number
  maxEventSize: number
  /** bytes held by every JSON rewrite of this gateway together (all plugins share one) */
  held: HeldBytes
}

/** Responses without a body, or with one we cannot read, are never touched. */
function rewritable (start: ResponseStart): boolean {
  if (start.request.method === 'HEAD') return false
  const status = start.statusCode
  if (status < 200 || status === 204 || status === 304) return false
  const encoding = start.headers['content-encoding']
  return encoding === undefined || encoding === 'identity'
}

/**
 * Builds the response hook of one plugin: an SSE stage for event streams, a JSON stage for JSON
 * bodies, nothing for anything else (files, audio, HTML error pages).
 */
export function rewriteHook (plugin: string, limits: RewriteLimits, make: (start: ResponseStart) => ResponseRewrite | null): StageMaker {
  return function rewriteResponse (start: ResponseStart): Transform | ChunkStage | null {
    if (!rewritable(start)) return null
    const log = start.request.log
    const onError = (err: unknown): void => { log.warn({ err, plugin }, 'response rewrite failed; passed on unchanged') }
    if (start.isEventStream) {
      const rewrite = make(start)
      if (rewrite?.sse === undefined) return null
      const opts = {
        maxEventSize: limits.maxEventSize,
        onOversize: () => log.warn({ plugin, maxEventSize: limits.maxEventSize }, 'stream event larger than the rewrite limit passed on unchanged'),
        onError
      }
      // nothing to wait for at the end: a synchronous stage, run in the forwarder's own hop
      return rewrite.sse.beforeEnd === undefined ? new SseRewriter(rewrite.sse, opts) : new SseRewriteStream(rewrite.sse, opts)
    }
    if (!isJsonContentType(start.headers['content-type'])) return null
    const rewrite = make(start)
    if (rewrite?.json === undefined) return null
    const res = start.reply.raw
    return new JsonRewriteStream({
      rewrite: rewrite.json,
      maxBytes: limits.maxJsonBytes,
      beforeEnd: rewrite.beforeEnd,
      // the body goes out as one chunk after this, so the client gets an exact content-length
      onLength: (bytes) => { if (!res.headersSent) res.setHeader('content-length', bytes) },
      onOversize: () => log.warn({ plugin, maxJsonBytes: limits.maxJsonBytes }, 'JSON response larger than the rewrite limit passed on unchanged'),
      held: limits.held,
      onHeldFull: () => log.warn({ plugin, maxHeldJsonBytes: limits.held.max }, 'JSON responses held for rewriting reached their shared bound: this one passed on unchanged'),
      onError
    })
  }
}

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress
}

/**
 * The content coding of a response body the gateway can decode (one of DECODERS), or null: no
 * coding, several, one we cannot read (zstd), or no body at all (HEAD, 204, 304, length 0).
 */
export function decodableCoding (method: string, status: number, headers: Record<string, string | string[] | undefined>): string | null {
  const encoding = headers['content-encoding']
  if (typeof encoding !== 'string' || method === 'HEAD' || status < 200 || status === 204 || status === 304) return null
  if (headers['content-length'] === '0') return null
  const coding = encoding.trim().toLowerCase()
  return DECODERS[coding] !== undefined ? coding : null
}

export function decoderFor (coding: string): Transform {
  return DECODERS[coding]()
}

/**
 * True when the client's Accept-Encoding takes `coding` (RFC 9110 §12.5.3): named, or `*`, with
 * a q-value above 0. No header at all accepts any coding.
 */
export function acceptsCoding (header: string | string[] | undefined, coding: string): boolean {
  if (header === undefined) return true
  const want = coding === 'x-gzip' ? 'gzip' : coding
  let star = false
  for (const item of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [name, ...params] = item.split(';')
    let token = name.trim().toLowerCase()
    if (token === 'x-gzip') token = 'gzip'
    if (token !== want && token !== '*') continue
    const q = params.map(p => p.trim().toLowerCase()).find(p => p.startsWith('q='))
    const accepted = q === undefined || Number(q.slice(2)) > 0
    if (token === want) return accepted
    star = accepted
  }
  return star
}

/**
 * `identity`, not a missing header: without Accept-Encoding a server may pick any coding
 * (RFC 9110 §12.5.3). The client still gets a plain body, which it always accepts.
 */
export function askForIdentity (request: FastifyRequest): void {
  request.headers['accept-encoding'] = 'identity'
}
