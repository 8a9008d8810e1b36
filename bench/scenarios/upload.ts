/**
 * Scenario 7: a 1 GiB multipart upload to /v1/files, generated on the fly (the harness never holds
 * more than one 64 KiB block of it), with a content-length as SDKs send for files. The mock
 * streams it through busboy and answers with the byte count it saw, which the harness checks.
 */
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import type { BenchPath, RunContext, Scenario } from '../context.js'
import { MiB, rssBytes, sampleRss } from '../processes.js'
import { fmt, type Row } from '../report.js'

const RSS_GROWTH_TARGET = 64 * MiB
const BLOCK = 64 * 1024

interface UploadResult { ok: boolean, detail: string, rssBefore: number, rssPeak: number, seconds: number }

function multipart (bytes: number): { body: Readable, length: number, contentType: string } {
  const boundary = `gwbench${randomBytes(12).toString('hex')}`
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.jsonl"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n'
  )
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  // one block, sent again and again: bytes that can never form the boundary
  const block = Buffer.alloc(BLOCK, 'x')
  async function * generate (): AsyncGenerator<Buffer> {
    yield head
    for (let sent = 0; sent < bytes; sent += BLOCK) yield bytes - sent >= BLOCK ? block : block.subarray(0, bytes - sent)
    yield tail
  }
  return { body: Readable.from(generate(), { objectMode: false }), length: head.length + bytes + tail.length, contentType: `multipart/form-data; boundary=${boundary}` }
}

async function upload (path: BenchPath, ctx: RunContext): Promise<UploadResult> {
  const bytes = ctx.sizes.uploadBytes
  const pid = path.pid ?? 0
  const rssBefore = rssBytes(pid)
  const sampler = sampleRss(pid, 50)
  const started = performance.now()
  const { body, length, contentType } = multipart(bytes)
  let ok = false
  let detail = ''
  try {
    const res = await request(`${path.url}/v1/files`, {
      method: 'POST',
      body,
      headers: { 'content-type': contentType, 'content-length': String(length), authorization: `Bearer ${ctx.keys.next()}` },
      headersTimeout: 300_000,
      bodyTimeout: 300_000
    })
    const text = await res.body.text()
    if (res.statusCode !== 200) {
      detail = `HTTP ${res.statusCode}: ${text.slice(0, 120)}`
    } else {
      const seen = (JSON.parse(text) as { bytes?: number }).bytes
      ok = seen === bytes
      detail = ok ? '' : `upstream saw ${String(seen)} bytes of ${bytes}`
    }
  } catch (err) {
    detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  }
  const seconds = (performance.now() - started) / 1000
  const { peak } = sampler.stop()
  return { ok, detail, rssBefore, rssPeak: peak, seconds }
}

export const bigUpload: Scenario = {
  id: 7,
  title: 'multipart upload',
  mock: 'process',
  async run (group, ctx) {
    const pipe = await upload(group.pipe, ctx)
    const gateway = await upload(group.gateway, ctx)
    const size = ctx.sizes.uploadBytes >= 1024 * MiB ? `${ctx.sizes.uploadBytes / 1024 / MiB} GiB` : `${ctx.sizes.uploadBytes / MiB} MiB`
    const name = `7. ${size} ${this.title}`
    const growth = (r: UploadResult): number => r.rssPeak - r.rssBefore
    const rate = (r: UploadResult): string => r.ok ? fmt(ctx.sizes.uploadBytes / MiB / r.seconds, 0) : 'n/a'
    const rows: Row[] = [
      {
        scenario: name,
        measure: 'upload complete, byte count checked',
        pipe: pipe.ok ? 'yes' : `no: ${pipe.detail}`,
        gateway: gateway.ok ? 'yes' : `no: ${gateway.detail}`,
        target: 'yes',
        pass: gateway.ok
      },
      {
        scenario: name,
        measure: 'proxy RSS growth MiB (before → peak)',
        pipe: `${fmt(growth(pipe) / MiB, 1)} (${fmt(pipe.rssBefore / MiB, 0)} → ${fmt(pipe.rssPeak / MiB, 0)})`,
        gateway: `${fmt(growth(gateway) / MiB, 1)} (${fmt(gateway.rssBefore / MiB, 0)} → ${fmt(gateway.rssPeak / MiB, 0)})`,
        target: `< ${RSS_GROWTH_TARGET / MiB} MiB`,
        pass: growth(gateway) < RSS_GROWTH_TARGET
      },
      { scenario: name, measure: 'MiB/s', pipe: rate(pipe), gateway: rate(gateway) }
    ]
    return rows
  }
}
