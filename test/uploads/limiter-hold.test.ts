/**
 * UploadLimiter's model-field hold, on its own: whatever the chunking, the bytes come out
 * unchanged and in order, nothing comes out before the model field was read, and the field's
 * value (or null) is told once; past the bound the body is refused with model_field_too_late.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { UploadLimiter } from '../../src/uploads/limiter.js'
import { multipartForm, type FormPart } from './forms.js'

const LIMITS = { maxTotalBytes: 1 << 30, maxFileBytes: 1 << 30, maxFiles: 10, maxFields: 10, maxFieldBytes: 1 << 20 }
const BOUNDARY = 'hold-test'
const HEADERS = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }

function form (parts: FormPart[]): Buffer {
  return multipartForm(parts, BOUNDARY).body
}

/** Writes `part` in chunks of `size`, with backpressure. */
async function feed (limiter: UploadLimiter, part: Buffer, size: number): Promise<void> {
  for (let i = 0; i < part.length && !limiter.destroyed; i += size) {
    if (!limiter.write(part.subarray(i, i + size))) await new Promise((resolve) => { limiter.once('drain', resolve); limiter.once('close', resolve) })
  }
}

/**
 * Feeds the body in chunks of `size`, pausing after `pauseAt` bytes to see what came out by then;
 * resolves with all that came out, that early part, the model told (null also when the promise
 * rejected) and the stream's error.
 */
async function run (body: Buffer, size: number, maxBytes: number, opts: { headers?: Record<string, string>, pauseAt?: number } = {}): Promise<{ out: Buffer, early: number, model: string | null, error: Error | null }> {
  const limiter = new UploadLimiter(opts.headers ?? HEADERS, LIMITS, null, { maxBytes })
  const out: Buffer[] = []
  limiter.on('data', (c: Buffer) => out.push(c))
  const told = limiter.modelField!.then((m) => m, () => null)
  const finished = new Promise<Error | null>((resolve) => { limiter.once('end', () => resolve(null)); limiter.once('error', resolve) })
  const pauseAt = opts.pauseAt ?? body.length
  await feed(limiter, body.subarray(0, pauseAt), size)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const early = Buffer.concat(out).length
  await feed(limiter, body.subarray(pauseAt), size)
  if (!limiter.destroyed) limiter.end()
  const error = await finished
  return { out: Buffer.concat(out), early, model: await told, error }
}

test('the model field after a file: held, then everything in order, whatever the chunk size', async () => {
  const file = Buffer.alloc(50_000, 7)
  const body = form([file, ['model', 'whisper-1'], ['language', 'en']])
  // busboy reports a field once the boundary after it arrived: stop just short of that
  const fieldComplete = body.indexOf(`whisper-1\r\n--${BOUNDARY}`) + 'whisper-1\r\n--'.length + BOUNDARY.length
  for (const size of [1, 7, 1000, 65_536, body.length]) {
    const r = await run(body, size, 1 << 20, { pauseAt: fieldComplete - 1 })
    assert.equal(r.error, null)
    assert.equal(r.early, 0, `nothing passed on before the field was read (chunks of ${size})`)
    assert.equal(r.model, 'whisper-1', `chunks of ${size}`)
    assert.ok(r.out.equals(body), `bytes unchanged (chunks of ${size})`)
  }
})

test('the model field as the last part, the first part, or absent', async () => {
  const file = Buffer.alloc(10_000, 1)
  for (const [parts, expected] of [
    [[file, ['model', 'last']], 'last'],
    [[['model', 'first'], file], 'first'],
    [[file, ['prompt', 'x']], null]
  ] as Array<[FormPart[], string | null]>) {
    const body = form(parts)
    const r = await run(body, 333, 1 << 20)
    assert.equal(r.error, null)
    assert.equal(r.model, expected)
    assert.ok(r.out.equals(body))
  }
})

test('a form that cannot be parsed is not held: no model, bytes pass', async () => {
  const body = Buffer.from('this is not a multipart body at all, no boundary in it')
  const r = await run(body, 5, 1 << 20, { headers: { 'content-type': 'multipart/form-data' } })
  assert.equal(r.model, null)
  assert.ok(r.out.equals(body))
})

test('past the bound without the field: refused with model_field_too_late, nothing passed on', async () => {
  const body = form([Buffer.alloc(100_000, 2), ['model', 'whisper-1']])
  const r = await run(body, 4096, 30_000)
  assert.equal((r.error as Error & { code?: string })?.code, 'GW_UPLOAD_MODEL_FIELD_LATE')
  assert.equal((r.error as Error & { statusCode?: number })?.statusCode, 400)
  assert.equal(r.out.length, 0)
  assert.equal(r.model, null, 'the promise rejected (read as null here)')
})
