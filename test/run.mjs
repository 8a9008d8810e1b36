// Runs one tier of tests with Node's own test runner through tsx:
//   node test/run.mjs unit | e2e | system   (npm run test:unit / test:e2e / test:system)
//   node test/run.mjs FILE...               (some files, whatever their tier)
// The tiers, by what a test needs:
//   unit    pure libraries and `inject`: no listening gateway, no system package, under a minute;
//           npm run test:unit fails below the line coverage of .c8rc.json on this tier alone
//   e2e     the real gateway and the mock upstream on 127.0.0.1, port 0: every file not listed below
//   system  Redis, Chromium, the compose file, the image emulation, load, fuzzing, the bench smoke test
// A new test file is e2e unless it is added to a list here. Each tier prints the TAP reporter's
// summary (`# pass N`, `# fail N`); `npm test` closes with one line for all three (test/summary.mjs).
import { globSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

const UNIT = [
  'test/abuse/blacklist-sync.test.ts',
  'test/abuse/fixed-window.test.ts',
  'test/abuse/ip.test.ts',
  'test/auth/key-extraction.test.ts',
  'test/budget/budget-units.test.ts',
  'test/config/auth-config.test.ts',
  'test/config/load.test.ts',
  'test/config/transforms.test.ts',
  'test/deploy/env-example.test.ts',
  'test/docs.test.ts',
  'test/lib/alias-map.test.ts',
  'test/lib/context-tags.test.ts',
  'test/lib/json-transform.test.ts',
  'test/lib/sse-transform.test.ts',
  'test/lib/stream-end.test.ts',
  'test/logging-redaction.test.ts',
  'test/observability/cost.test.ts',
  'test/observability/fast-metrics.test.ts',
  'test/observability/realtime-usage.test.ts',
  'test/observability/tokens.test.ts',
  'test/realtime/units.test.ts',
  'test/routing/config.test.ts',
  'test/translate/golden.test.ts',
  'test/translate/robustness.test.ts',
  'test/translate/translators.test.ts',
  'test/unit/answers.test.ts',
  'test/unit/coverage-config.test.ts',
  'test/unit/describe.test.ts',
  'test/unit/files.test.ts',
  'test/unit/forwarder.test.ts',
  'test/unit/health-probe.test.ts',
  'test/unit/limits.test.ts',
  'test/unit/policies.test.ts',
  'test/unit/proxy.test.ts',
  'test/unit/realtime.test.ts',
  'test/unit/redis.test.ts',
  'test/unit/target-host.test.ts',
  'test/unit/uploads.test.ts',
  'test/unit/model-groups.test.ts',
  'test/unit/model-groups-inject.test.ts',
  'test/uploads/limiter-hold.test.ts',
  'test/uploads/part-names.test.ts'
]

const SYSTEM = [
  // Redis (scripts/ensure-redis.sh)
  'test/abuse/redis-shared.test.ts',
  'test/abuse/redis-stall.test.ts',
  'test/budget/budgets-redis.test.ts',
  'test/hardening/redis-fuzz.test.ts',
  'test/lib/context-store.test.ts',
  'test/observability/usage-redis.test.ts',
  'test/plugins/context-id-redis.test.ts',
  'test/routing/cooldowns-redis.test.ts',
  // Chromium (scripts/ensure-chromium.sh)
  'test/proxy/browser-sdk.test.ts',
  'test/realtime/browser.test.ts',
  // the compose file (scripts/ensure-docker-compose.sh) and the image emulated from the Dockerfile
  'test/deploy/compose.test.ts',
  'test/deploy/dockerfile.test.ts',
  // load, faults of the machine (disk full, read-only), fuzzing, the benchmark harness
  'test/hardening/load.test.ts',
  'test/hardening/faults.test.ts',
  'test/hardening/fuzz.test.ts',
  'test/hardening/fuzz-upstream.test.ts',
  'test/bench-smoke.test.ts'
]

function tier (name) {
  const all = globSync('test/**/*.test.ts').sort()
  for (const file of [...UNIT, ...SYSTEM]) if (!all.includes(file)) throw new Error(`test/run.mjs lists ${file}, which does not exist`)
  if (name === 'unit') return UNIT
  if (name === 'system') return SYSTEM
  return all.filter(f => !UNIT.includes(f) && !SYSTEM.includes(f))
}

/** System packages (redis-server, chromium, docker compose): each scripts/ensure-*.sh installs its package when missing. */
function ensureSystemPackages () {
  for (const script of readdirSync('scripts').filter(n => /^ensure-.*\.sh$/.test(n)).sort()) {
    const r = spawnSync('bash', [join('scripts', script)], { stdio: 'inherit' })
    if (r.status !== 0) {
      console.error(`${script} failed: the tests that need it cannot run`)
      process.exit(1)
    }
  }
}

const args = process.argv.slice(2)
const named = args.length === 1 && ['unit', 'e2e', 'system'].includes(args[0]) ? args[0] : null
if (args.length === 0) {
  console.error('usage: node test/run.mjs unit|e2e|system, or node test/run.mjs FILE...')
  process.exit(2)
}
const files = named !== null ? tier(named) : args
if (named !== 'unit' && files.some(f => SYSTEM.includes(f) || named === 'system')) ensureSystemPackages()
// a named tier also leaves its counts for test/summary.mjs (the suite's one closing line)
const counting = named === null ? [] : ['--test-reporter=./test/count-reporter.mjs', `--test-reporter-destination=.tmp/test-counts/${named}.json`]
if (named !== null) mkdirSync('.tmp/test-counts', { recursive: true })
const reporters = ['--test-reporter=tap', '--test-reporter-destination=stdout', ...counting]
// the unit tier runs its files in one process: each file would otherwise pay for its own start and
// for tsx compiling the gateway again, which is most of the tier's time
const isolation = named === 'unit' ? ['--test-isolation=none'] : []
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', ...isolation, ...reporters, '--test-timeout=120000', ...files], { stdio: 'inherit' })
process.exit(result.status ?? 1)
