/**
 * Usage records: one per request, with the token counts the upstream reported (seed 002's token
 * log, done right), and the totals behind `GET /admin/usage`.
 *
 * Requests to the LLM endpoints (chat/completions, completions, embeddings, responses, messages)
 * get a response stage that reads usage on the way to the client (see src/usage/stages.ts). An
 * OpenAI stream whose client did not ask for usage is asked for it all the same
 * (`stream_options.include_usage`), and the extra usage chunk is taken out again before the
 * client sees it (`usage.streamUsage`). Every other request gets its record without any stage.
 *
 * The record is written when the response has ended, or when the client went away first (then
 * with the tokens seen so far). Health probes and admin routes are not usage and get no record.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ChunkStage } from '../src/proxy/chunk-stages.js'
import type { Redis } from 'ioredis'
import type { GatewayConfig } from '../config/schema.js'
import { pathOnly } from '../src/logging.js'
import { isJsonContentType } from '../src/proxy/response-rewrite.js'
import type { ProxyBody } from '../src/proxy/proxy-body.js'
import { ResponseUsage, hiddenUsageStage } from '../src/usage/stages.js'
import { isObject, takesStreamOptions, usageDialect } from '../src/usage/tokens.js'
import { MemoryUsageStore, type UsageStore } from '../src/usage/store.js'
import { RedisUsageStore } from '../src/usage/redis-store.js'
import { UsageRecorder } from '../src/usage/recorder.js'
import type { ResponseStart } from '../src/proxy/stages.js'
import { PriceTable, readPriceFile } from '../src/usage/prices.js'

export interface UsageOptions {
  usage: GatewayConfig['usage']
  /** `pricing` (default: the bundled table alone) */
  pricing?: GatewayConfig['pricing']
  /** Azure deployment name → model, to price a call that names only its deployment */
  deployments?: ReadonlyMap<string, string>
  /** largest stream event read for usage, in characters */
  maxEventSize: number
  /** an ioredis client shared by the replicas: totals are kept there, so they all add up */
  redis?: Redis | null
  redisKeyPrefix?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** writes usage records; `realtimeSession(request)` for the realtime relay. Null when off. */
    usageRecorder: UsageRecorder | null
    /** the totals behind /admin/usage; null when usage records are off */
    usageStore: UsageStore | null
    /** the prices every record's cost comes from (src/usage/prices.ts) */
    priceTable: PriceTable
  }
}

/**
 * Asks for usage in an OpenAI stream whose client did not (the record needs it); the client's own
 * `stream_options` are kept.
 */
function askForStreamUsage (body: ProxyBody, usage: ResponseUsage): void {
  const options = body.json?.stream_options
  if (isObject(options) && options.include_usage === true) return
  usage.hideStreamUsage = true
  // no stream_options yet: one member is added (spliced into the raw body, which may be a long
  // conversation, while nothing else changed it)
  if (options === undefined) body.addMember('stream_options', { include_usage: true })
  else body.edit((json) => { json.stream_options = { ...(isObject(options) ? options : {}), include_usage: true }; return true })
}

/** an API request: set by the API scope's request class (health probes and admin calls are not usage) */
const kApiScope = Symbol('usage scope')
type Scoped = FastifyRequest & { [kApiScope]?: boolean }

const usagePlugin: FastifyPluginAsync<UsageOptions> = async (fastify, opts) => {
  const settings = opts.usage
  // read at boot: a bad price file or price stops the boot with one line
  const prices = new PriceTable({
    models: opts.pricing?.models ?? {},
    file: opts.pricing === undefined || opts.pricing.file === '' ? null : readPriceFile(opts.pricing.file),
    deployments: opts.deployments
  })
  fastify.decorate('priceTable', prices)
  if (!settings.enabled) {
    fastify.decorate('usageRecorder', null)
    fastify.decorate('usageStore', null)
    return
  }
  // true for the requests of this plugin's scope, the API's, from the scope's own request class
  // (health probes and admin calls are not usage): decided at registration, not per request
  fastify.decorateRequest(kApiScope, true)

  const store: UsageStore = opts.redis != null
    ? new RedisUsageStore(opts.redis, {
      ...settings,
      keyPrefix: opts.redisKeyPrefix ?? 'llm-gateway:',
      onOutage: (err) => fastify.log.warn({ cause: (err as Error)?.message }, 'usage totals cannot reach redis: kept in memory and written when it is back'),
      onRecovery: () => fastify.log.info('usage totals written to redis again')
    })
    : new MemoryUsageStore({
      ...settings,
      onBound: () => fastify.log.warn({ maxMemoryBytes: settings.maxMemoryBytes }, 'usage totals reached their memory bound: the oldest buckets are dropped before their retention')
    })
  const recorder = new UsageRecorder({
    log: fastify.log,
    file: fastify.hasDecorator('logFiles') ? fastify.logFiles?.usage ?? null : null,
    store,
    metrics: fastify.hasDecorator('metrics') ? fastify.metrics : null,
    privacy: settings.privacy,
    prices
  })
  fastify.decorate('usageRecorder', recorder)
  fastify.decorate('usageStore', store)
  fastify.addHook('onClose', async () => { await store.close() })

  const limits = { maxJsonBytes: settings.maxJsonBytes, maxEventSize: opts.maxEventSize }

  /** Decided once the upstream answered, from its status and content type. */
  function usageStage (start: ResponseStart): ChunkStage | null {
    let usage = start.request.outcome.usage
    if (usage === null || start.statusCode < 200 || start.statusCode >= 300) return null
    // a translated answer is read in the upstream's dialect, before its translation
    const dialect = start.request.upstream.translation?.direction.usageDialect
    if (dialect !== undefined && dialect !== usage.dialect) {
      usage = new ResponseUsage(dialect)
      start.request.outcome.usage = usage
    }
    // a compressed body is decoded before the stages (src/proxy/forward.ts); one we cannot decode is not read
    const encoding = start.headers['content-encoding']
    if (encoding !== undefined && encoding !== 'identity') return null
    if (start.isEventStream && usage.hideStreamUsage) {
      return hiddenUsageStage(usage, limits, (err) => start.request.log.warn({ err }, 'usage stream stage failed; event passed on unchanged'))
    }
    if (start.isEventStream) return usage.eventTap(limits.maxEventSize)
    return isJsonContentType(start.headers['content-type']) ? usage.jsonTap(limits.maxJsonBytes) : null
  }

  // callback form: nothing to wait for, so no promise per request
  fastify.addHook('preHandler', function watchUsage (request, _reply, done) {
    startUsage(request)
    done()
  })

  function startUsage (request: FastifyRequest): void {
    const body = request.proxyBody
    if (request.method !== 'POST' || body?.json == null || request.headers.upgrade !== undefined) return
    const path = pathOnly(request.upstream.apiPath)
    const dialect = usageDialect(path)
    if (dialect === null) return
    const usage = new ResponseUsage(dialect)
    request.outcome.usage = usage
    if (settings.streamUsage && body.wantsStream && dialect === 'openai' && takesStreamOptions(path) && request.upstream.target?.provider !== 'anthropic') {
      askForStreamUsage(body, usage)
    }
  }

  // the client's accept-encoding is kept: a compressed answer is decoded for this stage (the
  // client then gets it plain, which it always accepts)
  fastify.forwarder.addStage({ name: 'usage', position: 'near-client', make: usageStage })

  /** The record goes on the request's access line (written after this, by plugins/access-log.ts). */
  function writeRecord (request: FastifyRequest, reply: FastifyReply, aborted: boolean): void {
    const record = recorder.fromRequest(request, reply, aborted)
    request.outcome.record = record
    recorder.record(record, false)
  }

  // Settled after the metrics (the record counts its tokens into them) and before the access line
  // (which carries it): at the end of the response (refusals too) or when the client went away
  // (the tokens seen so far count). A realtime session has its own record.
  fastify.settle.add('record', 'usage', function recordUsage (request, reply, abandoned) {
    if ((request as Scoped)[kApiScope] === true && request.headers.upgrade === undefined) writeRecord(request, reply, abandoned)
  })
}

export default fp(usagePlugin, { name: 'gateway-usage', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-settle', 'gateway-forwarder'] })
