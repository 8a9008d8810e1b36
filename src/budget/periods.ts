/**
 * Budget periods: calendar windows in UTC. A window has an index (its start, as a string that
 * names it in keys) and an end, when the budget resets; `total` is one window that never ends.
 */
export const PERIODS = ['minute', 'hour', 'day', 'week', 'month', 'total'] as const
export type Period = typeof PERIODS[number]

export interface Window {
  /** names the window in store keys: its start in ms since the epoch ('total' for ever) */
  id: string
  /** ms since the epoch when the window ends and the budget resets; Infinity for `total` */
  end: number
}

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

function fixed (now: number, size: number): Window {
  const start = now - (now % size)
  return { id: String(start), end: start + size }
}

/** The window of `period` that `now` (ms) falls in. Weeks start on Monday, as ISO 8601 weeks do. */
export function windowOf (period: Period, now: number): Window {
  switch (period) {
    case 'minute': return fixed(now, MINUTE)
    case 'hour': return fixed(now, HOUR)
    case 'day': return fixed(now, DAY)
    case 'week': {
      const dayStart = now - (now % DAY)
      // 1970-01-01 was a Thursday: days since the last Monday
      const sinceMonday = (Math.floor(dayStart / DAY) + 3) % 7
      const start = dayStart - sinceMonday * DAY
      return { id: String(start), end: start + 7 * DAY }
    }
    case 'month': {
      const d = new Date(now)
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
      return { id: String(start), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) }
    }
    case 'total': return { id: 'total', end: Infinity }
  }
}

/** Whole seconds until the window ends (at least 1), for `Retry-After`; null for a budget that never resets. */
export function secondsUntil (end: number, now: number): number | null {
  return Number.isFinite(end) ? Math.max(1, Math.ceil((end - now) / 1000)) : null
}
