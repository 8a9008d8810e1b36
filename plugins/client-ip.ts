/**
 * `request.clientIp`: the client's address in the one normal form (src/abuse/ip.ts) that the
 * address filter, the blacklist, the rate limiter and log lines all use.
 *
 * Which address that is comes from Fastify's `trustProxy`, set in src/server.ts from
 * `clientIp.trustedProxies`: with none configured it is the socket peer and X-Forwarded-For is
 * ignored; with trusted proxies it is the first untrusted hop of X-Forwarded-For, read from the
 * right, so a client cannot prepend an address of its choosing.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { clientIpOf } from '../src/lib/ip.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** normal-form client address (IPv4-mapped IPv6 → IPv4, no brackets or zone) */
    readonly clientIp: string
  }
}

/** memo of clientIp: several plugins read it, and request.ip walks X-Forwarded-For each time */
const kMemo = Symbol('client ip')
type Memo = FastifyRequest & { [kMemo]: string | null }

const clientIp: FastifyPluginAsync = async (fastify) => {
  fastify.decorateRequest(kMemo, null)
  fastify.decorateRequest('clientIp', {
    getter (this: FastifyRequest) { return ((this as Memo)[kMemo] ??= clientIpOf(this.ip)) }
  })
}

export default fp(clientIp, { name: 'gateway-client-ip', fastify: '5.x' })
