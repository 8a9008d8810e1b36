/**
 * Close codes relayed between the two sockets. Codes 1004, 1005, 1006 and 1015 are reserved: they
 * describe what a peer observed and may not be sent in a close frame (RFC 6455 §7.4.1), so they
 * are lifted to sendable ones before being passed on.
 */
const REASON_MAX_BYTES = 123

export type Direction = 'to-client' | 'to-upstream'

/** A code the `ws` library will put in a close frame. */
export function isSendableCode (code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/**
 * 1005 (the peer sent no code) → 1000. 1006 (the connection dropped without a close frame) →
 * 1011 towards the client ("the upstream failed") and 1001 towards the upstream ("the client
 * went away"). Anything else unsendable → 1011.
 */
export function liftCloseCode (code: number, direction: Direction): number {
  if (code === 1005) return 1000
  if (code === 1006) return direction === 'to-client' ? 1011 : 1001
  return isSendableCode(code) ? code : 1011
}

/** The reason to relay: the peer's own, or a default; cut to what fits a close frame (UTF-8 safe). */
export function closeReason (reason: string, fallback = ''): string {
  const text = reason === '' ? fallback : reason
  if (Buffer.byteLength(text) <= REASON_MAX_BYTES) return text
  let cut = text.slice(0, REASON_MAX_BYTES)
  while (Buffer.byteLength(cut) > REASON_MAX_BYTES) cut = cut.slice(0, -1)
  return cut
}
