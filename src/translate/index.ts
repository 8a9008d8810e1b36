/**
 * Dialect translation: which dialect a client speaks (its route) and a target offers (its
 * provider, or its `dialects`), and the one function that decides the translation of an attempt,
 * `translationFor(client, target)`: null when the target speaks the client's dialect (the bytes
 * pass untouched), else the direction. See docs/translation.md.
 */
import type { UpstreamTarget } from '../upstream/target.js'
import { messagesToChat } from './messages-to-chat.js'
import { chatToMessages } from './chat-to-messages.js'
import { responsesToChat } from './responses-to-chat.js'
import { responsesToMessages } from './responses-to-messages.js'
import type { Dialect, Direction } from './types.js'

export type { Dialect, Direction } from './types.js'

/** The dialect a client speaks, from the API path (query and trailing slash aside); null: not translated. */
export function clientDialect (apiPath: string): Dialect | null {
  const q = apiPath.indexOf('?')
  const path = q === -1 ? apiPath : apiPath.slice(0, q)
  switch (path) {
    case '/v1/messages': return 'messages'
    case '/v1/chat/completions': return 'chat'
    case '/v1/responses': return 'responses'
    default: return null
  }
}

/** Directions by client dialect, then by the upstream dialect they translate to, in order of preference. */
const DIRECTIONS: Partial<Record<Dialect, readonly Direction[]>> = {
  messages: [messagesToChat],
  chat: [chatToMessages],
  responses: [responsesToChat, responsesToMessages]
}

/**
 * The translation of an attempt on `target` for a client speaking `client`: null when the target
 * speaks it (pass-through) or when no direction reaches the target (the request goes as it is,
 * as before translation existed, and the upstream answers for itself).
 */
export function translationFor (client: Dialect | null, target: UpstreamTarget): Direction | null {
  if (client === null || target.dialects.includes(client)) return null
  for (const direction of DIRECTIONS[client] ?? []) {
    if (target.dialects.includes(direction.upstream)) return direction
  }
  return null
}

/** A direction by its dialects' names (the golden files' folders), or null. */
export function directionByName (client: string, upstream: string): Direction | null {
  return DIRECTIONS[client as Dialect]?.find(d => d.upstream === upstream) ?? null
}
