/** A configuration problem: printed as one line at boot, exit code 2, never a stack trace. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}
