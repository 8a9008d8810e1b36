/**
 * The shapes a translation takes: a direction (client dialect → upstream dialect) turns the
 * client's request body into the upstream's and returns the per-request translator of the answer.
 */
import type { Json } from './shared.js'
import type { Provider } from '../upstream/target.js'

export type Dialect = 'messages' | 'chat' | 'responses'

/** A translator of one upstream event stream, fed one parsed event at a time. */
export interface StreamTranslator {
  /** one upstream event (its `event:` field and its JSON data): the client's SSE text for it */
  event: (name: string | undefined, data: unknown) => string
  /** the upstream's `data: [DONE]` */
  done: () => string
  /** the upstream's body ended: what is left to send */
  end: () => string
}

/** The answer side of one translated request. */
export interface AnswerTranslator {
  /** a whole JSON answer (2xx) */
  json: (body: unknown) => unknown
  stream: () => StreamTranslator
}

export interface TranslatedRequest {
  body: Json
  answer: AnswerTranslator
}

export interface Direction {
  client: Dialect
  upstream: Dialect
  /** the upstream operation the request is sent to, before the target's own path mapping */
  upstreamPath: string
  /** the dialect usage is read in: the upstream's (src/usage/tokens.ts) */
  usageDialect: 'openai' | 'anthropic'
  /** throws UntranslatableFieldError for a field it cannot carry */
  request: (body: Json, provider: Provider) => TranslatedRequest
  /** an upstream error body (any status) in the client's shape */
  error: (status: number, body: unknown) => unknown
}

/** The translation of the attempt that is under way (`request.upstream.translation`). */
export interface ActiveTranslation {
  direction: Direction
  answer: AnswerTranslator
}
