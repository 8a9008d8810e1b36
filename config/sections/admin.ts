import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

/**
 * The admin token guarding `/admin/*`. Without one the admin routes answer 404: never open
 * (seed 001 left its admin route open when no token was set).
 */
export const adminSchema = Type.Object({
  token: Type.String({ default: '', description: 'bearer token for /admin/*; empty → admin routes are off (404)' })
}, { additionalProperties: false, default: {} })

export const admin: ConfigSection = {
  key: 'admin',
  schema: adminSchema,
  options: [
    { path: 'admin.token', env: ['GATEWAY_ADMIN_TOKEN', 'ADMIN_TOKEN'], type: 'string', secret: true, doc: 'token for /admin/* (Authorization: Bearer); empty = admin routes off', seed: '001' }
  ]
}
