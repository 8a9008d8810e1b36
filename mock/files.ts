import { requireJsonObject, requireModel, type Exchange } from './exchange.js'
import { pace } from './pacer.js'
import { mockPayload } from './payload.js'
import { sendJson, sendText } from './respond.js'

const DOWNLOAD_BYTES = 1024 * 1024
const SPEECH_BYTES = 64 * 1024
const DOWNLOAD_CHUNK = 64 * 1024
const MAX_IMAGES = 10

/** A 1×1 transparent PNG: the smallest answer image clients will happily decode. */
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII='

function field (ex: Exchange, name: string): string | undefined {
  return ex.record.fields?.[name]
}

/** POST /v1/files: an OpenAI file object describing the first uploaded file (or the raw body). */
export function createFile (ex: Exchange): void {
  const file = ex.record.files?.[0]
  sendJson(ex, 200, JSON.stringify({
    id: `file-mock${ex.record.id}`,
    object: 'file',
    bytes: file?.bytes ?? ex.record.bodyBytes,
    created_at: ex.state.created,
    filename: file?.filename ?? 'upload',
    purpose: field(ex, 'purpose') ?? 'user_data',
    status: 'processed',
    expires_at: null,
    status_details: null
  }))
}

/** POST /v1/audio/transcriptions and /v1/audio/translations */
export function transcription (ex: Exchange): void {
  const format = field(ex, 'response_format')
  if (format === 'text' || format === 'srt' || format === 'vtt') {
    sendText(ex.res, 200, 'text/plain; charset=utf-8', 'mock transcription')
    return
  }
  sendJson(ex, 200, '{"text":"mock transcription"}')
}

/** POST /v1/images/edits and /v1/images/variations */
export function images (ex: Exchange): void {
  const n = Math.min(MAX_IMAGES, Math.max(1, Number(field(ex, 'n') ?? 1) || 1))
  sendJson(ex, 200, JSON.stringify({
    created: ex.state.created,
    data: Array.from({ length: n }, () => ({ b64_json: PNG_1X1 }))
  }))
}

/** POST /v1/uploads/{id}/parts */
export function uploadPart (ex: Exchange): void {
  sendJson(ex, 200, JSON.stringify({
    id: `part_mock${ex.record.id}`,
    object: 'upload.part',
    created_at: ex.state.created,
    upload_id: ex.params[0]
  }))
}

/**
 * Streams `total` payload bytes (headers must be written). Chunks are 64 KiB,
 * or `total / x-mock-chunks` when that header was sent, so that tests can
 * pace or hold a download like a chat stream.
 */
function streamPayload (ex: Exchange, total: number): Promise<void> {
  const { controls } = ex
  const size = controls.explicitChunks && controls.chunks > 0 ? Math.ceil(total / controls.chunks) : DOWNLOAD_CHUNK
  const count = Math.ceil(total / Math.max(size, 1))
  return pace(ex, count, (i) => mockPayload(Math.min(size, total - i * size), i * size))
}

/** GET /v1/files/{id}/content: `x-mock-bytes` (default 1 MiB) of payload, with a content-length. */
export function fileContent (ex: Exchange): Promise<void> {
  const total = ex.controls.bytes ?? DOWNLOAD_BYTES
  ex.res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-disposition': `attachment; filename="${ex.params[0].replace(/[^\w.-]/g, '_')}"`,
    'content-length': total
  })
  return streamPayload(ex, total)
}

/** POST /v1/audio/speech: `x-mock-bytes` (default 64 KiB) of "audio", chunked like real text-to-speech. */
export function speech (ex: Exchange): Promise<void> | undefined {
  const body = requireJsonObject(ex)
  if (body === undefined || requireModel(ex, body) === undefined) return
  ex.res.writeHead(200, { 'content-type': 'audio/mpeg' })
  return streamPayload(ex, ex.controls.bytes ?? SPEECH_BYTES)
}
