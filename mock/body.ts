import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { Busboy, type BusboyHeaders } from '@fastify/busboy'
import type { MockFile, MockRequest } from './types.js'

/** Bodies up to this size are kept as `bodyText` in the request record. */
export const TEXT_LIMIT = 1024 * 1024

/** JSON API bodies are buffered up to this size so that large prompts still get parsed. */
export const JSON_LIMIT = 64 * 1024 * 1024

export type BodyMode = 'json' | 'raw' | 'multipart'

interface RawBody {
  bytes: number
  sha256: string
  /** The body, when it fit within the keep limit. */
  kept?: Buffer
}

/** Reads the body, hashing as it flows and keeping at most `keepLimit` bytes of it. */
function readRaw (req: IncomingMessage, keepLimit: number): Promise<RawBody> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    const chunks: Buffer[] = []
    let bytes = 0
    let keep = true
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
      if (!keep) return
      if (bytes <= keepLimit) {
        chunks.push(chunk)
      } else {
        keep = false
        chunks.length = 0
      }
    })
    req.once('end', () => resolve({
      bytes,
      sha256: hash.digest('hex'),
      // Small bodies usually arrive in one chunk: no copy then.
      kept: !keep ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes)
    }))
    req.once('error', reject)
    req.once('close', () => { if (!req.complete) reject(new Error('request body aborted')) })
  })
}

const LOOKS_LIKE_JSON = /^\s*[[{]/

/** Parses text that looks like JSON; anything else is simply not JSON. */
function parseJson (text: string): unknown {
  if (!LOOKS_LIKE_JSON.test(text)) return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

async function consumeRaw (req: IncomingMessage, record: MockRequest, keepLimit: number): Promise<unknown> {
  const body = await readRaw(req, keepLimit)
  record.bodyBytes = body.bytes
  record.bodySha256 = body.sha256
  if (body.kept === undefined || body.bytes === 0) return undefined
  const text = body.kept.toString('utf8')
  if (body.bytes <= TEXT_LIMIT) record.bodyText = text
  const json = parseJson(text)
  if (json !== undefined) record.json = json
  return json
}

function isMultipart (req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
}

/** Hashes one file part as it streams past; nothing of it is kept. */
function hashFile (stream: NodeJS.ReadableStream, file: MockFile): Promise<void> {
  const hash = createHash('sha256')
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      file.bytes += chunk.length
    })
    stream.once('end', () => {
      file.sha256 = hash.digest('hex')
      resolve()
    })
    stream.once('error', reject)
  })
}

/** The body could not be parsed; the client gets a 400 for it. */
export class MalformedBodyError extends Error {
  override name = 'MalformedBodyError'
}

function parseMultipart (req: IncomingMessage, record: MockRequest): Promise<void> {
  const parser = Busboy({ headers: req.headers as BusboyHeaders })
  const files: MockFile[] = []
  const fields: Record<string, string> = {}
  const fileDone: Array<Promise<void>> = []
  parser.on('file', (field, stream, filename: string | undefined, _encoding, mimeType) => {
    const file: MockFile = { field, filename: filename ?? '', mimeType, bytes: 0, sha256: '' }
    files.push(file)
    fileDone.push(hashFile(stream, file))
  })
  parser.on('field', (name, value) => { fields[name] = value })
  record.files = files
  record.fields = fields
  return new Promise<void>((resolve, reject) => {
    // busboy's 'finish' comes once every part was reported
    parser.once('finish', () => { Promise.all(fileDone).then(() => resolve(), reject) })
    // an unheard second 'error' would throw
    parser.on('error', reject)
    req.once('error', reject)
    req.pipe(parser)
  })
}

/**
 * Streams a multipart body through busboy: files are hashed on the fly (never
 * held in memory), fields are recorded, and the raw body is hashed too.
 */
async function consumeMultipart (req: IncomingMessage, record: MockRequest): Promise<void> {
  const rawHash = createHash('sha256')
  let rawBytes = 0
  req.on('data', (chunk: Buffer) => {
    rawHash.update(chunk)
    rawBytes += chunk.length
  })
  try {
    await parseMultipart(req, record)
  } catch (err) {
    // Let the rest of a malformed body drain so that the 400 can still be read.
    req.unpipe()
    req.resume()
    throw new MalformedBodyError(err instanceof Error ? err.message : String(err))
  }
  record.bodyBytes = rawBytes
  record.bodySha256 = rawHash.digest('hex')
}

/**
 * Consumes the request body into `record` and returns the parsed JSON body,
 * if any. Multipart mode falls back to raw hashing for other content types.
 */
export async function consumeBody (req: IncomingMessage, record: MockRequest, mode: BodyMode): Promise<unknown> {
  if (mode === 'multipart' && isMultipart(req)) {
    await consumeMultipart(req, record)
    return undefined
  }
  return consumeRaw(req, record, mode === 'json' ? JSON_LIMIT : TEXT_LIMIT)
}
