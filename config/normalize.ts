/**
 * Checks and normal forms that JSON schema cannot express: URLs, bare hosts.
 * Runs once after validation, before the config is frozen.
 */
import type { GatewayConfig } from './schema.js'
import { ConfigError } from './errors.js'
import { normalizeAuth } from './sections/auth.js'
import { checkTransforms } from './sections/transforms.js'
import { normalizeAbuse } from './abuse.js'

/** A bare host (`api.openai.com`, `host:8443`) means https; a full URL keeps its scheme. */
export function normalizeBaseUrl (value: string, where: string): string {
  if (value === 'mock') return value
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new ConfigError(`${where} = ${JSON.stringify(value)}: expected a URL like https://api.openai.com or a bare host`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${where} = ${JSON.stringify(value)}: expected an http:// or https:// URL`)
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(`${where} = ${JSON.stringify(value)}: credentials in the URL are not allowed (use the key setting)`)
  }
  return url.origin + url.pathname.replace(/\/+$/, '')
}

export function postProcess (config: GatewayConfig, origins: Map<string, string>): void {
  const where = `upstream.url (${origins.get('upstream.url') ?? 'default'})`
  config.upstream.url = normalizeBaseUrl(config.upstream.url, where)
  normalizeAuth(config, origins)
  checkTransforms(config)
  // one BASE_PATH (seed 002) for every file the gateway keeps: black.json beside logs/
  if (config.blacklist.dir === '' && config.storage.basePath !== '') config.blacklist.dir = config.storage.basePath
  normalizeAbuse(config, origins)
}
