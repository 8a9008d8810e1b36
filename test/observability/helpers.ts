/**
 * Shared bits of the observability tests: reading usage records out of captured log lines, with
 * bounded polling (a record is written when the server sees the response end, which can be a
 * moment after the client read it).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { GatewayHandle } from '../helper.js'
import type { UsageRecord } from '../../src/usage/recorder.js'

export type LoggedRecord = UsageRecord & { msg: string, level: number }

/** HTTP requests: the access line carrying the record; realtime sessions: a `usage` line. */
export function usageRecords (gw: GatewayHandle): LoggedRecord[] {
  return gw.logs.map(l => JSON.parse(l) as LoggedRecord).filter(l => l.msg === 'usage' || (l.msg === 'request completed' && 'totalTokens' in l))
}

/** The usage record of one request id, waiting up to ~5 s for it. */
export async function recordOf (gw: GatewayHandle, requestId: string): Promise<LoggedRecord> {
  for (let i = 0; i < 500; i++) {
    const found = usageRecords(gw).find(r => r.requestId === requestId)
    if (found !== undefined) return found
    await sleep(10)
  }
  throw new Error(`no usage record for ${requestId}`)
}

/** Waits (bounded) until `check` holds. */
export async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await sleep(10)
  }
  throw new Error(`timed out waiting for: ${what}`)
}
