import { Type } from '@sinclair/typebox'
import type { ConfigSection } from '../types.js'

/**
 * Which peers may tell us the client's address. Default none: the socket address is the client,
 * and a client-sent X-Forwarded-For changes nothing (seed 002 recorded it, seed 004 trusted
 * X-Real-IP from anyone).
 */
export const clientIpSchema = Type.Object({
  trustedProxies: Type.Array(Type.String(), {
    default: [],
    description: 'addresses or CIDR networks of reverse proxies whose X-Forwarded-For is believed; also loopback | linklocal | uniquelocal'
  })
}, { additionalProperties: false, default: {} })

export const clientIp: ConfigSection = {
  key: 'clientIp',
  schema: clientIpSchema,
  options: [
    { path: 'clientIp.trustedProxies', env: ['GATEWAY_TRUSTED_PROXIES'], flags: ['trusted-proxies'], type: 'list', doc: 'reverse proxies (addresses, CIDRs, loopback) whose X-Forwarded-For names the client; default none' }
  ]
}
