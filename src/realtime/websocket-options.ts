/**
 * Options for the server's one @fastify/websocket registration (one per server, because the
 * plugin decorates the instance and owns the upgrade listener): message size
 * limit, sub-protocol choice, quiet socket errors, and a shutdown that tells clients why.
 */
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import type { GatewayConfig } from '../../config/schema.js'
import { chooseProtocol } from './protocols.js'
import type { RealtimeRelay } from './relay.js'

/** Relays by client socket, so shutdown can close both sides of each session. */
const relays = new WeakMap<WebSocket, RealtimeRelay>()

export function trackRelay (socket: WebSocket, relay: RealtimeRelay): void {
  relays.set(socket, relay)
}

export function websocketPluginOptions (realtime: GatewayConfig['realtime']): WebsocketPluginOptions {
  return {
    options: {
      maxPayload: realtime.maxPayload,
      // relayed messages are already compressed audio or small JSON: not worth the CPU
      perMessageDeflate: false,
      handleProtocols: chooseProtocol
    },
    // ws closes the socket with the right code itself (1009, 1007, 1002); only a throw from a
    // handler leaves it open
    errorHandler: function websocketError (error, socket, request) {
      request.log.debug({ err: error }, 'websocket error')
      if (socket.readyState === socket.OPEN) socket.close(1011, 'internal error')
    },
    preClose: function closeWebsockets (this: FastifyInstance, done: () => void) {
      for (const client of this.websocketServer.clients) {
        const relay = relays.get(client)
        if (relay !== undefined) relay.shutdown(1001, 'gateway shutting down', 1001)
        else client.close(1001, 'gateway shutting down')
      }
      done()
    }
  }
}
