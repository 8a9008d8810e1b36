/**
 * The pure parts of routing by model and of model groups: globs, the cooldown window, Retry-After,
 * the attempt order of each strategy, the overlap a stream continuation cuts, and the config check.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { globPattern, ModelRouter } from '../../src/routing/model-groups.js'
import { HealthBoard, MemoryCooldowns, retryAfterMs } from '../../src/routing/health.js'
import { attemptOrder, EXPLORE_EVERY } from '../../src/routing/deployment-picker.js'
import { overlapLength } from '../../src/proxy/stream-resume.js'
import { ProxyBody } from '../../src/proxy/proxy-body.js'
import { UpstreamExchange } from '../../src/proxy/exchange.js'
import { reportsFailure } from '../../src/lib/stream-end.js'
import type { UpstreamTarget } from '../../src/upstream/target.js'
import { loadConfig } from '../../config/load.js'
import type { GatewayConfig } from '../../config/schema.js'
import { tempDir } from '../tmp.js'

function config (modelGroups: string): GatewayConfig {
  return loadConfig({ argv: [], env: { GATEWAY_TARGETS: '{"a":{"url":"http://127.0.0.1:1"},"b":{"url":"http://127.0.0.1:2"}}', GATEWAY_MODEL_GROUPS: modelGroups }, cwd: tempDir() }).config
}

function router (cfg: GatewayConfig): ModelRouter {
  const byName = new Map<string, UpstreamTarget>(['default', 'a', 'b'].map(name => [name, { name } as unknown as UpstreamTarget]))
  return new ModelRouter(cfg, byName, new HealthBoard(new MemoryCooldowns()))
}

test('globs: * and ?, whole name, any case, special characters literal', () => {
  const p = globPattern(['gpt-4o*', 'o?-mini', 'llama-3.1'])
  assert.ok(p?.test('GPT-4o-2024-08-06'))
  assert.ok(p?.test('o3-mini'))
  assert.ok(p?.test('llama-3.1'))
  assert.equal(p?.test('llama-3x1'), false, 'a dot is a dot')
  assert.equal(p?.test('my-gpt-4o'), false, 'the whole name')
  assert.equal(globPattern([]), null)
})

test('cooldowns: allowedFails within the window; the window restarts; a longer Retry-After wins', () => {
  const c = new MemoryCooldowns()
  const rules = { allowedFails: 2, cooldownMs: 1000 }
  assert.equal(c.fail('x', rules, 0, 0), 0)
  assert.equal(c.fail('x', rules, 0, 1500), 0, 'the first failure is out of the window')
  assert.equal(c.fail('x', rules, 0, 1600), 2600)
  assert.equal(c.until('x'), 2600)
  assert.equal(c.fail('y', { allowedFails: 1, cooldownMs: 1000 }, 30_000, 0), 30_000)
  c.clear('x')
  assert.equal(c.until('x'), 0)
  assert.equal(retryAfterMs('120'), 120_000)
  assert.equal(retryAfterMs(new Date(Date.now() + 60_000).toUTCString()) > 50_000, true)
  assert.equal(retryAfterMs('soon'), 0)
  assert.equal(retryAfterMs('99999999'), 86_400_000, 'at most a day')
})

test('attempt order: fallback in order, cooling ones left out (all cooling: soonest back first); weighted; least-latency explores', () => {
  const r = router(config(JSON.stringify({
    f: { deployments: [{ target: 'a', model: '1' }, { target: 'b', model: '2' }, { target: 'default', model: '3' }] },
    w: { strategy: 'weighted', deployments: [{ target: 'a', model: 'w1', weight: 2 }, { target: 'b', model: 'w2', weight: 1 }] },
    l: { strategy: 'least-latency', deployments: [{ target: 'a', model: 'l1' }, { target: 'b', model: 'l2' }] }
  })))
  const ids = (name: string): string[] => attemptOrder(r.groups.get(name)!, r.health, 1000).map(d => d.id)
  assert.deepEqual(ids('f'), ['a/1', 'b/2', 'default/3'])
  r.health.cooldowns.cool('b/2', 5000)
  assert.deepEqual(ids('f'), ['a/1', 'default/3'])
  r.health.cooldowns.cool('@a', 3000)
  r.health.cooldowns.cool('default/3', 4000)
  assert.deepEqual(ids('f'), ['a/1', 'default/3', 'b/2'], 'all cooling: the one back first goes first')
  r.health.cooldowns.clear('@a')

  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => ids('w')[0]), ['a/w1', 'b/w2', 'a/w1', 'a/w1', 'b/w2', 'a/w1'])

  const l = r.groups.get('l')!
  r.health.started('a/l1')
  r.health.succeeded('a/l1', 'a', 50)
  r.health.started('b/l2')
  r.health.succeeded('b/l2', 'b', 10)
  const firsts = Array.from({ length: EXPLORE_EVERY * 2 }, () => attemptOrder(l, r.health, 1000)[0].id)
  assert.equal(firsts.filter(id => id === 'b/l2').length, EXPLORE_EVERY * 2 - 2, 'the fastest first')
  assert.equal(firsts.filter(id => id === 'a/l1').length, 2, 'one request in ten explores the other')
})

test('the overlap a continuation repeated: the longest, at least 8 characters', () => {
  assert.equal(overlapLength('tok0 tok1 tok2 tok3 tok4 ', 'tok3 tok4 tok5 '), 10)
  assert.equal(overlapLength('the cat sat on ', 'on the mat'), 0, 'a short coincidence is kept')
  assert.equal(overlapLength('', 'anything'), 0)
})

test('config: deployments name known targets, contextWindowFallback another group', () => {
  assert.throws(() => config('{"g":{"deployments":[{"target":"nope","model":"m"}]}}'), /modelGroups\.g\.deployments\[0\]\.target/)
  assert.throws(() => config('{"g":{"contextWindowFallback":"g","deployments":[{"target":"a","model":"m"}]}}'), /contextWindowFallback/)
  assert.throws(() => config('{"g":{"deployments":[]}}'))
  const ok = config('{"g":{"deployments":[{"target":"a","model":"m"}]}}').modelGroups.g
  assert.deepEqual([ok.strategy, ok.maxAttempts, ok.allowedFails, ok.cooldownMs, ok.deployments[0].weight], ['fallback', 3, 3, 30_000, 1])
})

test('each attempt\'s body: the model replaced, the body itself untouched; the same model keeps the client\'s bytes', () => {
  const raw = Buffer.from('{ "model": "smart", "messages": [ {"role":"user","content":"hi"} ] }')
  const body = ProxyBody.json(raw, JSON.parse(raw.toString()) as Record<string, unknown>)
  body.addMember('stream_options', { include_usage: true })
  assert.deepEqual(JSON.parse(body.bytesWith('model', 'gpt-4o').toString()), { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } })
  assert.equal(body.model, 'smart', 'the next attempt starts from the same body')
  assert.deepEqual(body.bytesWith('model', 'smart'), body.bytes())
})

test('an exchange\'s first event, read before any sink: in one chunk, across chunks, CRLF; the chunks stay for the sink', async () => {
  const controller = { aborted: false, paused: false, reason: null, abort () {}, pause () {}, resume () {} }
  const feed = (chunks: string[]): UpstreamExchange => {
    const ex = new UpstreamExchange()
    ex.onRequestStart(controller)
    ex.onResponseStart(controller, 200, { 'content-type': 'text/event-stream' })
    for (const c of chunks) ex.onResponseData(controller, Buffer.from(c))
    return ex
  }
  assert.equal(await feed(['data: {"error":{}}\n\ndata: b\n\n']).firstEvent(1024), 'data: {"error":{}}')
  assert.equal(await feed(['data: a\n', '\ndata: b\n\n']).firstEvent(1024), 'data: a')
  assert.equal(reportsFailure(await feed(['event: error\r\ndata: {}\r\n\r\n']).firstEvent(1024)), true)
  const ex = feed(['data: a\n\n', 'data: b\n\n'])
  await ex.firstEvent(1024)
  const got: string[] = []
  ex.attach({ data: (c) => { got.push(c.toString()); return true }, end () {}, error () {} })
  assert.deepEqual(got, ['data: a\n\n', 'data: b\n\n'])
  const failed = feed(['data: a'])
  const read = failed.firstEvent(1024)
  failed.onResponseError(controller, new Error('reset'))
  await assert.rejects(read, /reset/)
})
