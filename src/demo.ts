/**
 * `npm run demo`: the gateway in front of the embedded mock upstream, so it answers without any
 * API key. Any setting can still be given by env or flags; only the upstream defaults to the mock.
 */
process.env.GATEWAY_UPSTREAM_URL ??= 'mock'
await import('./cli.js')
