/**
 * The query string of `GET /admin/usage`: `since` / `until` (ISO 8601, epoch seconds or
 * milliseconds, or a duration back from now: `90s`, `15m`, `24h`, `7d`) and `group`
 * (`key` (alias `client`), `model`, `target` or `day` (UTC); none for totals only).
 */
import type { UsageGroup, UsageQuery } from './store.js'
import { BadQueryError } from '../errors.js'

export class QueryError extends Error {}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const GROUP_NAMES: Record<string, UsageGroup> = { key: 'key', client: 'key', model: 'model', target: 'target', day: 'day' }

export function parseTime (value: string, now: number, name: string): number {
  const text = value.trim()
  const relative = /^(\d+)([smhd])$/.exec(text)
  if (relative !== null) return now - Number(relative[1]) * UNITS[relative[2]]
  if (/^\d+$/.test(text)) {
    const n = Number(text)
    // ten digits or fewer are seconds (until the year 2286), more are milliseconds
    return text.length <= 10 ? n * 1000 : n
  }
  const parsed = Date.parse(text)
  if (Number.isNaN(parsed)) throw new QueryError(`${name}=${JSON.stringify(value.slice(0, 64))}: expected an ISO 8601 time, epoch seconds or ms, or a duration like 15m, 24h, 7d`)
  return parsed
}

function single (value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new QueryError(`${name}: given more than once`)
  return value
}

export function parseUsageQuery (query: Record<string, unknown>, now: number, retentionMs: number): UsageQuery {
  const sinceText = single(query.since, 'since')
  const untilText = single(query.until, 'until')
  const groupText = single(query.group, 'group')
  const oldest = now - retentionMs
  const since = sinceText !== undefined && sinceText !== '' ? parseTime(sinceText, now, 'since') : oldest
  const explicitUntil = untilText !== undefined && untilText !== ''
  const until = explicitUntil ? parseTime(untilText, now, 'until') : now
  if (explicitUntil && until < since) throw new QueryError('until: earlier than since')
  let group: UsageGroup | null = null
  if (groupText !== undefined && groupText !== '') {
    group = GROUP_NAMES[groupText] ?? null
    if (group === null) throw new QueryError(`group=${JSON.stringify(groupText.slice(0, 64))}: expected key, model, target or day`)
  }
  // nothing older than the retention is kept, nothing newer than now exists
  return { since: Math.max(since, oldest), until: Math.min(until, now), group }
}

/** The query of an admin request (`/admin/usage`, `/admin/spend`): a bad parameter is a 400 naming it. */
export function requestedUsageQuery (query: Record<string, unknown>, retentionMs: number): UsageQuery {
  try {
    return parseUsageQuery(query, Date.now(), retentionMs)
  } catch (err) {
    if (err instanceof QueryError) throw new BadQueryError(err.message)
    throw err
  }
}
