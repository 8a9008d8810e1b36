import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ControlDefaults, Controls } from './controls.js'
import type { HoldRegistry } from './pacer.js'
import { sendError } from './respond.js'
import type { MockRequest, MockStream } from './types.js'

/** What the route handlers share with the server that owns them. */
export interface MockState {
  readonly defaults: ControlDefaults
  readonly models: readonly string[]
  /** Unix seconds, fixed at start so that answers can be assembled from constant parts. */
  readonly created: number
  readonly holds: HoldRegistry
  trackStream: (stream: MockStream) => void
}

/** One request being answered. */
export interface Exchange {
  req: IncomingMessage
  res: ServerResponse
  record: MockRequest
  controls: Controls
  state: MockState
  path: string
  /** Captures of the route pattern, e.g. the file id of /v1/files/{id}/content. */
  params: string[]
  /** Parsed JSON body, undefined when the body was empty or not JSON. */
  body: unknown
  /** Model to assume when the body names none (Azure deployments put it in the path). */
  defaultModel?: string
}

export type RouteHandler = (ex: Exchange) => void | Promise<void>

/** Narrows a parsed body to a plain object. */
export function asObject (value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined
}

/** The JSON body as an object, or undefined after answering 400. */
export function requireJsonObject (ex: Exchange): Record<string, unknown> | undefined {
  const body = asObject(ex.body)
  if (body === undefined) sendError(ex, 400, 'We could not parse the JSON body of your request.')
  return body
}

/** The model named in the body (or implied by an Azure deployment path), or undefined after answering 400. */
export function requireModel (ex: Exchange, body: Record<string, unknown>, missing = 'you must provide a model parameter'): string | undefined {
  const model = typeof body.model === 'string' && body.model !== '' ? body.model : ex.defaultModel
  if (model === undefined) sendError(ex, 400, missing)
  return model
}
