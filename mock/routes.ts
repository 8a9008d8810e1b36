import { countTokens, messages } from './anthropic.js'
import type { BodyMode } from './body.js'
import type { RouteHandler } from './exchange.js'
import { createFile, fileContent, images, speech, transcription, uploadPart } from './files.js'
import { chatCompletions, embeddings, getModel, listModels } from './openai.js'
import { sendJson } from './respond.js'

export interface Route {
  body: BodyMode
  handler: RouteHandler
  /** The first path parameter names the model (Azure deployment paths). */
  modelFromPath?: boolean
}

export interface RouteMatch {
  route: Route
  params: string[]
}

const healthz: RouteHandler = (ex) => sendJson(ex, 200, '{"status":"ok"}')

/** Fixed paths, looked up by "METHOD /path" in one map probe. */
const exactRoutes = new Map<string, Route>([
  ['GET /healthz', { body: 'raw', handler: healthz }],
  ['GET /v1/models', { body: 'raw', handler: listModels }],
  ['POST /v1/chat/completions', { body: 'json', handler: chatCompletions }],
  ['POST /v1/embeddings', { body: 'json', handler: embeddings }],
  ['POST /v1/messages', { body: 'json', handler: messages }],
  ['POST /v1/messages/count_tokens', { body: 'json', handler: countTokens }],
  ['POST /v1/audio/speech', { body: 'json', handler: speech }],
  ['POST /v1/files', { body: 'multipart', handler: createFile }],
  ['POST /v1/audio/transcriptions', { body: 'multipart', handler: transcription }],
  ['POST /v1/audio/translations', { body: 'multipart', handler: transcription }],
  ['POST /v1/images/edits', { body: 'multipart', handler: images }],
  ['POST /v1/images/variations', { body: 'multipart', handler: images }]
])

/** Paths with a parameter, tried in order when no fixed path matched. */
const patternRoutes: ReadonlyArray<readonly [method: string, pattern: RegExp, route: Route]> = [
  ['GET', /^\/v1\/models\/([^/]+)$/, { body: 'raw', handler: getModel }],
  ['GET', /^\/v1\/files\/([^/]+)\/content$/, { body: 'raw', handler: fileContent }],
  ['POST', /^\/v1\/uploads\/([^/]+)\/parts$/, { body: 'multipart', handler: uploadPart }],
  ['POST', /^\/openai\/deployments\/([^/]+)\/chat\/completions$/, { body: 'json', handler: chatCompletions, modelFromPath: true }],
  ['POST', /^\/openai\/deployments\/([^/]+)\/embeddings$/, { body: 'json', handler: embeddings, modelFromPath: true }],
  ['POST', /^\/openai\/deployments\/([^/]+)\/audio\/(?:transcriptions|translations)$/, { body: 'multipart', handler: transcription }],
  ['POST', /^\/openai\/deployments\/([^/]+)\/images\/edits$/, { body: 'multipart', handler: images }]
]

function decode (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

export function matchRoute (method: string, path: string): RouteMatch | undefined {
  const route = exactRoutes.get(`${method} ${path}`)
  if (route !== undefined) return { route, params: [] }
  for (const [routeMethod, pattern, candidate] of patternRoutes) {
    if (routeMethod !== method) continue
    const match = pattern.exec(path)
    if (match !== null) return { route: candidate, params: match.slice(1).map(decode) }
  }
  return undefined
}
