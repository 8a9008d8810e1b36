/**
 * Unit: adding usage totals. `addTotals` names each field instead of looping over TOTAL_FIELDS:
 * a field added to TOTAL_FIELDS and not to it would silently stay 0 in every report.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TOTAL_FIELDS, addTotals, emptyTotals, type UsageTotals } from '../../src/usage/store.js'

test('addTotals adds every field of TOTAL_FIELDS, and only into its own field', () => {
  const into = emptyTotals()
  assert.deepEqual(Object.keys(into).sort(), [...TOTAL_FIELDS].sort(), 'emptyTotals has every field')
  const from = Object.fromEntries(TOTAL_FIELDS.map((f, i) => [f, 2 ** i])) as UsageTotals
  addTotals(into, from)
  addTotals(into, from)
  for (const [i, f] of TOTAL_FIELDS.entries()) assert.equal(into[f], 2 * 2 ** i, f)
  assert.deepEqual(from, Object.fromEntries(TOTAL_FIELDS.map((f, i) => [f, 2 ** i])), 'the added totals are left as they were')
})
