import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary directory (config files, BASE_PATH, working directories). */
export function tempDir (prefix = 'gw-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}
