/**
 * Client authentication: who may call the gateway, and as whom (`request.client`).
 *
 * An `onRequest` hook of the API scope (src/app.ts: health probes and the admin API, which has
 * its own token, are outside it), so an unknown caller is refused before any body is read (STYLE.md
 * §2.4). Where a key is read from and how it is compared: src/auth/keys.ts; the refusals and the
 * key-guessing limit: src/auth/refusals.ts; the checks of a key restricted to some models, in a
 * `preHandler` once the body is parsed: src/auth/allowed-models.ts.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { GatewayConfig } from '../config/schema.js'
import { describeClientAuthMode, type ClientAuthMode } from '../config/sections/auth.js'
import type { RefusalLimit } from '../src/abuse/refusal-limit.js'
import { assertAllowedModels } from '../src/auth/allowed-models.js'
import type { ClientIdentity } from '../src/auth/client.js'
import { keyTable, lookupKey, presentedKeys, summaryOf, UNKNOWN_CLIENT, type KeyEntry, type KeySummary } from '../src/auth/keys.js'
import { refuse, refuseGuessing } from '../src/auth/refusals.js'
import { CLIENT_CREDENTIALS } from '../src/proxy/headers.js'

export interface AuthOptions {
  auth: GatewayConfig['auth']
  /** decided from the whole config (an upstream key makes an unchecked gateway an open relay) */
  mode: ClientAuthMode
  /** routing.defaultTarget: the target a bare `upstreamKey` belongs to */
  defaultTarget: string
  /** refused authentications per address (shared with the admin guard); null = not limited */
  refusals?: RefusalLimit | null
}

export interface ClientAuth {
  /** keys required, callers' own credentials pass through, or open relay (config/sections/auth.ts) */
  mode: ClientAuthMode
  passThroughUnknown: boolean
  header: string
  keys: KeySummary[]
}

declare module 'fastify' {
  interface FastifyInstance {
    clientAuth: ClientAuth
  }
}

function addClientChecks (fastify: FastifyInstance, table: ReadonlyMap<string, KeyEntry>, settings: GatewayConfig['auth'], refusals: RefusalLimit | null): void {
  const unknownIdentity: ClientIdentity = Object.freeze({ name: UNKNOWN_CLIENT, passThrough: true })

  // callback form, not async: the check is sync, so no promise and microtask per request; a
  // throw (refuse) reaches Fastify's error path exactly as a rejection would
  fastify.addHook('onRequest', function authenticateClient (request, reply, done) {
    refuseGuessing(request, reply, refusals)
    const keys = presentedKeys(request.headers, settings.header)
    let entry: KeyEntry | null = null
    for (const key of keys) entry ??= lookupKey(table, key)
    if (entry === null) {
      if (settings.passThroughUnknown) {
        request.client = unknownIdentity
        return done()
      }
      request.log.debug({ presented: keys.length }, 'client key refused')
      refuse(request, reply, keys.length === 0 ? 'missing_api_key' : 'invalid_api_key', refusals)
    }
    if (!entry.enabled) {
      request.log.info({ client: entry.identity.name }, 'disabled client key refused')
      refuse(request, reply, 'disabled_api_key', refusals)
    }
    request.client = entry.identity
    done()
  })

  // keys are fixed at boot: with no model list on any key there is nothing to enforce
  if (!settings.keys.some(k => k.allowedModels !== undefined)) return
  fastify.addHook('preHandler', function enforceAllowedModels (request, _reply, done) {
    const allowed = request.client?.allowedModels
    if (allowed === undefined) return done()
    assertAllowedModels(request, allowed)
    done()
  })
}

const auth: FastifyPluginAsync<AuthOptions> = async (fastify, { auth: settings, mode, defaultTarget, refusals = null }) => {
  const checking = mode === 'keys'
  const table = keyTable(checking ? settings.keys : [], defaultTarget)
  // the configured header carries a client key: consumed here, never forwarded upstream
  const dropHeader = settings.header !== '' && !CLIENT_CREDENTIALS.includes(settings.header) ? settings.header : null

  fastify.decorate('clientAuth', {
    mode,
    passThroughUnknown: checking && settings.passThroughUnknown,
    header: settings.header,
    keys: settings.keys.map(k => summaryOf(k, defaultTarget))
  } satisfies ClientAuth)

  if (!checking) {
    const why = settings.keys.length > 0 ? 'client key checking is off (auth.enabled=false)' : 'no client keys configured'
    fastify.log.warn(`${why}: ${describeClientAuthMode(mode)}`)
  } else if (settings.passThroughUnknown) {
    fastify.log.warn('auth.passThroughUnknown: callers with unknown or missing keys are forwarded with their own credentials')
  } else {
    fastify.log.info({ keys: table.size }, describeClientAuthMode(mode))
  }

  if (checking) addClientChecks(fastify, table, settings, refusals)

  if (dropHeader !== null) {
    // after authenticateClient (hooks run in registration order), which reads it first
    fastify.addHook('onRequest', async function consumeAuthHeader (request) {
      delete request.raw.headers[dropHeader]
    })
  }
}

export default fp(auth, {
  name: 'gateway-auth',
  fastify: '5.x',
  dependencies: ['gateway-request-state']
})
