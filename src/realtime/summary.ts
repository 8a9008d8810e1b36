/**
 * What one realtime session amounted to: logged as one line when it closes and handed to
 * routes/v1/realtime.ts's accounting (metrics and the usage record).
 */
import type { TokenCounts } from '../usage/tokens.js'

export interface RealtimeUsage {
  /** `response.done` events seen */
  responses: number
  inputTokens: number
  outputTokens: number
  totalTokens: number
  /** every token category, for the usage record and its cost */
  counts: TokenCounts
}

export type ClosedBy = 'client' | 'upstream' | 'gateway'

/** How the relay itself ended: counts both ways, close code, who closed, tokens. */
export interface RelayResult {
  /** the upstream accepted the WebSocket */
  upstreamOpened: boolean
  messagesFromClient: number
  messagesToClient: number
  bytesFromClient: number
  bytesToClient: number
  /** close code and reason the client received or sent */
  closeCode: number
  closeReason: string
  closedBy: ClosedBy
  /** summed over the session's `response.done` events; null when there was none */
  usage: RealtimeUsage | null
}

export interface RealtimeSessionSummary extends RelayResult {
  requestId: string
  /** authenticated client name, null without client authentication */
  client: string | null
  target: string
  model: string | null
  /** sub-protocol agreed with the client, '' for none */
  protocol: string
  durationMs: number
}

/** Called once per session, after both sides closed. Must not throw (a throw is logged and ignored). */
export type RealtimeSessionHook = (summary: RealtimeSessionSummary) => void
