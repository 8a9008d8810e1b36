import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

export const ipFilterSchema = Type.Object({
  allow: Type.Array(Type.String(), { default: [], description: 'addresses/CIDRs allowed to connect; non-empty → everyone else gets 403' }),
  deny: Type.Array(Type.String(), { default: [], description: 'addresses/CIDRs refused with 403' }),
  exemptHealth: Type.Boolean({ default: false, description: 'let every address reach /healthz and /ping (probes from unlisted addresses)' })
}, { additionalProperties: false, default: {} })

export const ipFilter: ConfigSection = {
  key: 'ipFilter',
  schema: ipFilterSchema,
  options: [
    { path: 'ipFilter.allow', env: ['GATEWAY_IP_ALLOW'], type: 'list', doc: 'allowed client addresses/CIDRs (comma list); non-empty denies everyone else', seed: '004 ip_whitelist' },
    { path: 'ipFilter.deny', env: ['GATEWAY_IP_DENY'], type: 'list', doc: 'refused client addresses/CIDRs (comma list)', seed: '004 ip_blacklist' },
    { path: 'ipFilter.exemptHealth', env: ['GATEWAY_IP_FILTER_EXEMPT_HEALTH'], type: 'boolean', doc: 'health probes (/healthz, /ping) skip the address checks' }
  ]
}
