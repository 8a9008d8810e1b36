/**
 * The gateway's own requests to an upstream on a client's behalf (a model list), answered whole:
 * the same headers, credentials and timeouts as a forwarded request, the body bounded, and an
 * error answer checked for configured secrets as the forwarder checks it. Not tied to the
 * client's connection: other requests may be waiting on the same answer.
 */
import type { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js'
import { checkedBody, ERROR_BODY_BOUND, isErrorStatus } from './answer-check.js'
import { addTargetHeaders, upstreamKeyFor } from '../routing/credentials.js'
import { joinUpstreamPath } from '../routing/paths.js'

export interface UpstreamFetch {
  /** path and query, relative to the target's base path */
  path: string
  /** request headers of the client's that must not go (e.g. conditional ones, for a shared answer) */
  drop?: ReadonlySet<string>
  /** the largest body taken; a larger one is a TooLargeAnswerError */
  maxBytes: number
}

export interface FetchedAnswer {
  status: number
  /** response headers for a client (hop-by-hop and the upstream's CORS gone, secrets checked) */
  headers: Record<string, string | string[]>
  contentType: string
  body: Buffer
}

/** A body over the bound, or an error answer too large or unreadable to check for secrets. */
export class TooLargeAnswerError extends Error {}

function headerText (value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : value ?? ''
}

async function readBounded (body: Readable, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > max) {
      body.destroy()
      return null
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

export async function fetchFromUpstream (request: FastifyRequest, target: UpstreamTarget, options: UpstreamFetch): Promise<FetchedAnswer> {
  const headers = upstreamRequestHeaders(request.headers, {
    provider: target.provider,
    key: upstreamKeyFor(request, target),
    requestId: request.id,
    drop: options.drop
  })
  if (target.headers !== null || target.defaultHeaders !== null) addTargetHeaders(headers, target, request.client)
  const res = await target.dispatcher.request({
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, options.path),
    method: 'GET',
    headers,
    headersTimeout: target.firstByteTimeoutMs,
    bodyTimeout: target.idleTimeoutMs
  })
  let body = await readBounded(res.body, options.maxBytes)
  if (body === null) throw new TooLargeAnswerError()
  if (target.secrets !== null && isErrorStatus(res.statusCode)) {
    // an error may name the key it was sent
    body = body.length > ERROR_BODY_BOUND ? null : checkedBody(body, res.headers['content-encoding'], target.secrets)
    if (body === null) throw new TooLargeAnswerError()
    delete res.headers['content-encoding']
  }
  const out = clientResponseHeaders(res.headers, target.secrets)
  delete out['content-length']
  return { status: res.statusCode, headers: out, contentType: headerText(res.headers['content-type']), body }
}
