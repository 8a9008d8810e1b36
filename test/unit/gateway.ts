/**
 * The unit tier's gateway: the same app as test/helper.ts's startGateway (a real config load from
 * env, flags and YAML, its log lines captured), but never listening: tests drive it with
 * `app.inject()` (and `app.injectWS()` for the realtime route). Where the gateway needs an
 * upstream, the tests start the embedded mock (test/helper.ts's startMock) on 127.0.0.1, port 0.
 */
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from '../../config/schema.js'
import { buildGateway, type GatewayInput } from '../helper.js'

export interface InjectedGateway {
  app: FastifyInstance
  config: GatewayConfig
  /** every log line written so far, parsed */
  logs: () => Array<Record<string, unknown>>
  /** the working directory the config was loaded from (a fresh temp dir) */
  cwd: string
}

export async function injectGateway (t: TestContext, input: GatewayInput = {}): Promise<InjectedGateway> {
  const { app, config, cwd, lines } = await buildGateway(t, input)
  await app.ready()
  return { app, config, cwd, logs: () => lines.map(line => JSON.parse(line) as Record<string, unknown>) }
}
