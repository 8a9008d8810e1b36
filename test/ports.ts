import { once } from 'node:events'
import { createServer } from 'node:net'

/** A loopback port free right now: listen on 0, read it, close (for servers that need a number up front). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}
