/**
 * Routing by model: the targets' `models` globs and the model groups (`modelGroups`), built once at
 * boot from the config. A group is a model name clients use that stands for an ordered list of
 * deployments (a target and the model it is asked for); the forwarder tries them in the order
 * src/routing/deployment-picker.ts gives, with the rules kept here (docs/fallback.md).
 */
import type { FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../../config/schema.js'
import type { UpstreamTarget } from '../upstream/target.js'
import type { HealthBoard } from './health.js'
import { mayUse } from './require-target.js'
import { takesRequest } from '../upstream/attempt.js'

export type Strategy = GatewayConfig['modelGroups'][string]['strategy']

export interface Deployment {
  /** `target/model`: the key of its health (one state however many groups list it) */
  readonly id: string
  /** `@{target}`: the target's own health (its health check) */
  readonly targetId: string
  readonly target: UpstreamTarget
  readonly model: string
  readonly weight: number
  /** smooth weighted round robin state (strategy weighted) */
  current: number
}

/** Which failures of an attempt are tried again on the next deployment. */
export interface RetryRules {
  connect: boolean
  timeout: boolean
  tooMany: boolean
  serverError: boolean
  errorEvent: boolean
}

export interface ModelGroup {
  readonly name: string
  readonly strategy: Strategy
  readonly deployments: readonly Deployment[]
  readonly retry: RetryRules
  readonly maxAttempts: number
  readonly allowedFails: number
  readonly cooldownMs: number
  /** the group tried when an upstream says the context is too long; null = none */
  contextWindowFallback: ModelGroup | null
  /** a stream that breaks midway continues on the next deployment (src/proxy/stream-resume.ts) */
  readonly streamResume: boolean
  /** requests routed so far (least-latency's exploration turn) */
  routed: number
  /** the deployments' health and cooldowns (one board for every group) */
  readonly health: HealthBoard
}

/** `*` any run, `?` one character, everything else literal; matched whole and in any case. */
export function globPattern (globs: readonly string[]): RegExp | null {
  if (globs.length === 0) return null
  const alternatives = globs.map(g => g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.'))
  return new RegExp(`^(?:${alternatives.join('|')})$`, 'is')
}

export class ModelRouter {
  readonly groups: ReadonlyMap<string, ModelGroup>
  /** every deployment of every group, by id (one entry per target and model) */
  readonly deployments: ReadonlyMap<string, Deployment>
  readonly health: HealthBoard
  readonly #byGlob: ReadonlyArray<{ pattern: RegExp, target: UpstreamTarget }>
  readonly #globs = new Map<UpstreamTarget, readonly string[]>()

  constructor (config: Pick<GatewayConfig, 'modelGroups' | 'targets' | 'upstream'>, byName: ReadonlyMap<string, UpstreamTarget>, health: HealthBoard) {
    this.health = health
    const byGlob: Array<{ pattern: RegExp, target: UpstreamTarget }> = []
    for (const [name, target] of byName) {
      const globs = name === 'default' ? config.upstream.models : config.targets[name]?.models ?? []
      const pattern = globPattern(globs)
      if (pattern !== null) byGlob.push({ pattern, target })
      this.#globs.set(target, globs)
    }
    this.#byGlob = byGlob
    const deployments = new Map<string, Deployment>()
    const groups = new Map<string, ModelGroup>()
    for (const [name, g] of Object.entries(config.modelGroups)) {
      groups.set(name, {
        name,
        strategy: g.strategy,
        deployments: g.deployments.map(d => {
          const id = `${d.target}/${d.model}`
          // one object per target and model: strategy state and health are shared
          const known = deployments.get(id)
          if (known !== undefined) return known
          const made: Deployment = { id, targetId: `@${d.target}`, target: byName.get(d.target) as UpstreamTarget, model: d.model, weight: d.weight, current: 0 }
          deployments.set(id, made)
          return made
        }),
        retry: {
          connect: g.retryOn.includes('connect'),
          timeout: g.retryOn.includes('timeout'),
          tooMany: g.retryOn.includes('429'),
          serverError: g.retryOn.includes('5xx'),
          errorEvent: g.retryOn.includes('error-event')
        },
        maxAttempts: g.maxAttempts,
        allowedFails: g.allowedFails,
        cooldownMs: g.cooldownMs,
        contextWindowFallback: null,
        streamResume: g.streamResume,
        routed: 0,
        health
      })
    }
    for (const [name, g] of Object.entries(config.modelGroups)) {
      if (g.contextWindowFallback !== '') (groups.get(name) as ModelGroup).contextWindowFallback = groups.get(g.contextWindowFallback) ?? null
    }
    this.groups = groups
    this.deployments = deployments
  }

  /** Whether anything routes by model: otherwise a request pays for nothing of this. */
  get active (): boolean {
    return this.groups.size > 0 || this.#byGlob.length > 0
  }

  /** The group a model name stands for. */
  group (model: string): ModelGroup | undefined {
    return this.groups.size === 0 ? undefined : this.groups.get(model)
  }

  /** `targetFor`, for a form whose model field arrives later (src/upstream/plan.ts: FormModel) */
  readonly formRoute = (model: string): UpstreamTarget | null => this.targetFor(model)

  /** A target's `models` globs as configured. */
  globsOf (target: UpstreamTarget): string[] {
    return [...this.#globs.get(target) ?? []]
  }

  /** Whether some target declares `models`. */
  get byGlob (): boolean {
    return this.#byGlob.length > 0
  }

  /** The first target whose `models` globs match `model`. */
  targetFor (model: string): UpstreamTarget | null {
    for (const { pattern, target } of this.#byGlob) if (pattern.test(model)) return target
    return null
  }
}

/** A realtime session's `?model=` (its model is in the query, not in a body). */
function queryModel (url: string): string | null {
  const query = url.indexOf('?')
  return query === -1 ? null : new URLSearchParams(url.slice(query + 1)).get('model')
}

/**
 * The plan of a request whose target no header, path or Host fixed (`plan.byModel`): a model
 * group its model names (a JSON body on a `/v1/` path: the gateway rewrites the model of each
 * attempt), else the first target whose `models` globs match, else the target planned already
 * (`routing.defaultTarget`). A group's `target` is the first deployment the client may use and
 * that takes the request (its dialect: refusals and request plugins read it), or, when it may use
 * none, the first, whose refusal it then gets.
 */
export function planByModel (request: FastifyRequest, router: ModelRouter): void {
  const plan = request.upstream
  const model = plan.model ?? (request.ws ? queryModel(request.url) : null)
  if (model === null) return
  const group = router.group(model)
  if (group !== undefined && request.proxyBody?.json != null && plan.apiPath.startsWith('/v1/')) {
    plan.group = group
    const first = group.deployments.find(d => mayUse(request, d.target) && takesRequest(request, d.target)) ??
      group.deployments.find(d => mayUse(request, d.target)) ?? group.deployments[0]
    plan.target = first.target
    return
  }
  const target = router.targetFor(model)
  if (target !== null) plan.target = target
}

export interface DeploymentView {
  id: string
  model: string
  groups: string[]
  healthy: boolean
  /** ISO time the cooldown ends; null when in rotation */
  coolingUntil: string | null
  recentFailures: Array<{ at: string, errorClass: string }>
  /** moving average of the time to the first byte (this process), ms */
  latencyMs: number | null
  inFlight: number
  successes: number
  failures: number
}

export interface TargetView {
  name: string
  provider: string
  /** the target's own state: its health check; a target without one is always healthy */
  healthy: boolean
  coolingUntil: string | null
  models: string[]
  deployments: DeploymentView[]
}

function isoOrNull (until: number, now: number): string | null {
  return until > now ? new Date(until).toISOString() : null
}

/** Every target and the deployments on it, with their health: what `GET /admin/targets` shows. */
export function targetsView (router: ModelRouter, byName: ReadonlyMap<string, UpstreamTarget>, now = Date.now()): TargetView[] {
  const health = router.health
  const groupsOf = new Map<string, string[]>()
  for (const g of router.groups.values()) for (const d of g.deployments) groupsOf.set(d.id, [...groupsOf.get(d.id) ?? [], g.name])
  return [...byName.values()].map(target => {
    const own = health.cooldowns.until(`@${target.name}`)
    const deployments = [...router.deployments.values()].filter(d => d.target === target).map(d => {
      const until = health.coolingUntil(d.id, d.targetId)
      const s = health.stats(d.id)
      return {
        id: d.id,
        model: d.model,
        groups: groupsOf.get(d.id) ?? [],
        healthy: until <= now,
        coolingUntil: isoOrNull(until, now),
        recentFailures: s.recentFailures.map(f => ({ at: new Date(f.at).toISOString(), errorClass: f.errorClass })),
        latencyMs: s.latencyMs === null ? null : Math.round(s.latencyMs * 10) / 10,
        inFlight: s.inFlight,
        successes: s.successes,
        failures: s.failures
      }
    })
    return { name: target.name, provider: target.provider, healthy: own <= now, coolingUntil: isoOrNull(own, now), models: router.globsOf(target), deployments }
  })
}
