/**
 * A real browser for the tests that need one: headless Chromium (scripts/ensure-chromium.sh
 * installs /usr/bin/chromium; without it these tests fail) opens a page of a loopback site, and
 * the page POSTs what it saw to the site's `/report`. The site can also serve ES modules straight
 * from node_modules (`/modules/<package>/…`), so a page imports an SDK's own browser build.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { tempDir } from './tmp.js'

const CHROMIUM = '/usr/bin/chromium'
const MODULES = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules')

export interface Site {
  /** the site's origin, e.g. http://127.0.0.1:41234 */
  url: string
  /** settles with the first report the page posts */
  report: Promise<unknown>
}

/** Serves `pages` (path → HTML), `/modules/<package>/<file>.mjs|js` and takes POST /report. */
export async function startSite (t: TestContext, pages: Record<string, string>): Promise<Site> {
  let reported: (value: unknown) => void = () => {}
  const report = new Promise<unknown>(resolve => { reported = resolve })
  const site = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'POST' && path === '/report') {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => { body += chunk })
      req.on('end', () => { reported(JSON.parse(body)); res.writeHead(204).end() })
      return
    }
    if (pages[path] !== undefined) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(pages[path])
      return
    }
    const file = normalize(join(MODULES, decodeURIComponent(path.slice('/modules/'.length))))
    if (path.startsWith('/modules/') && file.startsWith(MODULES + sep) && /\.m?js$/.test(file) && existsSync(file)) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(readFileSync(file))
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>(resolve => site.listen(0, '127.0.0.1', resolve))
  t.after(() => { site.closeAllConnections(); return new Promise(resolve => site.close(resolve)) })
  return { url: `http://127.0.0.1:${(site.address() as AddressInfo).port}`, report }
}

/**
 * Opens `url` in headless Chromium and waits (bounded) for the site's report, which it returns;
 * the browser is killed when the test ends. Chromium's stderr tail is in the failure message.
 */
export async function reportFromChromium (t: TestContext, site: Site, url: string, timeoutMs = 60_000): Promise<unknown> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/ensure-chromium.sh (Debian package "chromium")`)
  const profile = tempDir('gw-chromium-')
  const browser = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check',
    `--user-data-dir=${profile}`,
    url
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  browser.stderr.setEncoding('utf8')
  browser.stderr.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  let exited = false
  const exit = new Promise(resolve => browser.once('exit', () => { exited = true; resolve(undefined) }))
  t.after(async () => {
    // chromium's own process group (detached above): the browser and the helpers it started
    if (!exited && browser.pid !== undefined) process.kill(-browser.pid, 'SIGKILL')
    await exit
    rmSync(profile, { recursive: true, force: true })
  })

  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), timeoutMs) })
  const outcome = await Promise.race([site.report.then(value => ({ value })), exit.then(() => 'exited' as const), timeout])
  clearTimeout(timer)
  if (outcome === 'timeout') throw new Error(`timed out waiting for the page to report; chromium stderr: ${stderr}`)
  if (outcome === 'exited') throw new Error(`chromium exited before the page reported: ${stderr}`)
  return outcome.value
}
