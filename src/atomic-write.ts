/**
 * State on disk is replaced atomically: the new content goes to a temporary file in the same
 * directory, is flushed to disk (fsync), then renamed over the old file, and the directory entry
 * is flushed too. A crash at any point leaves either the old file or the new one, never half of
 * one (seed 002 rewrote black.json in place with fs.writeFile).
 */
import { randomBytes } from 'node:crypto'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export async function writeFileAtomic (path: string, data: string | Buffer): Promise<void> {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
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
