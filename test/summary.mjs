// One closing line for the whole suite (`npm test`), from the counts each tier's run left in
// .tmp/test-counts/ (test/count-reporter.mjs): `Tests: N passed, N failed, N skipped`.
import { readFileSync } from 'node:fs'

const total = { passed: 0, failed: 0, skipped: 0 }
for (const tier of ['unit', 'e2e', 'system']) {
  const counts = JSON.parse(readFileSync(`.tmp/test-counts/${tier}.json`, 'utf8'))
  for (const key of Object.keys(total)) total[key] += counts[key]
}
console.log(`Tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`)
process.exit(total.failed === 0 ? 0 : 1)
