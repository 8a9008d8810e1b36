/**
 * A browser app on another origin uses the official SDKs' stream helpers through the gateway:
 * headless Chromium loads a page that imports `openai` and `@anthropic-ai/sdk` (their own ES
 * module builds, served from node_modules), streams a chat completion and a message with
 * `chat.completions.stream` and `messages.stream`, and reads the headers the gateway exposes.
 * The preflights are the browser's own, with every header the SDKs really send.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, startMock } from '../helper.js'
import { reportFromChromium, startSite } from '../browser.js'

const CLIENT_KEY = 'ck-browser-app-0001'

function page (gateway: string): string {
  // the Anthropic SDK imports two packages by name: the import map resolves them as a bundler
  // would. standardwebhooks (webhook signatures, which a page never checks) ships CommonJS only,
  // so it is stood in for by an empty class
  const imports = {
    '@opentelemetry/api': '/modules/@opentelemetry/api/dist/index.mjs',
    standardwebhooks: 'data:text/javascript,export class Webhook {}'
  }
  return `<!doctype html><title>sdk</title>
<script type="importmap">${JSON.stringify({ imports })}</script>
<script type="module">
const seen = {}
try {
  // imported here, so a module that fails to load is reported instead of stopping the page
  const { default: OpenAI } = await import('/modules/openai/index.mjs')
  const { default: Anthropic } = await import('/modules/@anthropic-ai/sdk/index.mjs')
  const openai = new OpenAI({ baseURL: ${JSON.stringify(`${gateway}/v1`)}, apiKey: ${JSON.stringify(CLIENT_KEY)}, organization: 'org-browser', project: 'proj-browser', dangerouslyAllowBrowser: true, maxRetries: 0 })
  const chat = openai.chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  let text = ''
  chat.on('content', (delta) => { text += delta })
  const done = await chat.finalChatCompletion()
  seen.openai = { streamed: text, final: done.choices[0].message.content }
  const { response } = await openai.models.list().withResponse()
  seen.exposed = { upstreamRequestId: response.headers.get('x-upstream-request-id'), remaining: response.headers.get('x-ratelimit-remaining-requests') }

  const anthropic = new Anthropic({ baseURL: ${JSON.stringify(gateway)}, apiKey: ${JSON.stringify(CLIENT_KEY)}, dangerouslyAllowBrowser: true, maxRetries: 0 })
  const message = await anthropic.messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).finalMessage()
  seen.anthropic = { type: message.type, text: message.content.map(c => c.text).join('') }
} catch (err) {
  seen.error = String(err && err.message || err)
}
await fetch('/report', { method: 'POST', body: JSON.stringify(seen) })
</script>`
}

test('headless Chromium on another origin: the SDKs\' stream helpers work through the gateway with CORS origins configured', async (t) => {
  const mock = await startMock(t)
  // the site is created first, so its origin can be configured; the page learns the gateway's address later
  const pages: Record<string, string> = {}
  const site = await startSite(t, pages)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-0001', GATEWAY_CLIENT_KEYS: CLIENT_KEY, GATEWAY_CORS_ORIGINS: site.url } })
  pages['/'] = page(gw.url)

  const seen = await reportFromChromium(t, site, `${site.url}/`) as Record<string, unknown>
  assert.equal(seen.error, undefined, `the page failed: ${String(seen.error)}`)
  const openai = seen.openai as { streamed: string, final: string }
  assert.ok(openai.streamed.length > 0, 'deltas arrived')
  assert.equal(openai.streamed, openai.final)
  assert.deepEqual(Object.keys(seen.exposed as object), ['upstreamRequestId', 'remaining'])
  const exposed = seen.exposed as { upstreamRequestId: string | null, remaining: string | null }
  assert.ok(exposed.upstreamRequestId !== null && exposed.upstreamRequestId !== '', 'x-upstream-request-id is readable')
  assert.match(String(exposed.remaining), /^\d+$/, 'the rate-limit headers are readable')
  assert.equal((seen.anthropic as { type: string }).type, 'message')

  const chat = mock.requests.find(r => r.url === '/v1/chat/completions')
  assert.equal(chat?.headers['x-stainless-helper-method'], 'stream', 'the helper\'s own header went through the preflight')
  assert.equal(chat?.headers.authorization, 'Bearer sk-upstream-0001')
  assert.equal(chat?.headers['openai-organization'], 'org-browser')
  const message = mock.requests.find(r => r.url === '/v1/messages')
  assert.equal(message?.headers['anthropic-dangerous-direct-browser-access'], 'true')
})
