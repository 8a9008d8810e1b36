/**
 * WebSocket sub-protocols on the realtime route.
 *
 * Browsers cannot set headers on a WebSocket, so OpenAI's browser clients put the API key in a
 * sub-protocol: `openai-insecure-api-key.<key>`. For the gateway that key is the *client* key (the
 * auth plugin reads it on the upgrade request); it is never offered upstream and never echoed.
 *
 * The client's handshake completes before the upstream one starts (so early messages can be
 * queued), so the protocol echoed to the client cannot wait for the upstream's choice. It is
 * picked from the client's offer by the same rule OpenAI's server (and the mock) applies:
 * `realtime` when offered, else the first other non-key offer. The upstream is then offered the
 * non-key protocols with that choice first, so a server following the rule picks the same one.
 */
export const KEY_PROTOCOL_PREFIX = 'openai-insecure-api-key.'

export function isKeyProtocol (protocol: string): boolean {
  return protocol.startsWith(KEY_PROTOCOL_PREFIX)
}

/** The client key carried in the offered sub-protocols, if any. */
export function keyFromProtocols (offered: Iterable<string>): string | null {
  for (const protocol of offered) {
    if (isKeyProtocol(protocol)) return protocol.slice(KEY_PROTOCOL_PREFIX.length)
  }
  return null
}

/** The protocol to echo to the client (`ws`'s handleProtocols contract: a name, or false for none). */
export function chooseProtocol (offered: Set<string>): string | false {
  if (offered.has('realtime')) return 'realtime'
  for (const protocol of offered) {
    if (!isKeyProtocol(protocol)) return protocol
  }
  return false
}

/** Parses a Sec-WebSocket-Protocol header the way `ws` does (comma-separated tokens, in order). */
export function offeredProtocols (header: string | string[] | undefined): string[] {
  if (header === undefined) return []
  const text = Array.isArray(header) ? header.join(',') : header
  return text.split(',').map(p => p.trim()).filter(p => p !== '')
}

/** What the upstream is offered: every non-key protocol, the one echoed to the client first. */
export function upstreamProtocols (offered: string[], chosen: string): string[] {
  const rest = offered.filter(p => !isKeyProtocol(p) && p !== chosen)
  return chosen === '' ? rest : [chosen, ...rest]
}
