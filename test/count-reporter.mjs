// A second reporter for each tier's run (test/run.mjs): the tier's counts as one JSON line, so
// test/summary.mjs can print one closing line for the whole suite after the three tiers.
export default async function * countReporter (source) {
  const counts = { passed: 0, failed: 0, skipped: 0 }
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    if (event.data.details?.type === 'suite') continue
    if (event.data.skip !== undefined || event.data.todo !== undefined) counts.skipped++
    else if (event.type === 'test:pass') counts.passed++
    else counts.failed++
  }
  yield `${JSON.stringify(counts)}\n`
}
