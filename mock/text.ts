import type { Controls } from './controls.js'

/**
 * Text with 2- and 3-byte UTF-8 characters: split-network mode needs
 * multi-byte characters to cut through.
 */
export const UNICODE_SAMPLE = 'héllo wörld 你好'

/** The i-th content token of an answer. */
export function tokenText (i: number, unicode: boolean): string {
  return unicode ? `tok${i} ${UNICODE_SAMPLE} ` : `tok${i} `
}

/** The marker tests use to check that a gateway passes context through. */
export function contextTag (id: string): string {
  return `\n[CONTEXT_ID:${id}]`
}

/**
 * The context tag as separate deltas. Split mode cuts it after "CONTEXT" and
 * through the middle of the id, so a consumer scanning each delta on its own
 * can never see the whole tag.
 */
function tagDeltas (id: string, split: boolean): string[] {
  if (!split) return [contextTag(id)]
  const half = Math.ceil(id.length / 2)
  return ['\n[CONTEXT', `_ID:${id.slice(0, half)}`, `${id.slice(half)}]`]
}

/** Content deltas of a streamed answer: one per token, then the optional tag. */
export function answerDeltas (controls: Controls): string[] {
  const deltas: string[] = []
  for (let i = 0; i < controls.chunks; i++) deltas.push(tokenText(i, controls.splitNetwork))
  if (controls.contextId !== undefined) deltas.push(...tagDeltas(controls.contextId, controls.splitTag))
  return deltas
}

/** The whole answer text; identical to the concatenated stream deltas. */
export function answerText (controls: Controls): string {
  return answerDeltas(controls).join('')
}
