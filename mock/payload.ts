/**
 * Deterministic binary content for downloads and speech: the byte at offset
 * i is i % 251. A prime period keeps chunk boundaries from lining up with
 * the pattern, so a reordered or duplicated chunk changes the hash.
 */
const PERIOD = 251

/** Precomputed pattern, a whole number of periods, long enough for any default-sized chunk. */
const PATTERN = Buffer.allocUnsafe(PERIOD * 512)
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = i % PERIOD

/** `length` bytes of the mock payload starting at `offset`. */
export function mockPayload (length: number, offset = 0): Buffer {
  const start = offset % PERIOD
  // Slicing the shared pattern is free; only oversized chunks need a copy.
  if (start + length <= PATTERN.length) return PATTERN.subarray(start, start + length)
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length;) {
    const from = (offset + i) % PERIOD
    i += PATTERN.copy(out, i, from, Math.min(PATTERN.length, from + length - i))
  }
  return out
}
