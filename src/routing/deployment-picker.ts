/**
 * The order in which a group's deployments are tried for one request. Deployments out of rotation
 * (cooling down, or on a target that failed its health check) are left out; when every one is,
 * they are all tried, the one that comes back first first: trying is better than refusing locally
 * (the key pools do the same).
 *
 * - fallback: the configured order;
 * - weighted: the first by smooth weighted round robin (nginx's, as the key pools), then the others
 *   in the configured order;
 * - least-latency: by the moving average of the time to the first byte, a deployment without one
 *   first; every EXPLORE_EVERY-th request puts the one tried first longest ago first instead, so a
 *   deployment that was slow gets a sample now and then and wins its traffic back once it recovered.
 */
import type { Deployment, ModelGroup } from './model-groups.js'
import type { HealthBoard } from './health.js'

export const EXPLORE_EVERY = 10

/** When each deployment was last put first (least-latency's exploration), by id. */
const lastFirst = new WeakMap<Deployment, number>()

export function attemptOrder (group: ModelGroup, health: HealthBoard, now = Date.now()): readonly Deployment[] {
  const turn = group.routed++
  // the usual case, every deployment in rotation, in order: the group's own list, no copy
  if (group.strategy === 'fallback' && allReady(group.deployments, health, now)) return group.deployments
  const ready: Deployment[] = []
  let cooling: Deployment[] | null = null
  for (const d of group.deployments) {
    if (health.coolingUntil(d.id, d.targetId) > now) (cooling ??= []).push(d)
    else ready.push(d)
  }
  if (ready.length === 0) {
    const list = cooling ?? []
    return list.sort((a, b) => health.coolingUntil(a.id, a.targetId) - health.coolingUntil(b.id, b.targetId))
  }
  if (ready.length === 1) return ready
  if (group.strategy === 'weighted') return weightedFirst(ready)
  if (group.strategy === 'least-latency') return fastestFirst(ready, health, turn)
  return ready
}

function allReady (deployments: readonly Deployment[], health: HealthBoard, now: number): boolean {
  for (const d of deployments) if (health.coolingUntil(d.id, d.targetId) > now) return false
  return true
}

function weightedFirst (ready: Deployment[]): Deployment[] {
  let best: Deployment | null = null
  let total = 0
  for (const d of ready) {
    d.current += d.weight
    total += d.weight
    if (best === null || d.current > best.current) best = d
  }
  const first = best as Deployment
  first.current -= total
  return moveFirst(ready, first)
}

function fastestFirst (ready: Deployment[], health: HealthBoard, turn: number): Deployment[] {
  const latency = (d: Deployment): number => health.latency(d.id) ?? -1
  ready.sort((a, b) => latency(a) - latency(b))
  if (turn % EXPLORE_EVERY === EXPLORE_EVERY - 1) {
    let stalest = ready[0]
    for (const d of ready) if ((lastFirst.get(d) ?? 0) < (lastFirst.get(stalest) ?? 0)) stalest = d
    moveFirst(ready, stalest)
  }
  lastFirst.set(ready[0], turn + 1)
  return ready
}

function moveFirst (list: Deployment[], first: Deployment): Deployment[] {
  const i = list.indexOf(first)
  if (i > 0) {
    list.splice(i, 1)
    list.unshift(first)
  }
  return list
}
