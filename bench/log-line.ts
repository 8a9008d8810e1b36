/**
 * Micro-benchmark of one access line, as the gateway writes it: the real logger options
 * (src/logging.ts), a per-request child logger, a file destination, one line per event-loop turn
 * (as requests arrive). CPU time of all threads per line. `before` rebuilds the settings the
 * profiling in docs/performance.md started from: `*.headers[…]` wildcard redact paths and one asynchronous
 * write per line.
 *
 *   node --import tsx bench/log-line.ts [before|after] [lines=100000]
 */
import { openSync, closeSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { pino } from 'pino'
import { CREDENTIAL_HEADERS, REDACTED, loggerOptions } from '../src/logging.js'

const variant = process.argv[2] ?? 'after'
const lines = Number(process.argv[3] ?? 100_000)
const file = join(tmpdir(), `gw-log-line-${process.pid}.log`)
const fd = openSync(file, 'w')
const options = loggerOptions({ level: 'info', secrets: ['sk-bench-upstream-0123456789abcdef'] })
let destination = pino.destination({ dest: fd, sync: false, minLength: 4096, periodicFlush: 200 })
if (variant === 'before') {
  options.redact = { paths: CREDENTIAL_HEADERS.flatMap(h => [`headers["${h}"]`, `*.headers["${h}"]`, `req.headers["${h}"]`]), censor: REDACTED }
  destination = pino.destination({ dest: fd, sync: false })
}
const root = pino(options, destination)

const started = process.cpuUsage()
for (let i = 0; i < lines; i++) {
  root.child({ reqId: `req-${i}` }).info({
    method: 'POST', path: '/v1/chat/completions', status: 200, durationMs: 1.2, upstream: 'default', model: 'gpt-4o-mini', stream: true
  }, 'request completed')
  await nextTurn()
}
destination.flushSync()
const used = process.cpuUsage(started)
closeSync(fd)
rmSync(file, { force: true })
process.stdout.write(`${variant}: ${((used.user + used.system) / lines).toFixed(2)} µs CPU per access line (${lines} lines)\n`)
