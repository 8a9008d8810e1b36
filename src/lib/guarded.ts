/**
 * Event listeners that cannot throw out of their callback.
 *
 * An emitter calls its listeners on its own stack: busboy from inside `write()`, ws from its
 * socket's 'data' handler, a timer from the event loop. A throw there unwinds through code that
 * does not expect it, nothing above catches it, and the process exits: one request would stop the
 * gateway for everyone. Every listener the gateway attaches to such an emitter is wrapped here,
 * and a throw fails only the request or session it belongs to (`onThrow`).
 */

/** `listener`, with a throw handed to `onThrow` instead of the emitter. */
export function guarded<A extends unknown[]> (listener: (...args: A) => void, onThrow: (err: unknown) => void): (...args: A) => void {
  return (...args) => {
    try {
      listener(...args)
    } catch (err) {
      try {
        onThrow(err)
      } catch {
        // the failure path itself failed: the emitter's stack is still no place for a throw
      }
    }
  }
}

/** What a log line may say of a caught throw: its class and message, never its stack. */
export function thrownSummary (err: unknown): { name: string, message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message.slice(0, 300) }
  return { name: typeof err, message: String(err).slice(0, 300) }
}
