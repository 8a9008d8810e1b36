/**
 * Runs the mock upstream as its own process (benchmarks, demo):
 *
 *   tsx mock/cli.ts [--port N] [--chunks N] [--delay-ms N]
 *
 * Prints exactly one JSON line, {"mock":"http://127.0.0.1:PORT"}, once it
 * listens, and exits cleanly on SIGTERM or SIGINT.
 */
import { parseArgs } from 'node:util'
import { startMockUpstream } from './upstream.js'

function intFlag (values: Record<string, string | undefined>, name: string): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${raw}'`)
  return n
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      chunks: { type: 'string' },
      'delay-ms': { type: 'string' }
    }
  })
  const mock = await startMockUpstream({
    port: intFlag(values, 'port') ?? 0,
    chunks: intFlag(values, 'chunks'),
    delayMs: intFlag(values, 'delay-ms'),
    // Nobody can read the records of a separate process; keep memory flat under load.
    record: false
  })
  process.stdout.write(JSON.stringify({ mock: mock.url }) + '\n')

  const stop = (): void => {
    mock.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

main().catch((err: unknown) => {
  process.stderr.write(`mock upstream: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
