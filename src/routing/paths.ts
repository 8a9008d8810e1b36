/**
 * Request paths: which part of the URL selects a target, and which path the target is sent.
 *
 * `/{target}/v1/…` is a route prefix: the API routes are registered once per prefix, `''` and
 * `TARGET_PREFIX` (src/app.ts), and the routing plugin reads the `target` parameter. A cloud
 * function's stage (`/release/v1/…`) is no part of the gateway's URL space: `createStageStripper`
 * removes it before Fastify's router (the `rewriteUrl` server option), for every route.
 *
 * `mapUpstreamPath` applies a target's path rewrites (`pathRewrites`, `proxy_url_path` in files
 * that use that name) and Azure's
 * deployment paths and `api-version` query.
 */
import type { IncomingMessage } from 'node:http'
import type { GatewayConfig } from '../../config/schema.js'

/** The route prefix that names a target (`routing.byPath`): `/{target}/v1/…`. */
export const TARGET_PREFIX = '/:target'

/** A route's URL pattern as the API knows it: without the target prefix (route labels, checks). */
export function apiRoutePattern (pattern: string | undefined): string | undefined {
  return pattern !== undefined && pattern.startsWith(`${TARGET_PREFIX}/`) ? pattern.slice(TARGET_PREFIX.length) : pattern
}

/** The client's URL without its first path segment (the target a `TARGET_PREFIX` route matched). */
export function withoutFirstSegment (url: string): string {
  const end = url.indexOf('/', 1)
  return end === -1 ? '/' : url.slice(end)
}

/** Tencent SCF stage prefixes, removed only as a whole leading segment (never mid-path). */
const STAGES = ['/release', '/test']

export function stripStage (url: string): string {
  for (const stage of STAGES) {
    if (!url.startsWith(stage)) continue
    const next = url.charAt(stage.length)
    if (next === '') return '/'
    if (next === '/') return url.slice(stage.length)
    if (next === '?') return `/${url.slice(stage.length)}`
  }
  return url
}

/**
 * A `.` or `..` path segment, written plainly or percent-encoded (`%2e%2e`), between separators
 * that some server normalises: `/`, `\` and their encoded forms `%2f`, `%5c`. Fastify routes the
 * raw path (`/v1/../admin` matches `/v1/*`), and undici sends it as it is; an upstream or a proxy
 * in front of it that normalises would then serve `/admin` or climb out of a target's base path
 * (`https://host/base` + `/v1/../../x`). A `;` may follow (`/..;/`, read as `..` by servlet
 * containers). `...` or `.env` are ordinary names and pass.
 */
const DOT_SEGMENT = /(?:^|\/|\\|%2f|%5c)(?:\.|%2e){1,2}(?=$|\/|\\|%2f|%5c|;|%3b)/i

/**
 * Whether `url` may be sent to an upstream as its path: origin-form (`/…`), with no dot segment in
 * any spelling in the path part (the query is not a path). Absolute-form (`GET http://other/v1/x`)
 * is refused: Fastify routes it by its path, but undici would send it on verbatim, and an upstream
 * or a proxy before it reads the host inside as the target.
 */
export function isSafeRequestPath (url: string): boolean {
  return url.charCodeAt(0) === 47 /* / */ && !hasDotSegment(url)
}

/** Whether the path part of `url` (the query is not a path) has a dot segment in any spelling. */
export function hasDotSegment (url: string): boolean {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  // fast path: no dot, plain or encoded, no segment to worry about
  if (!path.includes('.') && !path.includes('%')) return false
  if (DOT_SEGMENT.test(path)) return true
  // encoded more than once (`%252e%252e`) for a server or proxy that decodes more than once
  let decoded = path
  for (let i = 0; i < 4 && /%25/i.test(decoded); i++) decoded = decoded.replace(/%25/gi, '%')
  return decoded !== path && DOT_SEGMENT.test(decoded)
}

/** A percent-encoded separator (`/`, `\`) or percent sign, or a plain `\`. */
const AMBIGUOUS_IN_PATH = /%(?:2f|5c|25)|\\/i

/**
 * The segments of the path of `url` (the query is not a path), each percent-decoded, as an
 * upstream reads them; null when upstreams may read the path otherwise: an encoded separator
 * (`deployments%2Fgpt-4o`), a `\`, double encoding (`%2564eployments`), an empty segment inside
 * the path (`//`) or a malformed escape. One trailing `/` is no segment. Servers differ on all of
 * these (some decode once more, some merge or split segments), so a check that must agree with
 * every upstream on what a path names (src/auth/allowed-models.ts) reads only paths without them.
 */
export function pathSegments (url: string): string[] | null {
  const q = url.indexOf('?')
  let path = q === -1 ? url : url.slice(0, q)
  if (AMBIGUOUS_IN_PATH.test(path)) return null
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1)
  if (path === '/') return []
  const segments = path.split('/')
  // the path starts with '/' (routing refuses others), so segments[0] is ''
  if (segments[0] !== '') return null
  const out: string[] = []
  for (let i = 1; i < segments.length; i++) {
    if (segments[i] === '') return null
    try {
      out.push(decodeURIComponent(segments[i]))
    } catch {
      return null
    }
  }
  return out
}

/**
 * The Azure deployment a path names (`/openai/deployments/{d}/…`, matched case-insensitively as
 * Azure does), decoded; null when it names none. `segments` as `pathSegments` gives them.
 */
export function azureDeploymentOf (segments: readonly string[]): string | null {
  if (segments.length < 3) return null
  return segments[0].toLowerCase() === 'openai' && segments[1].toLowerCase() === 'deployments' ? segments[2] : null
}

/** Joins the target's base path and the request path; `…/v1` + `/v1/x` does not become `/v1/v1/x`. */
export function joinUpstreamPath (basePath: string, path: string): string {
  if (basePath === '') return path
  if (basePath.endsWith('/v1') && (path.startsWith('/v1/') || path === '/v1')) return basePath.slice(0, -3) + path
  return basePath + path
}

export type UrlRewriter = (req: IncomingMessage) => string

/** The `rewriteUrl` function for the Fastify server, or undefined when stages are not stripped. */
export function createStageStripper (config: Pick<GatewayConfig, 'routing'>): UrlRewriter | undefined {
  if (!config.routing.stripStagePrefixes) return undefined
  return function removeStage (req) {
    return stripStage(req.url ?? '/')
  }
}

export interface PathRewrite {
  from: string
  to: string
  /** `from` ended in `*`: everything after it is kept */
  prefix: boolean
}

export interface AzureRouting {
  apiVersion: string
  deployments: ReadonlyMap<string, string>
}

/** What mapUpstreamPath needs of a target. */
export interface PathMapping {
  rewrites: readonly PathRewrite[] | null
  azure: AzureRouting | null
}

export function compileRewrites (map: Readonly<Record<string, string>>): PathRewrite[] | null {
  const list = Object.entries(map).map(([from, to]) => from.endsWith('*')
    ? { from: from.slice(0, -1), to: to.replace(/\*$/, ''), prefix: true }
    : { from, to, prefix: false })
  // exact rules first, then the longest prefix
  list.sort((a, b) => Number(a.prefix) - Number(b.prefix) || b.from.length - a.from.length)
  return list.length > 0 ? list : null
}

/** Azure operations addressed through a deployment (the model names it). */
const DEPLOYMENT_OPERATIONS = new Set([
  'chat/completions', 'completions', 'embeddings', 'audio/speech', 'audio/transcriptions',
  'audio/translations', 'images/generations', 'images/edits'
])

/** The client URL after the target's path rewrites, as path and query. */
function rewritten (target: PathMapping, url: string): { path: string, query: string } {
  const q = url.indexOf('?')
  let path = q === -1 ? url : url.slice(0, q)
  let query = q === -1 ? '' : url.slice(q + 1)
  if (target.rewrites !== null) {
    const to = rewrite(target.rewrites, path)
    if (to !== null) {
      const rq = to.indexOf('?')
      path = rq === -1 ? to : to.slice(0, rq)
      if (rq !== -1) query = joinQuery(to.slice(rq + 1), query)
    }
  }
  return { path, query }
}

/** The path (and query) to request from the target, for a client URL and the request's model. */
export function mapUpstreamPath (target: PathMapping, url: string, model: string | null): string {
  if (target.rewrites === null && target.azure === null) return url
  let { path, query } = rewritten(target, url)
  if (target.azure !== null) {
    path = azurePath(target.azure, path, model)
    if (target.azure.apiVersion !== '' && !new URLSearchParams(query).has('api-version')) {
      query = joinQuery(query, `api-version=${encodeURIComponent(target.azure.apiVersion)}`)
    }
  }
  return query === '' ? path : `${path}?${query}`
}

/**
 * True when the upstream path for `url` is chosen by the request's model: an Azure target and an
 * operation addressed through a deployment (`/v1/audio/transcriptions` → `/openai/deployments/{d}/…`).
 */
export function pathNeedsModel (target: PathMapping, url: string): boolean {
  if (target.azure === null) return false
  const { path } = rewritten(target, url)
  return path.startsWith('/v1/') && DEPLOYMENT_OPERATIONS.has(path.slice(4))
}

function rewrite (rules: readonly PathRewrite[], path: string): string | null {
  for (const r of rules) {
    if (r.prefix ? path.startsWith(r.from) : path === r.from) return r.prefix ? r.to + path.slice(r.from.length) : r.to
  }
  return null
}

function joinQuery (a: string, b: string): string {
  return a === '' ? b : b === '' ? a : `${a}&${b}`
}

/**
 * OpenAI paths onto Azure's: `/v1/chat/completions` with model m → `/openai/deployments/{d}/chat/completions`
 * where d is the configured deployment for m (or m itself); other `/v1/x` → `/openai/x`. Paths
 * already in Azure's form are left alone. The model is client input, so it is percent-encoded.
 */
function azurePath (azure: AzureRouting, path: string, model: string | null): string {
  if (!path.startsWith('/v1/')) return path
  const operation = path.slice(4)
  if (model !== null && model !== '' && DEPLOYMENT_OPERATIONS.has(operation)) {
    const deployment = azure.deployments.get(model) ?? model
    return `/openai/deployments/${encodeURIComponent(deployment)}/${operation}`
  }
  return `/openai/${operation}`
}
