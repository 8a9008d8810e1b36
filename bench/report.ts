/**
 * The results table: one row per measure, a column per path (direct to the mock, the bare pipe,
 * the gateway), the gateway/pipe ratio where it means something, and the target with
 * pass/fail.
 */

export interface Row {
  scenario: string
  measure: string
  direct?: string
  pipe?: string
  gateway?: string
  ratio?: string
  target?: string
  /** undefined: the row has no target */
  pass?: boolean
}

export function fmt (n: number, digits = 2): string {
  if (!Number.isFinite(n)) return 'n/a'
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US')
  return n.toFixed(digits)
}

export function ratio (gateway: number, pipe: number): string {
  return pipe > 0 && Number.isFinite(gateway) ? `${(gateway / pipe).toFixed(2)}×` : 'n/a'
}

function cell (s: string | undefined): string {
  return s === undefined || s === '' ? '—' : s.replaceAll('|', '\\|')
}

export function markdownTable (rows: readonly Row[]): string {
  const lines = [
    '| scenario | measure | direct | pipe | gateway | gateway/pipe | target | result |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- |'
  ]
  let last = ''
  for (const r of rows) {
    const scenario = r.scenario === last ? '' : r.scenario
    last = r.scenario
    const result = r.pass === undefined ? '' : r.pass ? '**pass**' : '**FAIL**'
    lines.push(`| ${[scenario, r.measure, cell(r.direct), cell(r.pipe), cell(r.gateway), cell(r.ratio), cell(r.target), result].join(' | ')} |`)
  }
  return lines.join('\n')
}

export function summary (rows: readonly Row[]): { passed: number, failed: number } {
  let passed = 0
  let failed = 0
  for (const r of rows) {
    if (r.pass === true) passed++
    else if (r.pass === false) failed++
  }
  return { passed, failed }
}
