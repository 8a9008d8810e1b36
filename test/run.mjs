// Runs every test/**/*.test.ts with Node's own test runner through tsx (Node 20's `node --test`
// does not expand globs itself). The runner's summary (`# pass N`, `# fail N`) is what CI counts.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function find (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...find(path))
    else if (name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

// system packages some suites need (redis-server, chromium): each scripts/ensure-*.sh installs its
// package when missing, so a fresh machine needs nothing by hand
for (const script of readdirSync('scripts').filter(n => /^ensure-.*\.sh$/.test(n)).sort()) {
  const r = spawnSync('bash', [join('scripts', script)], { stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`${script} failed: the tests that need it cannot run`)
    process.exit(1)
  }
}

const only = process.argv.slice(2)
const files = only.length > 0 ? only : find('test').sort()
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-timeout=120000', ...files], { stdio: 'inherit' })
process.exit(result.status ?? 1)
