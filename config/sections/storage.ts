/**
 * Where the gateway keeps files: seed 002's `BASE_PATH` (log files under `BASE_PATH/logs/`).
 * Empty: nothing is written to disk and logs go to stdout only.
 */
import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const storageSchema = Type.Object({
  basePath: Type.String({ default: '', description: 'directory for state and log files; empty = stdout only, nothing on disk' })
}, { additionalProperties: false, default: {} })

export const storage: ConfigSection = {
  key: 'storage',
  schema: storageSchema,
  options: [
    { path: 'storage.basePath', env: ['GATEWAY_BASE_PATH', 'BASE_PATH'], flags: ['base-path'], type: 'string', doc: 'directory for files: rotating logs in BASE_PATH/logs/ (usage, access, error); empty = stdout only', seed: '002 BASE_PATH' }
  ]
}
