/**
 * Active health checks (`targets.<name>.healthCheck: { path, intervalMs }`): a GET of `path` every
 * `intervalMs`, with the target's first pool key. A probe that fails (no connection, a timeout, a
 * 5xx or 429) takes every deployment on the target out of rotation until a probe passes (the
 * cooldown is renewed by each failing probe; id `@{target}` in src/routing/health.ts). A passing
 * probe puts it back. Probes never overlap and never fail a request.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { UpstreamTarget } from '../upstream/target.js'
import type { Cooldowns } from './health.js'
import { credentialHeaders } from '../proxy/headers.js'
import { joinUpstreamPath } from './paths.js'

export interface HealthCheckSpec {
  target: UpstreamTarget
  check: { path: string, intervalMs: number }
}

async function probe (target: UpstreamTarget, path: string, timeoutMs: number): Promise<number> {
  const headers: Record<string, string> = { ...target.defaultHeaders, ...target.headers }
  if (target.keys.length > 0) Object.assign(headers, credentialHeaders(target.provider, target.keys[0]))
  const res = await target.dispatcher.request({
    origin: target.origin,
    path: joinUpstreamPath(target.basePath, path),
    method: 'GET',
    headers,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs
  })
  await res.body.dump()
  return res.statusCode
}

/** Starts the probes; returns what stops them. */
export function startHealthChecks (specs: readonly HealthCheckSpec[], cooldowns: Cooldowns, log: FastifyBaseLogger): () => void {
  const timers: NodeJS.Timeout[] = []
  for (const { target, check } of specs) {
    const id = `@${target.name}`
    let running = false
    let down = false
    const run = (): void => {
      if (running) return
      running = true
      const timeoutMs = Math.min(check.intervalMs, target.firstByteTimeoutMs)
      probe(target, check.path, timeoutMs).then(
        (status) => status < 500 && status !== 429 ? null : `status ${status}`,
        (err: unknown) => (err as { code?: string }).code ?? 'unreachable'
      ).then((failure) => {
        if (failure === null) {
          if (down) log.info({ upstream: target.name }, 'health check passed: target back in rotation')
          down = false
          cooldowns.clear(id)
          return
        }
        if (!down) log.warn({ upstream: target.name, failure }, 'health check failed: target out of rotation')
        down = true
        cooldowns.cool(id, Date.now() + 2 * check.intervalMs)
      }).catch(() => {}).finally(() => { running = false })
    }
    const timer = setInterval(run, check.intervalMs)
    timer.unref()
    timers.push(timer)
    setImmediate(run)
  }
  return () => { for (const t of timers) clearInterval(t) }
}
