/**
 * Checks of the files and folders the configuration names, which schema validation cannot see:
 * every CA file is readable and holds a PEM certificate, the price file (`pricing.file`) is
 * readable (its prices are checked when the gateway starts), and the data directory (BASE_PATH) is a
 * writable directory or can be created. The command runs them before it starts and for
 * `--check-config`, so a mistyped path is a one-line exit-2 error like any other bad setting.
 * Nothing is created or written here.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { GatewayConfig } from './schema.js'
import { ConfigError } from './errors.js'

function where (path: string, value: string, origins: Map<string, string>): string {
  return `${path} (${origins.get(path) ?? 'config'}) = ${JSON.stringify(value)}`
}

function checkCaFile (path: string, file: string, origins: Map<string, string>): void {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${where(path, file, origins)}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}; expected a readable PEM file)`)
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`${where(path, file, origins)}: expected a PEM file with at least one certificate`)
}

/** The directory, or the nearest folder that exists above it, must be writable. */
function checkDataDir (path: string, dir: string, origins: Map<string, string>): void {
  let probe = resolve(dir)
  for (;;) {
    let isDir: boolean
    try {
      isDir = statSync(probe).isDirectory()
    } catch {
      const parent = dirname(probe)
      if (parent === probe) break
      probe = parent
      continue
    }
    if (!isDir) throw new ConfigError(`${where(path, dir, origins)}: ${probe} is not a directory (expected a writable directory)`)
    try {
      accessSync(probe, constants.W_OK | constants.X_OK)
    } catch {
      const what = probe === resolve(dir) ? 'is not writable' : `cannot be created in ${probe}`
      throw new ConfigError(`${where(path, dir, origins)}: ${what} (expected a writable directory)`)
    }
    return
  }
}

function checkPriceFile (file: string, origins: Map<string, string>): void {
  try {
    accessSync(file, constants.R_OK)
  } catch (err) {
    throw new ConfigError(`${where('pricing.file', file, origins)}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}; expected a JSON or YAML price table)`)
  }
}

export function preflight (config: GatewayConfig, origins: Map<string, string>): void {
  if (config.pricing.file !== '') checkPriceFile(config.pricing.file, origins)
  if (config.upstream.caFile !== '') checkCaFile('upstream.caFile', config.upstream.caFile, origins)
  for (const [name, target] of Object.entries(config.targets)) {
    if (target.caFile !== undefined && target.caFile !== '' && target.caFile !== config.upstream.caFile) {
      checkCaFile(`targets.${name}.caFile`, target.caFile, origins)
    }
  }
  if (config.storage.basePath !== '') checkDataDir('storage.basePath', config.storage.basePath, origins)
  if (config.blacklist.dir !== '' && config.blacklist.dir !== config.storage.basePath) checkDataDir('blacklist.dir', config.blacklist.dir, origins)
}
