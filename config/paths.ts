/** Small helpers for dotted paths in plain config objects. */

export function setPath (obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let cur: Record<string, unknown> = obj
  for (const part of parts.slice(0, -1)) {
    const next = cur[part]
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[part] = {}
    cur = cur[part] as Record<string, unknown>
  }
  cur[parts[parts.length - 1]] = value
}

export function getPath (obj: unknown, path: string): unknown {
  let cur: unknown = obj
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

export function isPlainObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Deep merge where `src` wins; arrays are replaced, not concatenated. */
export function deepMerge (dst: Record<string, unknown>, src: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(src)) {
    if (isPlainObject(v) && isPlainObject(dst[k])) deepMerge(dst[k] as Record<string, unknown>, v)
    else dst[k] = v
  }
  return dst
}

export function deepFreeze<T> (obj: T): T {
  if (obj !== null && typeof obj === 'object' && !Object.isFrozen(obj)) {
    Object.freeze(obj)
    for (const v of Object.values(obj)) deepFreeze(v)
  }
  return obj
}

/**
 * Concrete paths matching a pattern whose `*` segments stand for every key of a map or every index
 * of a list (`targets.*.keys.*.key`); a pattern without `*` is returned as is.
 */
export function expandPath (obj: unknown, pattern: string): string[] {
  if (!pattern.includes('*')) return [pattern]
  let found: Array<{ path: string[], value: unknown }> = [{ path: [], value: obj }]
  for (const part of pattern.split('.')) {
    const next: typeof found = []
    for (const { path, value } of found) {
      if (value === null || typeof value !== 'object') continue
      const keys = part === '*' ? Object.keys(value) : [part]
      for (const k of keys) {
        const child = (value as Record<string, unknown>)[k]
        if (child !== undefined) next.push({ path: [...path, k], value: child })
      }
    }
    found = next
  }
  return found.map(f => f.path.join('.'))
}
