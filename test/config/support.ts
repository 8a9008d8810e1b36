import assert from 'node:assert/strict'
import { ConfigError } from '../../config/load.js'

/** Runs a config load that must be refused; returns its one-line message. */
export function refusal (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    assert.ok(!err.message.includes('\n'), 'one line')
    return err.message
  }
  assert.fail('expected the configuration to be refused')
}
