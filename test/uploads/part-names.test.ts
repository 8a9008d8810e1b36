/**
 * Which part of a form is its `model` field, on UploadLimiter alone: busboy (@fastify/busboy) reads
 * an RFC 2231 `name*=UTF-8''model` as the name `model`, where other parsers (and the gateway before
 * it) read no name. A part's name counts only where the gateway's own reading of its header
 * (form-framing.ts) gives the same plain name, so such a part is never the model field (the Azure
 * deployment, the usage record), while parts busboy skips (no disposition, not `form-data`) do not
 * put the parts after them out of step; random forms of such parts check it at large
 * (HARDENING_FUZZ_FORM_RUNS raises the count). The fork's size limits keep their meaning: a value or
 * a file of exactly the limit passes, one byte more is refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { UploadLimiter, type UploadLimits } from '../../src/uploads/limiter.js'
import { UploadFieldTooLargeError, UploadFileTooLargeError } from '../../src/errors.js'
import { rawForm, type RawPart } from './forms.js'

const LIMITS: UploadLimits = { maxTotalBytes: 1 << 30, maxFileBytes: 1 << 30, maxFiles: 10, maxFields: 10, maxFieldBytes: 1 << 20 }
const FILE: RawPart = { headers: ['Content-Disposition: form-data; name="file"; filename="a.wav"', 'Content-Type: audio/wav'], content: Buffer.alloc(3000, 9) }
const field = (disposition: string, content: string): RawPart => ({ headers: [`Content-Disposition: ${disposition}`], content })

/** Streams the form through a limiter holding for its model field, in chunks of `size`. */
async function read (parts: RawPart[], size: number, limits = LIMITS): Promise<{ held: string | null, told: string[], out: Buffer, body: Buffer, error: Error | null }> {
  const form = rawForm(parts)
  const limiter = new UploadLimiter({ 'content-type': form.type }, limits, null, { maxBytes: 1 << 20 })
  const told: string[] = []
  limiter.onModelField = (value) => told.push(value)
  const out: Buffer[] = []
  limiter.on('data', (c: Buffer) => out.push(c))
  const finished = new Promise<Error | null>((resolve) => { limiter.once('end', () => resolve(null)); limiter.once('error', resolve) })
  for (let i = 0; i < form.body.length && !limiter.destroyed; i += size) {
    if (!limiter.write(form.body.subarray(i, i + size))) await new Promise((resolve) => { limiter.once('drain', resolve); limiter.once('close', resolve) })
  }
  if (!limiter.destroyed) limiter.end()
  const error = await finished
  const held = await limiter.modelField!.then((m) => m, () => null)
  return { held, told, out: Buffer.concat(out), body: form.body, error }
}

test('a name*= part is no model field; the plainly named one after it is, whatever the chunking', async () => {
  const parts = [FILE, field("form-data; name*=UTF-8''model", 'gpt-4o-transcribe'), field('form-data; name="model"', 'whisper-1')]
  for (const size of [1, 13, 500, 1 << 16]) {
    const r = await read(parts, size)
    assert.equal(r.error, null)
    assert.equal(r.held, 'whisper-1', `chunks of ${size}`)
    assert.deepEqual(r.told, ['whisper-1'], `chunks of ${size}: the usage record's model`)
    assert.ok(r.out.equals(r.body), 'the bytes pass unchanged')
  }
})

test('parts busboy skips or cannot name plainly do not put the names after them out of step', async () => {
  const parts = [
    { headers: ['Content-Type: text/plain'], content: 'no disposition at all' },
    field('attachment; name="model"', 'skipped-by-busboy'),
    field('form-data', 'no name'),
    field('form-data; name=""', 'empty name'),
    { headers: ['Content-Disposition: form-data; name="model"', 'Content-Disposition: form-data; name="other"'], content: 'two dispositions' },
    field('form-data; name="model"; name*=UTF-8\'\'x', 'name and name*'),
    FILE,
    field('Form-Data ; name=model', 'whisper-1'),
    field('form-data; name="model"', 'second')
  ]
  const r = await read(parts, 7)
  assert.equal(r.error, null)
  assert.equal(r.held, 'whisper-1')
  assert.deepEqual(r.told, ['whisper-1', 'second'])
})

test('after a part whose framing is not plain, the parts no longer pair up: no later part names the model', async () => {
  // a folded header line: busboy reads it otherwise than a strict reader, so the reading stops there
  const parts = [{ headers: ['Content-Disposition: form-data;', ' name="prompt"'], content: 'x' }, field('form-data; name="model"', 'whisper-1')]
  const r = await read(parts, 1 << 16)
  assert.equal(r.error, null)
  assert.equal(r.held, null)
  assert.deepEqual(r.told, [])
  assert.ok(r.out.equals(r.body), 'the form still passes, for the upstream to judge')
})

test('a value or a file of exactly the limit passes; one byte more is refused with the limit\'s 413', async () => {
  const limits = { ...LIMITS, maxFieldBytes: 100, maxFileBytes: 3000 }
  assert.equal((await read([FILE, field('form-data; name="prompt"', 'p'.repeat(100))], 512, limits)).error, null)
  const field101 = await read([FILE, field('form-data; name="prompt"', 'p'.repeat(101))], 512, limits)
  assert.ok(field101.error instanceof UploadFieldTooLargeError, String(field101.error))
  const file3001 = await read([{ ...FILE, content: Buffer.alloc(3001, 9) }], 512, limits)
  assert.ok(file3001.error instanceof UploadFileTooLargeError, String(file3001.error))
})

/** Header variants of a part: whether it names the model plainly, and whether its lines are plain (the pairing holds past it). */
const VARIANTS: Array<{ headers: string[], plainModel: boolean, plainLines: boolean }> = [
  { headers: ['Content-Disposition: form-data; name="model"'], plainModel: true, plainLines: true },
  { headers: ['content-disposition: form-data; name=model', 'Content-Type: text/plain'], plainModel: true, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="prompt"'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="file"; filename="a.wav"', 'Content-Type: audio/wav'], plainModel: false, plainLines: true },
  { headers: ["Content-Disposition: form-data; name*=UTF-8''model"], plainModel: false, plainLines: true },
  { headers: ["Content-Disposition: form-data; name=\"x\"; name*=UTF-8''model"], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="model"; name="x"'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="x"; name="model"'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="model"', 'Content-Disposition: form-data; name="x"'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: attachment; name="model"'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data; name="model"; junk'], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data'], plainModel: false, plainLines: true },
  { headers: ['Content-Type: text/plain'], plainModel: false, plainLines: true },
  { headers: [], plainModel: false, plainLines: true },
  { headers: ['Content-Disposition: form-data;', ' name="model"'], plainModel: false, plainLines: false },
  { headers: ['X-Junk', 'Content-Disposition: form-data; name="model"'], plainModel: false, plainLines: false },
  { headers: ['Content-Disposition: form-data; name="model"\nX: y'], plainModel: false, plainLines: false },
  { headers: ["Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%0d.wav"], plainModel: false, plainLines: false }
]

test('random forms: the model field is always a part that names it plainly, and the first such while the framing is plain', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.nat(VARIANTS.length - 1), { minLength: 1, maxLength: 8 }),
    fc.integer({ min: 1, max: 400 }),
    async (picks, size) => {
      const parts = picks.map((v, i) => ({ headers: VARIANTS[v].headers, content: `value-${i}` }))
      const r = await read(parts, size)
      const plainModels = picks.flatMap((v, i) => VARIANTS[v].plainModel ? [`value-${i}`] : [])
      if (r.held !== null) assert.ok(plainModels.includes(r.held), `${r.held} is a part named model plainly`)
      for (const told of r.told) assert.ok(plainModels.includes(told), `${told} is a part named model plainly`)
      const firstOdd = picks.findIndex(v => !VARIANTS[v].plainLines)
      const firstModel = picks.findIndex(v => VARIANTS[v].plainModel)
      if (firstModel !== -1 && (firstOdd === -1 || firstModel < firstOdd)) assert.equal(r.held, `value-${firstModel}`)
      assert.ok(r.out.equals(r.body), 'the bytes pass unchanged')
    }
  ), { numRuns: Number(process.env.HARDENING_FUZZ_FORM_RUNS ?? 200), seed: 18 })
})
