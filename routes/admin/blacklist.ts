/**
 * The blacklist admin API (seed 002 had none: unblocking meant editing the file and restarting).
 * - `GET /admin/blacklist` → `{"entries":[{ip, addedAt, reason, expiresAt}], "count"}`
 * - `POST /admin/blacklist` `{ip, ttl?, reason?}` (ttl in ms; none = until removed) → 201 with the entry;
 *   the entry is validated like one read from the file or Redis (`parseEntry`): a ttl ending past
 *   the dates the gateway can keep is a 400
 * - `DELETE /admin/blacklist/{ip}` → `{"removed":"<ip>"}`, 404 when not listed
 * Addresses are taken in any form (brackets, zone id, IPv4-mapped) and stored in normal form.
 * With Redis, changes reach every replica. Being under `/admin`, the shared admin guard
 * (plugins/admin-auth.ts) protects these routes: 404 without an admin token, 401 without the right one.
 */
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { Ajv } from 'ajv'
import { parseEntry } from '../../src/abuse/blacklist.js'
import { canonicalIp } from '../../src/lib/ip.js'
import { InvalidAddressError, InvalidBlacklistEntryError, NotBlacklistedError } from '../../src/errors.js'

const AddBody = Type.Object({
  ip: Type.String({ minLength: 1, maxLength: 100 }),
  ttl: Type.Optional(Type.Integer({ minimum: 1, description: 'ms' })),
  reason: Type.Optional(Type.String({ maxLength: 500 }))
}, { additionalProperties: false })

const IpParams = Type.Object({ ip: Type.String({ minLength: 1, maxLength: 100 }) })

function addressOf (text: string): string {
  const ip = canonicalIp(text)
  if (ip === null) throw new InvalidAddressError(JSON.stringify(text.slice(0, 100)))
  return ip
}

// Fastify's default validator drops unknown keys silently; here a typo (`tll`) must be an error,
// not a permanent block
const strict = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false })

const blacklistRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.setValidatorCompiler(({ schema }) => strict.compile(schema))

  fastify.get('/admin/blacklist', async () => {
    const entries = fastify.blacklist.list()
    return { entries, count: entries.length }
  })

  fastify.post<{ Body: Static<typeof AddBody> }>('/admin/blacklist', { schema: { body: AddBody } }, async (request, reply) => {
    const { ip: text, ttl, reason } = request.body
    const now = Date.now()
    const entry = parseEntry({ ip: addressOf(text), addedAt: now, reason: reason ?? 'added by an admin', expiresAt: ttl === undefined ? null : now + ttl }, now)
    if (typeof entry === 'string') throw new InvalidBlacklistEntryError(entry)
    await fastify.blacklist.add(entry)
    request.log.info({ clientIp: entry.ip, expiresAt: entry.expiresAt }, 'address blacklisted by an admin')
    return reply.code(201).send(entry)
  })

  fastify.delete<{ Params: Static<typeof IpParams> }>('/admin/blacklist/:ip', { schema: { params: IpParams } }, async (request) => {
    const ip = addressOf(request.params.ip)
    if (!await fastify.blacklist.remove(ip)) throw new NotBlacklistedError(ip)
    request.log.info({ clientIp: ip }, 'address removed from the blacklist by an admin')
    return { removed: ip }
  })
}

export default blacklistRoutes
