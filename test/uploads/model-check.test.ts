/**
 * A key restricted to some models cannot get around the list with a multipart form: the form's
 * `model` field is checked while the form streams (the upstream never gets a complete form it
 * may not have), with the same answers as a JSON body: 403 model_not_allowed, 400 for a second
 * model field in another case; an allowed model, or a form without one, goes through.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI, { toFile } from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { multipartForm } from './forms.js'
import { waitFor } from '../realtime/ws-helpers.js'

const KEY = 'gwk-restricted-0123456789abcdef'

async function setup (t: import('node:test').TestContext): Promise<{ url: string, mock: Awaited<ReturnType<typeof startMock>>, logs: string[] }> {
  const mock = await startMock(t)
  const yaml = `
upstream:
  url: ${mock.url}
  key: sk-upstream-model-check
auth:
  keys:
    - name: restricted
      key: ${KEY}
      allowedModels: [whisper-1, gpt-image-1]
`
  const gw = await startGateway(t, { yaml })
  return { url: gw.url, mock, logs: gw.logs }
}

function form (fields: Array<[string, string]>, file: Buffer, fileFirst: boolean): { body: Buffer, type: string } {
  return multipartForm(fileFirst ? [file, ...fields] : [...fields, file], '----gw-model-check')
}

test('multipart model field: allowed passes, another is 403, a second spelling is 400, none passes', async (t) => {
  const { url, mock } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 })
  const audio = Buffer.alloc(64 * 1024, 7)

  const ok = await client.audio.transcriptions.create({ file: await toFile(audio, 'a.wav'), model: 'whisper-1' })
  assert.equal(typeof ok.text, 'string')

  const before = mock.count()
  await assert.rejects(client.audio.transcriptions.create({ file: await toFile(audio, 'a.wav'), model: 'gpt-4o-transcribe' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.PermissionDeniedError)
    assert.equal(err.code, 'model_not_allowed')
    return true
  })
  // the upstream may have seen the start of the form, never a whole one it answered
  const answered = mock.requests.slice(before).filter((r) => r.path === '/v1/audio/transcriptions' && r.files !== undefined && r.fields?.model === 'gpt-4o-transcribe')
  assert.equal(answered.length, 0)

  for (const fileFirst of [true, false]) {
    const twice = form([['model', 'whisper-1'], ['MODEL', 'gpt-4o-transcribe']], audio, fileFirst)
    const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': twice.type }, body: twice.body })
    assert.equal(res.statusCode, 400)
    assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'model_not_checkable')
  }

  const none = form([['prompt', 'a cat']], audio, true)
  const res = await request(`${url}/v1/images/edits`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': none.type }, body: none.body })
  assert.equal(res.statusCode, 200, 'a form without a model field goes on, like a JSON body without one')
  await res.body.dump()
})

test('a disallowed model after a large file: refused mid-upload, the upstream request aborted', async (t) => {
  const { url, mock, logs } = await setup(t)
  const big = form([['model', 'gpt-4o-transcribe']], Buffer.alloc(4 * 1024 * 1024, 9), true)
  const res = await request(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': big.type }, body: big.body })
  assert.equal(res.statusCode, 403)
  assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'model_not_allowed')
  const upstream = mock.requests.find((r) => r.path === '/v1/audio/transcriptions')
  if (upstream !== undefined) {
    await waitFor(() => upstream.closed, 'the upstream request to be closed')
    assert.equal(upstream.fields?.model, undefined, 'the upstream never parsed the refused form to its end')
  }
  await waitFor(() => logs.some((l) => l.includes('"model":"gpt-4o-transcribe"') && l.includes('"status":403')), 'an access line with the refused model')
})
