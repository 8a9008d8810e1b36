import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

export const uploadsSchema = Type.Object({
  maxTotalBytes: Type.Integer({ default: GiB + MiB, minimum: 1024, description: 'largest streamed request body (uploads, audio); room for a 1 GiB file plus its form fields' }),
  maxFileBytes: Type.Integer({ default: GiB, minimum: 1, description: 'largest file part of a multipart upload' }),
  maxFiles: Type.Integer({ default: 20, minimum: 0, description: 'file parts per multipart upload' }),
  maxFields: Type.Integer({ default: 100, minimum: 0, description: 'non-file fields per multipart upload' }),
  maxFieldBytes: Type.Integer({ default: MiB, minimum: 1, description: 'largest non-file field value' }),
  modelFieldHoldBytes: Type.Integer({ default: 32 * MiB, minimum: 0, description: 'a multipart form to an Azure deployment operation is held in memory until its model field, up to this many bytes (400 beyond; 0: not held, no deployment in the path)' })
}, { additionalProperties: false, default: {} })

export const uploads: ConfigSection = {
  key: 'uploads',
  schema: uploadsSchema,
  options: [
    { path: 'uploads.maxTotalBytes', env: ['GATEWAY_UPLOAD_MAX_TOTAL_BYTES'], type: 'integer', doc: 'largest streamed (non-JSON) request body, 413 above' },
    { path: 'uploads.maxFileBytes', env: ['GATEWAY_UPLOAD_MAX_FILE_BYTES'], type: 'integer', doc: 'largest file in a multipart upload, 413 above' },
    { path: 'uploads.maxFiles', env: ['GATEWAY_UPLOAD_MAX_FILES'], type: 'integer', doc: 'most files in a multipart upload, 413 above' },
    { path: 'uploads.maxFields', env: ['GATEWAY_UPLOAD_MAX_FIELDS'], type: 'integer', doc: 'most non-file fields in a multipart upload, 413 above' },
    { path: 'uploads.maxFieldBytes', env: ['GATEWAY_UPLOAD_MAX_FIELD_BYTES'], type: 'integer', doc: 'largest non-file field value, 413 above' },
    { path: 'uploads.modelFieldHoldBytes', env: ['GATEWAY_UPLOAD_MODEL_FIELD_HOLD_BYTES'], type: 'integer', doc: 'Azure targets: how much of a multipart form (audio transcription, image edit) is held in memory while its model field, which names the deployment, has not arrived; 400 beyond, 0 = never held' }
  ]
}
