/**
 * Allow and deny lists of addresses and CIDR networks (IPv4 and IPv6, node:net BlockList), checked
 * first, in `onRequest` of the scope that holds every route but the exempt health probes
 * (src/app.ts), before anything else spends work on the request. A denied address
 * gets a 403 in the client's SDK shape. A non-empty allowlist denies every address not on it.
 * Seed 004 compared exact strings against a header anyone could set; here the lists hold
 * networks and are matched against the trusted client address.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { blockListOf, listHas, parseRule, type AddressRule } from '../src/lib/ip.js'
import { IpDeniedError } from '../src/errors.js'

export interface IpFilterOptions {
  ipFilter: GatewayConfig['ipFilter']
}

/** The config lists were normalised at boot (config/abuse.ts), so every entry parses. */
function rulesOf (list: readonly string[]): AddressRule[] {
  return list.map(text => parseRule(text)).filter((r): r is AddressRule => r !== null)
}

/** Addresses whose answer is remembered; past this the memo starts over (a scan cannot grow it). */
const MAX_REMEMBERED = 10_000

const ipFilter: FastifyPluginAsync<IpFilterOptions> = async (fastify, { ipFilter: opts }) => {
  if (opts.allow.length === 0 && opts.deny.length === 0) return // nothing to check: no hook at all
  const deny = opts.deny.length > 0 ? blockListOf(rulesOf(opts.deny)) : null
  const allow = opts.allow.length > 0 ? blockListOf(rulesOf(opts.allow)) : null
  fastify.log.info({ allow: opts.allow.length, deny: opts.deny.length, exemptHealth: opts.exemptHealth }, 'client address filter active')

  // BlockList.check builds a native SocketAddress per call (the largest cost of this hook in the
  // chain profile); the lists are fixed at boot, so each address's answer is kept, in a bounded map
  const decided = new Map<string, boolean>()
  function denied (ip: string): boolean {
    let refused = decided.get(ip)
    if (refused === undefined) {
      refused = (deny !== null && listHas(deny, ip)) || (allow !== null && !listHas(allow, ip))
      if (decided.size >= MAX_REMEMBERED) decided.clear()
      decided.set(ip, refused)
    }
    return refused
  }

  // callback form (a sync check needs no promise); a throw here reaches Fastify like done(err)
  fastify.addHook('onRequest', function filterClientAddress (request, _reply, done) {
    const ip = request.clientIp
    if (denied(ip)) {
      request.log.debug({ clientIp: ip }, 'client address refused by the address filter')
      throw new IpDeniedError()
    }
    done()
  })
}

export default fp(ipFilter, { name: 'gateway-ip-filter', fastify: '5.x', dependencies: ['gateway-client-ip'] })
