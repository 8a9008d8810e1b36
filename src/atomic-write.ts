/**
 * State on disk is replaced atomically: the new content goes to a temporary file in the same
 * directory, is flushed to disk (fsync), then renamed over the old file, and the directory entry
 * is flushed too. A crash at any point leaves either the old file or the new one, never half of
 * one (seed 002 rewrote black.json in place with fs.writeFile).
 */
import { randomBytes } from 'node:crypto'
import { readdirSync, rmSync } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

function tempName (path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
}

export async function writeFileAtomic (path: string, data: string | Buffer): Promise<void> {
  const dir = dirname(path)
  const tmp = tempName(path)
  try {
    const file = await open(tmp, 'w', 0o600)
    try {
      await file.writeFile(data)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  await syncDirectory(dir)
}

/** Makes the rename itself durable; some filesystems refuse to fsync a directory, which is fine. */
async function syncDirectory (dir: string): Promise<void> {
  let handle
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch {
    // not supported here (e.g. some network or Windows filesystems): the rename is still atomic
  } finally {
    await handle?.close()
  }
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes the temporary files a killed process left beside `path` (a crash between creating the
 * temporary file and renaming it). Called once at boot, before this process writes anything, so
 * a temporary file carrying our own pid is from an earlier life (in a container the pid is the
 * same on every start); one of another process still running is left alone. Returns the names
 * removed; never throws.
 */
export function removeStaleTemps (path: string): string[] {
  const prefix = `.${basename(path)}.`
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(dirname(path))
  } catch {
    return removed
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length)) : null
    if (m === null) continue
    const pid = Number(m[1])
    if (pid !== process.pid && isRunning(pid)) continue
    try {
      rmSync(join(dirname(path), name), { force: true })
      removed.push(name)
    } catch {
      // unwritable directory: the next boot tries again
    }
  }
  return removed
}
