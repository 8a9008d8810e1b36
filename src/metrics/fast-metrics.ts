/**
 * Counters and histograms for the request path, registered in a prom-client Registry.
 *
 * prom-client's own `Counter`/`Histogram` hash the label object on every `inc()`/`observe()`,
 * also through a child from `labels()` (it keeps the label object, not the hash); with four
 * metrics touched per request that hashing was a visible share of the request path's CPU
 * (docs/performance.md). Here a series is found by one Map lookup per label value (the values
 * are mostly the same few strings, whose hashes V8 keeps: no key string is built and hashed per
 * call) and then updated with plain arithmetic; the registry reads the series
 * through the same `get()` interface its own metrics have, so the exposition text is the one
 * prom-client writes.
 */
import type { Registry } from 'prom-client'

interface MetricValue {
  value: number
  labels: Record<string, string | number>
  sharedLabels?: Record<string, string>
  metricName?: string
}

interface MetricData {
  name: string
  help: string
  type: 'counter' | 'histogram'
  values: MetricValue[]
  aggregator: 'sum'
}

interface Definition {
  name: string
  help: string
  labelNames: readonly string[]
  registers: Registry[]
}

interface Series<S> { labels: Record<string, string>, s: S }

/** A level of the index: the next level, or at the last label, the series. */
type Level<S> = Map<string, Level<S> | Series<S>>

/** Series of one metric by label values: an index with one Map level per label. */
abstract class Family<S> {
  readonly name: string
  readonly help: string
  readonly aggregator = 'sum'
  abstract readonly type: 'counter' | 'histogram'
  protected readonly labelNames: readonly string[]
  /** every series, in the order they were first used (the exposition's order) */
  protected series: Array<Series<S>> = []
  #index: Level<S> = new Map()

  constructor (def: Definition) {
    this.name = def.name
    this.help = def.help
    this.labelNames = def.labelNames
    // the registry only needs name, type, get() and reset() (prom-client's Metric interface)
    for (const registry of def.registers) registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  protected abstract create (): S

  /** The series of these label values (in `labelNames` order). */
  protected at (values: readonly string[]): S {
    let level = this.#index
    const last = values.length - 1
    for (let i = 0; i < last; i++) {
      let next = level.get(values[i]) as Level<S> | undefined
      if (next === undefined) {
        next = new Map()
        level.set(values[i], next)
      }
      level = next
    }
    const key = last === -1 ? '' : values[last]
    let entry = level.get(key) as Series<S> | undefined
    if (entry === undefined) {
      const labels: Record<string, string> = {}
      this.labelNames.forEach((name, i) => { labels[name] = values[i] })
      entry = { labels, s: this.create() }
      level.set(key, entry)
      this.series.push(entry)
    }
    return entry.s
  }

  reset (): void {
    this.series = []
    this.#index = new Map()
  }

  abstract get (): Promise<MetricData>
}

export class FastCounter extends Family<{ value: number }> {
  readonly type = 'counter'

  protected create (): { value: number } {
    return { value: 0 }
  }

  inc (values: readonly string[], by = 1): void {
    this.at(values).value += by
  }

  async get (): Promise<MetricData> {
    const values: MetricValue[] = []
    for (const { labels, s } of this.series) values.push({ value: s.value, labels })
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' }
  }
}

interface HistogramSeries { counts: Float64Array, sum: number, count: number }

export class FastHistogram extends Family<HistogramSeries> {
  readonly type = 'histogram'
  readonly #bounds: readonly number[]

  constructor (def: Definition & { buckets: readonly number[] }) {
    super(def)
    this.#bounds = [...def.buckets].sort((a, b) => a - b)
  }

  protected create (): HistogramSeries {
    return { counts: new Float64Array(this.#bounds.length), sum: 0, count: 0 }
  }

  observe (values: readonly string[], value: number): void {
    const s = this.at(values)
    const bounds = this.#bounds
    // the first bucket whose upper bound holds the value; cumulated when exported
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    if (i < bounds.length) s.counts[i]++
    s.sum += value
    s.count++
  }

  async get (): Promise<MetricData> {
    const values: MetricValue[] = []
    for (const { labels, s } of this.series) {
      let acc = 0
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i]
        values.push({ value: acc, labels: { le: this.#bounds[i] }, sharedLabels: labels, metricName: `${this.name}_bucket` })
      }
      values.push({ value: s.count, labels: { le: '+Inf' }, sharedLabels: labels, metricName: `${this.name}_bucket` })
      values.push({ value: s.sum, labels: {}, sharedLabels: labels, metricName: `${this.name}_sum` })
      values.push({ value: s.count, labels: {}, sharedLabels: labels, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' }
  }
}
