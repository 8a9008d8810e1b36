/**
 * The checks of a key restricted to some models (`allowedModels`): the model a request names,
 * wherever an upstream may read it (the JSON body, a multipart form's field, a realtime session's
 * query, an Azure deployment in the path or the query), must be on the key's list; a request whose
 * model the gateway cannot read as every upstream would is a 400, and an endpoint that names its
 * models where the gateway does not look is closed to such keys (403).
 */
import type { FastifyRequest } from 'fastify'
import {
  EndpointNotAllowedError, FormUncheckableError, ModelNotAllowedError, ModelUncheckableError, PathUncheckableError
} from '../errors.js'
import { azureDeploymentOf, joinUpstreamPath, pathSegments } from '../routing/paths.js'
import type { FormCheck } from '../uploads/limiter.js'

const MAX_MODEL_IN_MESSAGE = 200

/** The 403 naming a model (or deployment) the key may not use; a long name is cut in the message. */
function modelNotAllowed (request: FastifyRequest, named: string): Error {
  request.outcome.errorClass = 'model_not_allowed'
  return new ModelNotAllowedError(named.length > MAX_MODEL_IN_MESSAGE ? `${named.slice(0, MAX_MODEL_IN_MESSAGE)}…` : named)
}

/**
 * For a key restricted to `allowed` models, before the request is forwarded: the endpoint is one
 * the gateway can check, the model is where the gateway reads it and on the list, and so is the
 * Azure deployment the path or query names. Throws the refusal.
 */
export function assertAllowedModels (request: FastifyRequest, allowed: readonly string[]): void {
  const path = upstreamPathOf(request)
  assertEndpointCheckable(request, path.api)
  assertModelCheckable(request)
  const model = request.upstream.model
  if (model !== null && !allowed.includes(model)) throw modelNotAllowed(request, model)
  // after the model: an Azure path mapped from a model that is not allowed names that model
  assertDeploymentsAllowed(request, allowed, path)
}

/**
 * The allowed-models check of a multipart form (transcriptions, image edits…), run by the upload
 * pass-through on each field as it streams: the same rules as a JSON body, a `model` field that is
 * not allowed is a 403, a second field spelled like `model` in any case is a 400. Null when the
 * key is not restricted. A form without a model field goes on, as a JSON body without one does.
 * A form the pass-through cannot read as every upstream would (a part without a plain name, LF
 * line endings, a part header busboy refuses…) is a 400: its model may be where the check did not
 * look (src/uploads/form-framing.ts).
 */
export function formModelCheck (request: FastifyRequest): FormCheck | null {
  const allowed = request.client?.allowedModels
  if (allowed === undefined) return null
  let seen = false
  return {
    field (name, value) {
      if (name.length !== 5 || name.toLowerCase() !== 'model') return null
      if (seen) {
        request.outcome.errorClass = 'model_not_checkable'
        return new ModelUncheckableError()
      }
      seen = true
      request.upstream.model = value
      if (allowed.includes(value)) return null
      return modelNotAllowed(request, value)
    },
    unreadable () {
      request.outcome.errorClass = 'model_not_checkable'
      return new FormUncheckableError()
    }
  }
}

function hasBody (request: FastifyRequest): boolean {
  const length = request.headers['content-length']
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * A key restricted to some models must send its model where the gateway reads it (a realtime
 * session: its `model` query parameter). Upstreams are more lenient than the gateway: many parse
 * a body as JSON whatever its content type (or without one), and Go's encoding/json matches keys
 * case-insensitively (`"MODEL"` fills `Model`, the last one wins). So, for such a key: a body that
 * is neither JSON nor a multipart form, a second key spelled like `model` in another case, or a
 * `model` that is not a string, is a 400 instead of a way around the list. (A multipart form's
 * model field is checked while the form streams: `formModelCheck`.)
 */
function assertModelCheckable (request: FastifyRequest): void {
  // a realtime session names its model in the query (routes/v1/realtime.ts sets it): exactly
  // once, since upstream frameworks differ on which of two values they take. Only a real upgrade
  // (the server's 'upgrade' event, which @fastify/websocket marks) on the realtime route: an
  // `Upgrade` header on any other request changes nothing about where its model is
  if (request.ws && request.routeUrl === REALTIME_ROUTE) {
    const q = request.url.indexOf('?')
    if (q === -1 || new URLSearchParams(request.url.slice(q + 1)).getAll('model').length !== 1) throw new ModelUncheckableError()
    return
  }
  const body = request.proxyBody
  if (body?.raw == null) {
    const type = request.headers['content-type']
    if (hasBody(request) && !(typeof type === 'string' && /^multipart\/form-data\b/i.test(type))) throw new ModelUncheckableError()
    return
  }
  const json = body.json
  if (json === null) return
  if ('model' in json && typeof json.model !== 'string') throw new ModelUncheckableError()
  for (const key in json) if (key.length === 5 && key !== 'model' && key.toLowerCase() === 'model') throw new ModelUncheckableError()
}

/** The realtime WebSocket route (routes/v1/realtime.ts). */
const REALTIME_ROUTE = '/v1/realtime'

/**
 * Endpoints that name their models where the gateway does not look: in an uploaded JSONL file
 * (`batches`), in each of many requests (`messages/batches`), nested in a session or an eval's data
 * source. Closed to restricted keys. Matched after `openai/` and `v1/`, case-insensitively.
 */
const UNCHECKED_ENDPOINTS = ['batches', 'messages/batches', 'realtime/client_secrets', 'realtime/calls', 'realtime/transcription_sessions', 'evals']

/** The path a request is sent upstream, as upstreams read it (see upstreamPathOf). */
interface UpstreamPath {
  /** the API path (`request.upstream.path`), in segments */
  api: string[]
  /** the same with the target's base path: what the upstream gets */
  sent: string[]
  /** the `deployment` query parameters (Azure's realtime endpoint names its deployment there) */
  deploymentParams: string[]
}

/**
 * For a restricted key, the path the routing chose (`request.upstream.path`, what the upstream gets)
 * read as upstreams read it (`pathSegments`: decoded); a path they may read otherwise is a 400.
 */
function upstreamPathOf (request: FastifyRequest): UpstreamPath {
  const plan = request.upstream
  const target = plan.target
  const path = plan.path !== '' ? plan.path : plan.apiPath
  const api = pathSegments(path)
  const sent = target !== null && target.basePath !== '' ? pathSegments(joinUpstreamPath(target.basePath, path)) : api
  if (api === null || sent === null) {
    request.outcome.errorClass = 'model_not_checkable'
    throw new PathUncheckableError()
  }
  const q = path.indexOf('?')
  return { api, sent, deploymentParams: q === -1 ? [] : new URLSearchParams(path.slice(q + 1)).getAll('deployment') }
}

/** An endpoint in UNCHECKED_ENDPOINTS (after `openai/` and `v1/`, any case) is a 403. */
function assertEndpointCheckable (request: FastifyRequest, api: readonly string[]): void {
  let rest = api
  if (rest[0]?.toLowerCase() === 'openai') rest = rest.slice(1)
  if (rest[0]?.toLowerCase() === 'v1') rest = rest.slice(1)
  const endpoint = rest.join('/').toLowerCase()
  const closed = UNCHECKED_ENDPOINTS.find(e => endpoint === e || endpoint.startsWith(`${e}/`))
  if (closed === undefined) return
  request.outcome.errorClass = 'endpoint_not_allowed'
  throw new EndpointNotAllowedError(`/v1/${closed}`)
}

/**
 * Azure names the deployment in the path (`/openai/deployments/{d}/…`, any case) and serves it
 * whatever the body's `model` says, and its realtime endpoint in `?deployment=`: each must be the
 * deployment of an allowed model (the target's `azure.deployments` map, or the model's name).
 */
function assertDeploymentsAllowed (request: FastifyRequest, allowed: readonly string[], path: UpstreamPath): void {
  // a model group's request names the group (checked above): the deployments in its paths are
  // the gateway's own choice from the group's configuration, not the client's
  const inPath = request.upstream.group === null ? azureDeploymentOf(path.sent) : null
  if (inPath !== null) assertDeploymentAllowed(request, allowed, inPath)
  for (const named of path.deploymentParams) assertDeploymentAllowed(request, allowed, named)
}

function assertDeploymentAllowed (request: FastifyRequest, allowed: readonly string[], named: string): void {
  const deployments = request.upstream.target?.azure?.deployments
  if (allowed.some(model => (deployments?.get(model) ?? model) === named)) return
  throw modelNotAllowed(request, named)
}
