/**
 * A real browser client: headless Chromium opens the realtime socket the way OpenAI's browser
 * examples do, with the key in the `openai-insecure-api-key.<key>` sub-protocol, runs one
 * response and reports what it saw to a loopback endpoint.
 *
 * Needs /usr/bin/chromium (scripts/ensure-chromium.sh installs it); without it the test fails.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startGateway, startMock, tempDir } from '../helper.js'
import { waitFor, wsUrl } from './ws-helpers.js'

const CHROMIUM = '/usr/bin/chromium'

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
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/ensure-chromium.sh (Debian package "chromium")`)
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-browser' } })

  let reported: string[] | null = null
  const site = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/report') {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => { body += chunk })
      req.on('end', () => { reported = JSON.parse(body) as string[]; res.writeHead(204).end() })
      return
    }
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(wsUrl(gw.url)))
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>(resolve => site.listen(0, '127.0.0.1', resolve))
  t.after(() => { site.closeAllConnections(); return new Promise(resolve => site.close(resolve)) })

  const profile = tempDir('gw-chromium-')
  const browser = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check',
    `--user-data-dir=${profile}`,
    `http://127.0.0.1:${(site.address() as AddressInfo).port}/`
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  browser.stderr.setEncoding('utf8')
  browser.stderr.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  let exited = false
  const exit = new Promise(resolve => browser.once('exit', () => { exited = true; resolve(undefined) }))
  t.after(async () => {
    // chromium's own process group (detached above): the browser and the helpers it started
    if (!exited && browser.pid !== undefined) process.kill(-browser.pid, 'SIGKILL')
    await exit
    rmSync(profile, { recursive: true, force: true })
  })

  try {
    await waitFor(() => reported !== null || exited, 'the page to report', 60_000)
  } catch (err) {
    throw new Error(`${(err as Error).message}; chromium stderr: ${stderr}`)
  }
  assert.ok(reported !== null, `chromium exited before the page reported: ${stderr}`)
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
