/**
 * Where log lines go.
 * - stdout: JSON lines; pretty (pino-pretty, a dev dependency) only on a terminal, or when asked.
 * - With `storage.basePath` (seed 002's BASE_PATH), rotating files under `BASE_PATH/logs/`
 *   written by pino-roll in pino transport workers, so file I/O stays off the request thread:
 *   `usage.*.jsonl` (one usage record per request), `access.*.log` (one access line per request),
 *   `error.*.log` (every warn and error line). One JSON object per line (seed 002 wrote
 *   double-encoded strings), every line through the same secret filter as stdout.
 *
 * A log directory that cannot be written costs one warn line and the files: requests are served
 * as before, and a file that fails later is dropped the same way.
 */
import { accessSync, constants, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pino, type DestinationStream, type Logger } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import { loggerOptions, serializePlainFields } from './logging.js'
import { LineBatch } from './lib/line-batch.js'

export interface LogFiles {
  dir: string
  /** usage records, one JSON object per line, ISO time */
  usage: Logger
  /** access lines */
  access: Logger
}

declare module 'fastify' {
  interface FastifyInstance {
    /** loggers writing to the files under BASE_PATH/logs; null without a base path */
    logFiles: LogFiles | null
  }
}

export interface LogOutputs {
  /** the stream of the main logger */
  main: DestinationStream
  files: LogFiles | null
  /** problems to log once the logger exists (unwritable directory, missing pino-pretty) */
  problems: string[]
  /** tells about a file that failed after start; set once the logger exists */
  onFailure: (message: string) => void
  /** flushes and closes the files and transports */
  close: () => Promise<void>
}

interface Closable {
  end: () => void
  once: (event: 'close', fn: () => void) => unknown
  on: (event: 'error', fn: (err: Error) => void) => unknown
  write: (s: string) => boolean
}

/**
 * A transport stream that can fail (disk full, directory removed, worker gone) without taking a
 * log call, and so a request, down with it: the first failure is told once, later writes are dropped.
 */
class GuardedStream implements DestinationStream {
  readonly #inner: Closable
  readonly #name: string
  readonly #outputs: LogOutputs
  #failed = false

  constructor (inner: Closable, name: string, outputs: LogOutputs) {
    this.#inner = inner
    this.#name = name
    this.#outputs = outputs
    inner.on('error', (err) => this.#fail(err))
  }

  write (s: string): boolean {
    if (this.#failed) return true
    try {
      return this.#inner.write(s)
    } catch (err) {
      this.#fail(err)
      return true
    }
  }

  #fail (err: unknown): void {
    if (this.#failed) return
    this.#failed = true
    this.#outputs.onFailure(`log file ${this.#name} stopped: ${(err as Error)?.message ?? String(err)}; its lines are dropped, requests are served as before`)
  }

  close (): Promise<void> {
    return new Promise((resolve) => {
      // a worker that died (or never finished starting) may never say 'close': bounded wait, and
      // not unref'd, so a shutdown waiting on it cannot end with a pending promise
      const timer = setTimeout(resolve, 2000)
      this.#inner.once('close', () => { clearTimeout(timer); resolve() })
      try {
        this.#inner.end()
      } catch {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}

/** `file` carries its extension (pino-roll 4.0 ignores its `extension` option): usage.jsonl → usage.<date>.<n>.jsonl */
function rollOptions (file: string, log: GatewayConfig['log']): Record<string, unknown> {
  return {
    file,
    mkdir: true,
    size: log.fileMaxSize,
    limit: { count: log.fileKeep },
    ...(log.rotate !== 'none' ? { frequency: log.rotate, dateFormat: log.rotate === 'daily' ? 'yyyy-MM-dd' : 'yyyy-MM-dd-HH' } : {})
  }
}

/** Checks the directory on the request of the operator, before any worker starts. */
function prepareDir (basePath: string): { dir: string | null, problem: string | null } {
  const dir = join(basePath, 'logs')
  try {
    mkdirSync(dir, { recursive: true })
    accessSync(dir, constants.W_OK)
    return { dir, problem: null }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    return { dir: null, problem: `log directory ${dir} cannot be written (${code}): logging to stdout only` }
  }
}

function hasPinoPretty (): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

/**
 * stdout, buffered: lines are written in batches of about 4 KiB (a dozen access lines) instead of
 * one write each (src/lib/line-batch.ts gathers them; sonic-boom writes each batch as it comes);
 * a quiet gateway still writes its lines within 200 ms, and what is left is flushed when the
 * process exits.
 *
 * `sync` (the default, as pino's own): each batch is written on the event loop. `async` hands
 * each batch to libuv's thread pool and its completion back, which costs more CPU per request
 * but never blocks: where stdout can stop draining for long (a stalled log collector), `async`
 * lets memory grow instead of stalling every request.
 */
function stdoutStream (log: GatewayConfig['log'], problems: string[]): DestinationStream {
  const pretty = log.format === 'pretty' || (log.format === 'auto' && process.stdout.isTTY === true)
  if (pretty && hasPinoPretty()) {
    return pino.transport({ target: 'pino-pretty', options: { destination: 1, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } })
  }
  if (log.format === 'pretty') problems.push('log.format is pretty but pino-pretty is not installed (a dev dependency): JSON lines instead')
  const stream = new LineBatch(pino.destination({ dest: 1, sync: log.stdoutWrites === 'sync', minLength: 0 }))
  flushAtExit(stream)
  return stream
}

/**
 * pino does not know the batch in front of its destination: without this, the last lines (the
 * shutdown line among them) would be lost at exit. One 'exit' listener for every such stream.
 */
const heldAtExit = new Set<{ flushSync: () => void, destroyed?: boolean }>()
function flushAtExit (stream: { flushSync: () => void, destroyed?: boolean }): void {
  if (heldAtExit.size === 0) {
    process.once('exit', () => {
      for (const s of heldAtExit) {
        try {
          if (s.destroyed !== true) s.flushSync()
        } catch {
          // stdout already gone: nothing left to write to
        }
      }
    })
  }
  heldAtExit.add(stream)
}

export function openLogOutputs (config: GatewayConfig, secrets: readonly string[], destination?: NodeJS.WritableStream): LogOutputs {
  const guarded: GuardedStream[] = []
  const outputs: LogOutputs = {
    main: null as unknown as DestinationStream,
    files: null,
    problems: [],
    onFailure: (message) => { outputs.problems.push(message) },
    close: async () => { await Promise.all(guarded.map(g => g.close())) }
  }
  const stdout = destination ?? stdoutStream(config.log, outputs.problems)
  outputs.main = stdout
  if (config.storage.basePath === '') return outputs

  const { dir, problem } = prepareDir(config.storage.basePath)
  if (dir === null) {
    outputs.problems.push(problem as string)
    return outputs
  }
  const open = (name: string): GuardedStream => {
    const stream = new GuardedStream(pino.transport({ target: 'pino-roll', options: rollOptions(join(dir, name), config.log) }), name, outputs)
    guarded.push(stream)
    return stream
  }
  const base = loggerOptions({ level: 'info', secrets })
  const fileLogger = (stream: DestinationStream): Logger => {
    const logger = pino({ ...base, base: null, timestamp: pino.stdTimeFunctions.isoTime }, stream)
    serializePlainFields(logger)
    return logger
  }
  outputs.files = { dir, usage: fileLogger(open('usage.jsonl')), access: fileLogger(open('access.log')) }
  const errors = open('error.log')
  outputs.main = pino.multistream([{ level: 'trace', stream: stdout }, { level: 'warn', stream: errors }])
  return outputs
}
