/** Bounded polling: waits until `check` holds, failing after `tries` × `intervalMs`. */
export async function until (what: string, check: () => boolean | Promise<boolean>, tries = 200, intervalMs = 25): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  throw new Error(`timed out waiting until ${what}`)
}
