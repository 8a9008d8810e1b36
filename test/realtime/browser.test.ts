/**
 * A real browser client: headless Chromium opens the realtime socket the way OpenAI's browser
 * examples do, with the key in the `openai-insecure-api-key.<key>` sub-protocol, runs one
 * response and reports what it saw to a loopback endpoint.
 *
 * Needs /usr/bin/chromium (scripts/ensure-chromium.sh installs it; see test/browser.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, startMock } from '../helper.js'
import { reportFromChromium, startSite } from '../browser.js'
import { waitFor, wsUrl } from './ws-helpers.js'

function page (socketUrl: string): string {
  return `<!doctype html><title>realtime</title><script>
const seen = []
const report = () => fetch('/report', { method: 'POST', body: JSON.stringify(seen) })
const ws = new WebSocket(${JSON.stringify(socketUrl)}, ['realtime', 'openai-insecure-api-key.sk-browser-key-1'])
ws.onopen = () => { seen.push('open:' + ws.protocol); ws.send(JSON.stringify({ type: 'response.create' })) }
ws.onmessage = (e) => {
  const event = JSON.parse(e.data)
  seen.push(event.type)
  if (event.type === 'response.done') ws.close(1000, 'browser done')
}
ws.onerror = () => seen.push('error')
ws.onclose = (e) => { seen.push('close:' + e.code); report() }
</script>`
}

test('headless Chromium: sub-protocol key, message exchange, clean close', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-browser' } })

  const site = await startSite(t, { '/': page(wsUrl(gw.url)) })
  const reported = await reportFromChromium(t, site, `${site.url}/`)
  assert.deepEqual(reported, [
    'open:realtime', 'session.created', 'response.created', 'response.output_text.delta', 'response.output_text.delta', 'response.done', 'close:1000'
  ])

  const upstream = mock.wsConnections[0]
  assert.equal(upstream.protocol, 'realtime')
  assert.equal(upstream.headers['sec-websocket-protocol'], 'realtime')
  assert.equal(upstream.headers.authorization, 'Bearer sk-upstream-browser')
  assert.equal(upstream.headers.origin, undefined, 'the page origin is not passed upstream')
  assert.ok(!JSON.stringify(upstream.headers).includes('sk-browser-key-1'))
  await waitFor(() => upstream.closeCode !== undefined, 'the upstream close')
  assert.equal(upstream.closeCode, 1000)
  assert.equal(upstream.closeReason, 'browser done')
})
