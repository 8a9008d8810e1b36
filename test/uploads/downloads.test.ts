/**
 * Downloads stream back unbuffered: file contents and speech arrive byte for byte, and the first
 * chunks reach the client while the upstream still holds the last one.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { mockPayload } from '../../mock/upstream.js'
import { startGateway, startMock } from '../helper.js'
import { waitFor } from '../realtime/ws-helpers.js'

test('files.content and audio.speech come back byte for byte', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-dl', maxRetries: 0 })

  const content = await client.files.content('file-abc', { headers: { 'x-mock-bytes': String(3 * 1024 * 1024 + 17) } })
  assert.equal(content.headers.get('content-disposition'), 'attachment; filename="file-abc"')
  assert.ok(Buffer.from(await content.arrayBuffer()).equals(mockPayload(3 * 1024 * 1024 + 17)))

  const speech = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'hello' })
  assert.equal(speech.headers.get('content-type'), 'audio/mpeg')
  assert.ok(Buffer.from(await speech.arrayBuffer()).equals(mockPayload(64 * 1024)))
})

for (const [name, path, init] of [
  ['file content', '/v1/files/file-held/content', { method: 'GET' }],
  ['speech', '/v1/audio/speech', { method: 'POST', body: JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'hi' }), ct: 'application/json' }]
] as const) {
  test(`${name} is not buffered: the first chunks arrive while the upstream holds the last`, async (t) => {
    const mock = await startMock(t)
    const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
    const CHUNKS = 8
    const CHUNK = 64 * 1024
    const token = `hold-${name}`
    const res = await request(`${gw.url}${path}`, {
      method: init.method,
      body: 'body' in init ? init.body : undefined,
      headers: {
        ...('ct' in init ? { 'content-type': init.ct } : {}),
        'x-mock-hold': token,
        'x-mock-chunks': String(CHUNKS),
        'x-mock-bytes': String(CHUNKS * CHUNK)
      }
    })
    assert.equal(res.statusCode, 200)
    const got: Buffer[] = []
    let size = 0
    res.body.on('data', (chunk: Buffer) => { got.push(chunk); size += chunk.length })
    // everything but the held last chunk must get through the gateway before the release
    await waitFor(() => size === (CHUNKS - 1) * CHUNK, 'all chunks before the held one')
    assert.equal(mock.streams[0].finished, false)
    mock.release(token)
    await new Promise(resolve => res.body.once('end', resolve))
    assert.ok(Buffer.concat(got).equals(mockPayload(CHUNKS * CHUNK)))
  })
}
