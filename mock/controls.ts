import type { IncomingHttpHeaders } from 'node:http'

export const FAULT_KINDS = [
  'reset-before-headers',
  'hang-before-headers',
  'reset-mid-stream',
  'hang-mid-stream',
  'garbage',
  'invalid-sse',
  'wrong-content-length',
  'big-header'
] as const

export type FaultKind = typeof FAULT_KINDS[number]

/** Per-request behaviour, read from the optional `x-mock-*` request headers. */
export interface Controls {
  chunks: number
  delayMs: number
  /** Error status to answer with (400-599), if any. */
  status?: number
  /** Value for a `retry-after` response header on errors. */
  retryAfter?: string
  holdToken?: string
  contextId?: string
  splitTag: boolean
  splitNetwork: boolean
  cumulativeUsage: boolean
  fault?: FaultKind
  /** Size of binary downloads, when asked for. */
  bytes?: number
  /** True when `x-mock-chunks` was sent (binary downloads then split accordingly). */
  explicitChunks: boolean
  /** Reasoning deltas before the answer (`x-mock-reasoning`): Chat's `reasoning_content`, Anthropic's thinking block. */
  reasoning: number
  /** Prompt tokens reported as read from the cache (`x-mock-cached-tokens`). */
  cachedTokens: number
}

export interface ControlDefaults {
  chunks: number
  delayMs: number
}

function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

function nonNegativeInt (value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

function errorStatus (value: string | undefined): number | undefined {
  const n = nonNegativeInt(value)
  return n !== undefined && n >= 400 && n <= 599 ? n : undefined
}

function faultKind (value: string | undefined): FaultKind | undefined {
  return (FAULT_KINDS as readonly string[]).includes(value ?? '') ? value as FaultKind : undefined
}

/**
 * Reads the control headers. Most requests carry none of them, so the common
 * case is a handful of missed property lookups.
 */
export function readControls (headers: IncomingHttpHeaders, defaults: ControlDefaults): Controls {
  const chunks = nonNegativeInt(header(headers, 'x-mock-chunks'))
  return {
    chunks: chunks ?? defaults.chunks,
    delayMs: nonNegativeInt(header(headers, 'x-mock-delay-ms')) ?? defaults.delayMs,
    status: errorStatus(header(headers, 'x-mock-status')),
    retryAfter: header(headers, 'x-mock-retry-after'),
    holdToken: header(headers, 'x-mock-hold'),
    contextId: header(headers, 'x-mock-context-id'),
    splitTag: header(headers, 'x-mock-split-tag') === '1',
    splitNetwork: header(headers, 'x-mock-split-network') === '1',
    cumulativeUsage: header(headers, 'x-mock-usage') === 'cumulative',
    fault: faultKind(header(headers, 'x-mock-fault')),
    bytes: nonNegativeInt(header(headers, 'x-mock-bytes')),
    explicitChunks: chunks !== undefined,
    reasoning: nonNegativeInt(header(headers, 'x-mock-reasoning')) ?? 0,
    cachedTokens: nonNegativeInt(header(headers, 'x-mock-cached-tokens')) ?? 0
  }
}
