/**
 * Where a request goes: the plan phase's state (`request.upstream`), owned by the routing plugin
 * (plugins/routing.ts). The forwarder reads it to make its attempts; nobody else writes it but
 * the readers of a model the body does not carry (a form field, a realtime query).
 */
import type { UpstreamTarget } from './target.js'
import type { ActiveTranslation } from '../translate/types.js'
import type { ModelGroup } from '../routing/model-groups.js'

/** A form whose `model` field chooses the upstream path (a multipart upload to an Azure deployment). */
export interface FormModel {
  /** the API path to map again once the field is read */
  url: string
  /** the field's value as the form streams in (plugins/upload-limits.ts); the forwarder waits for it */
  value: Promise<string | null> | null
  /** the target the field's model routes to (a target's `models` globs), when no header, path or Host fixed it */
  route: ((model: string) => UpstreamTarget | null) | null
}

export interface UpstreamPlan {
  target: UpstreamTarget | null
  /**
   * The API path and query as the gateway's routes know it (`/v1/…`, `/openai/…`): the client's
   * URL without a target or stage prefix. Refusals, usage dialects and checks read this.
   */
  apiPath: string
  /** path and query to request from the target, relative to its base path ('' until mapped) */
  path: string
  /** the model the request names: the JSON `model`, a form's `model` field, a realtime `?model=` */
  model: string | null
  formModel: FormModel | null
  /** the path prefix named no target (`/{name}/v1/…`): refused as an unknown route */
  unknownTarget: boolean
  /** no `X-Target-Host`, path prefix or Host chose the target: the model may (docs/fallback.md) */
  byModel: boolean
  /**
   * The model group the request's model names: the forwarder tries its deployments in turn, and
   * `target` is only the first it may use (refusals, checks). Null for every other request.
   */
  group: ModelGroup | null
  /**
   * The dialect translation of the current attempt (src/translate/attempt.ts), null when the
   * target speaks the client's dialect; the answer's stages read it
   */
  translation: ActiveTranslation | null
}

export function newPlan (apiPath: string): UpstreamPlan {
  return { target: null, apiPath, path: '', model: null, formModel: null, unknownTarget: false, byModel: false, group: null, translation: null }
}
