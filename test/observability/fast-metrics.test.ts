/**
 * The request-path metrics (src/metrics/fast-metrics.ts) must expose exactly what prom-client's
 * own Counter and Histogram would for the same observations: same lines, same label order.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Histogram, Registry } from 'prom-client'
import { FastCounter, FastHistogram } from '../../src/metrics/fast-metrics.js'

const BUCKETS = [0.005, 0.05, 0.5, 5]
const OBSERVED: Array<[string, string, number]> = [['a', 'chat', 0.001], ['a', 'chat', 0.07], ['b', 'models', 9], ['a', 'chat', 0.5], ['b', 'models', 0.005]]

test('FastCounter and FastHistogram write the exposition text prom-client writes', async () => {
  const theirs = new Registry()
  const ours = new Registry()
  const counter = new Counter({ name: 'c_total', help: 'requests', labelNames: ['target', 'route', 'status'], registers: [theirs] })
  const histogram = new Histogram({ name: 'h_seconds', help: 'duration', labelNames: ['target', 'route'], buckets: BUCKETS, registers: [theirs] })
  const fastCounter = new FastCounter({ name: 'c_total', help: 'requests', labelNames: ['target', 'route', 'status'], registers: [ours] })
  const fastHistogram = new FastHistogram({ name: 'h_seconds', help: 'duration', labelNames: ['target', 'route'], buckets: BUCKETS, registers: [ours] })
  for (const [target, route, seconds] of OBSERVED) {
    counter.labels(target, route, '200').inc()
    fastCounter.inc([target, route, '200'])
    histogram.labels(target, route).observe(seconds)
    fastHistogram.observe([target, route], seconds)
  }
  counter.labels('a', 'chat', '500').inc(3)
  fastCounter.inc(['a', 'chat', '500'], 3)
  const text = await ours.metrics()
  assert.equal(text, await theirs.metrics())
  assert.match(text, /^h_seconds_bucket\{le="0.5",target="a",route="chat"\} 3$/m)
  assert.match(text, /^h_seconds_count\{target="b",route="models"\} 2$/m)
  assert.match(text, /^c_total\{target="a",route="chat",status="500"\} 3$/m)

  fastCounter.reset()
  fastHistogram.reset()
  assert.doesNotMatch(await ours.metrics(), /target=/)
})
