// Test instrumentation for load.test.ts, preloaded into the gateway child only (never part of the
// gateway): on SIGUSR2, collect garbage twice (the child runs with --expose-gc) and write one JSON
// line with process.memoryUsage() to stderr, so the test reads the heap after a full collection.
process.on('SIGUSR2', () => {
  globalThis.gc()
  globalThis.gc()
  process.stderr.write(`GC-PROBE ${JSON.stringify(process.memoryUsage())}\n`)
})
