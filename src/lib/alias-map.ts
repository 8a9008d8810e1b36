/**
 * Key renaming for `field_aliases`: keys only, at every depth, through objects and arrays (arrays
 * nested in arrays included); values are never changed. One pass, no chaining (a→b, b→c renames
 * `a` to `b`, not to `c`), so a map means what it says; when a renamed key meets an existing one
 * the later key in the object wins, at the position of the first, as the files users bring expect
 * (docs/transforms.md).
 *
 * Objects are rebuilt only where a key changes, everything else is edited in place, and the
 * caller learns whether anything changed at all: an untouched body is forwarded byte for byte.
 */

export type AliasMap = ReadonlyMap<string, string>

/** Deeper than any real request; protects the recursion (and the JSON.stringify that follows). */
export const MAX_DEPTH = 512

export class TooDeepError extends Error {
  constructor () {
    super(`JSON nested deeper than ${MAX_DEPTH} levels`)
  }
}

export function aliasMap (record: Readonly<Record<string, string>> | undefined): AliasMap {
  return new Map(Object.entries(record ?? {}).filter(([from, to]) => from !== to))
}

/** `{from: to}` becomes `{to: from}`; throws when two keys map to the same name (ambiguous). */
export function reverseAliases (map: AliasMap): AliasMap {
  const out = new Map<string, string>()
  for (const [from, to] of map) {
    const other = out.get(to)
    if (other !== undefined) throw new Error(`field aliases: "${other}" and "${from}" both become "${to}"; the reverse mapping is ambiguous`)
    out.set(to, from)
  }
  return out
}

/** A merged map: the per-target entries override the global ones. */
export function mergeAliases (base: AliasMap, over: AliasMap): AliasMap {
  if (over.size === 0) return base
  if (base.size === 0) return over
  return new Map([...base, ...over])
}

export interface Renamed { value: unknown, changed: boolean }

/** Renames keys in `value` (edited in place where possible); returns the value and whether it changed. */
export function renameKeys (value: unknown, map: AliasMap): Renamed {
  if (map.size === 0) return { value, changed: false }
  const state = { changed: false }
  const out = rename(value, map, state, 0)
  return { value: out, changed: state.changed }
}

function rename (value: unknown, map: AliasMap, state: { changed: boolean }, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value
  if (depth > MAX_DEPTH) throw new TooDeepError()
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      if (item === null || typeof item !== 'object') continue
      const renamed = rename(item, map, state, depth + 1)
      if (renamed !== item) value[i] = renamed
    }
    return value
  }
  const obj = value as Record<string, unknown>
  let renames = false
  for (const key in obj) {
    if (map.has(key)) { renames = true; break }
  }
  if (!renames) {
    for (const key in obj) {
      const child = obj[key]
      if (child === null || typeof child !== 'object') continue
      const renamed = rename(child, map, state, depth + 1)
      if (renamed !== child) setOwn(obj, key, renamed)
    }
    return obj
  }
  state.changed = true
  const out: Record<string, unknown> = {}
  for (const key in obj) {
    const child = obj[key]
    setOwn(out, map.get(key) ?? key, child !== null && typeof child === 'object' ? rename(child, map, state, depth + 1) : child)
  }
  return out
}

/** `__proto__` from JSON is an ordinary key: define it, never assign it (that would set the prototype). */
function setOwn (obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  else obj[key] = value
}
