/**
 * The Dockerfile, checked without a Docker engine: a Dockerfile linter (dockerfile-utils), the
 * rules the image must follow, and the image's runtime emulated on this machine: the project
 * built as the build stage builds it, laid out as the runtime stage copies it, started with the
 * image's ENTRYPOINT and ENV, probed with its HEALTHCHECK, stopped with its STOPSIGNAL.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Instruction } from 'dockerfile-ast'
import { validate, ValidationSeverity } from 'dockerfile-utils'
import { request } from 'undici'
import { allOptions } from '../../config/schema.js'
import { defaultOf } from '../../config/describe.js'
import { startMock } from '../helper.js'
import { tempDir } from '../tmp.js'
import { ROOT, allOf, dockerfileStages, execForm, healthcheckCommand, only, read, stageEnv, type Stage } from './files.js'
import { freePort } from '../ports.js'

const rootPath = fileURLToPath(ROOT)
const dockerfile = read('Dockerfile')
const stages = dockerfileStages(dockerfile)
const runtime = stages.at(-1) as Stage
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>, scripts: Record<string, string>, engines: { node: string } }
const entrypoint = execForm(only(runtime, 'ENTRYPOINT')[0].getArgumentsContent() ?? '')
const probe = healthcheckCommand(only(runtime, 'HEALTHCHECK')[0])

/** Where a COPY lands under WORKDIR: `COPY package.json ./` → package.json, `COPY x ./dist` → dist. */
function destination (copy: Instruction): string {
  const args = copy.getArguments().map(a => a.getValue()).filter(a => !a.startsWith('--'))
  const dest = (args.at(-1) ?? '').replace(/^\.\/?/, '')
  return dest === '' || dest.endsWith('/') ? (args[0].split('/').at(-1) ?? '') : dest.replace(/\/$/, '')
}

function fromStage (copy: Instruction): string | undefined {
  return (copy as unknown as { getFromFlag: () => { getValue: () => string } | null }).getFromFlag()?.getValue()
}

test('the Dockerfile lints clean (dockerfile-utils, every rule as an error)', () => {
  const all = ValidationSeverity.ERROR
  const problems = validate(dockerfile, {
    deprecatedMaintainer: all,
    directiveCasing: all,
    emptyContinuationLine: all,
    instructionCasing: all,
    instructionCmdMultiple: all,
    instructionEntrypointMultiple: all,
    instructionHealthcheckMultiple: all,
    instructionJSONInSingleQuotes: all,
    instructionWorkdirRelative: all
  })
  assert.deepEqual(problems.map(p => `line ${p.range.start.line + 1}: ${p.message}`), [])
})

test('multi-stage on one pinned Node LTS image; production dependencies only at run time', () => {
  assert.ok(stages.length >= 2, 'a build stage and a runtime stage')
  const images = new Set(stages.map(s => s.image))
  assert.equal(images.size, 1, `one base image: ${[...images].join(', ')}`)
  const m = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+(?:-slim)?$/.exec(stages[0].image)
  assert.ok(m !== null, `${stages[0].image} pins a full Node version`)
  const [major, minor] = [Number(m[1]), Number(m[2])]
  assert.equal(major % 2, 0, 'an even major: an LTS line')
  assert.equal(major, Number(process.versions.node.split('.')[0]), 'the major the project runs and tests on')
  const min = /(\d+)\.(\d+)/.exec(pkg.engines.node)
  assert.ok(min !== null && (major > Number(min[1]) || (major === Number(min[1]) && minor >= Number(min[2]))), `satisfies engines ${pkg.engines.node}`)

  const runs = stages.flatMap(s => only(s, 'RUN').map(r => r.getArgumentsContent() ?? ''))
  assert.ok(runs.every(r => !/\bnpm (?:install|i)\b/.test(r)), 'npm ci from the lockfile, never npm install')
  assert.ok(runs.some(r => /npm ci\b.*--omit=dev/.test(r)), 'a stage installs production dependencies only')
  assert.equal(only(runtime, 'RUN').filter(r => /npm/.test(r.getArgumentsContent() ?? '')).length, 0, 'the runtime installs nothing')
  const production = stages.find(s => only(s, 'RUN').some(r => /npm ci\b.*--omit=dev/.test(r.getArgumentsContent() ?? '')))
  const modules = only(runtime, 'COPY').find(c => destination(c) === 'node_modules')
  assert.ok(production?.name !== null && production?.name !== undefined)
  assert.equal(modules !== undefined ? fromStage(modules) : undefined, production.name, 'node_modules come from the production-only stage')
})

test('runtime: non-root user, SIGTERM, health probe, BASE_PATH volume, the default port exposed', () => {
  const users = only(runtime, 'USER').map(u => u.getArgumentsContent() ?? '')
  assert.ok(users.length > 0 && !/^(root|0)(:|$)/.test(users.at(-1) ?? ''), `runs as ${users.at(-1) ?? 'root'}`)
  assert.equal(only(runtime, 'STOPSIGNAL')[0]?.getArgumentsContent(), 'SIGTERM')
  assert.equal(only(runtime, 'HEALTHCHECK').length, 1)
  const env = stageEnv(runtime)
  assert.equal(env.GATEWAY_HOST, '0.0.0.0', 'listens on every interface inside the container')
  assert.equal(env.GATEWAY_PORT, undefined, 'the port stays configurable by PROXY_PORT / GATEWAY_PORT')
  const volumes = only(runtime, 'VOLUME').flatMap(v => execForm(v.getArgumentsContent() ?? '[]'))
  assert.ok(volumes.includes(env.BASE_PATH), `BASE_PATH (${env.BASE_PATH}) is a volume`)
  assert.deepEqual(only(runtime, 'EXPOSE').map(e => Number(e.getArgumentsContent())), [defaultOf('server.port')])
})

test('nothing secret is baked in: no key, token or password in ENV or ARG, no .env in the build context', () => {
  const secretNames = new Set(allOptions.filter(o => o.secret === true).flatMap(o => o.env))
  for (const stage of stages) {
    for (const name of Object.keys(stageEnv(stage))) {
      assert.ok(!secretNames.has(name) && !/KEY|TOKEN|SECRET|PASSWORD|PROXY/i.test(name), `ENV ${name}`)
    }
  }
  for (const a of allOf('ARG', dockerfile)) assert.ok(!/KEY|TOKEN|SECRET|PASSWORD/i.test(a.getArgumentsContent() ?? ''), `ARG ${a.getArgumentsContent() ?? ''}`)

  // .dockerignore is an allowlist: exactly the files and folders the Dockerfile copies from the context
  const lines = read('.dockerignore').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  assert.equal(lines[0], '*', 'everything is excluded first')
  const admitted = lines.slice(1).map(l => { assert.ok(l.startsWith('!'), l); return l.slice(1) })
  const sources = stages.flatMap(s => only(s, 'COPY'))
    .filter(c => fromStage(c) === undefined)
    .flatMap(c => c.getArguments().map(a => a.getValue()).filter(a => !a.startsWith('--')).slice(0, -1))
  assert.deepEqual([...new Set(sources)].sort(), [...admitted].sort())
  for (const secret of ['.env', 'gateway.yaml', 'openai-chat-proxy-config.yaml', 'node_modules']) assert.ok(!admitted.includes(secret), secret)
})

test('the build stage copies every folder the build compiles', () => {
  const include = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include
  const build = stages.find(s => only(s, 'RUN').some(r => /npm run build/.test(r.getArgumentsContent() ?? '')))
  assert.ok(build !== undefined, 'a stage runs npm run build')
  const copied = only(build, 'COPY').flatMap(c => c.getArguments().map(a => a.getValue()).slice(0, -1))
  for (const dir of include) assert.ok(copied.includes(dir), `${dir} is copied into the build stage`)
  assert.equal(pkg.scripts.build, 'tsc -p tsconfig.build.json')
})

test('ENTRYPOINT and HEALTHCHECK run the files package.json names', () => {
  assert.deepEqual(entrypoint, ['node', pkg.bin['llm-gateway']], 'ENTRYPOINT runs the package bin')
  assert.equal(pkg.scripts.start, entrypoint.join(' '), 'npm start runs the same command')
  assert.equal(probe[0], 'node')
  assert.match(probe[1], /^dist\/src\/healthcheck\.js$/)
  assert.equal(only(runtime, 'CMD').length, 0, 'no CMD: arguments after the image name are the gateway\'s flags')
})

test('the image emulated: built files start with ENTRYPOINT, answer HEALTHCHECK, stop on STOPSIGNAL', async (t) => {
  // the runtime stage's layout: package.json, node_modules, dist/ (WORKDIR /app)
  const app = tempDir('gw-image-')
  assert.deepEqual(only(runtime, 'COPY').map(destination).sort(), ['dist', 'node_modules', 'package.json'])
  copyFileSync(join(rootPath, 'package.json'), join(app, 'package.json'))
  symlinkSync(join(rootPath, 'node_modules'), join(app, 'node_modules'), 'dir')
  const tsc = join(rootPath, 'node_modules', 'typescript', 'bin', 'tsc')
  const built = spawnSync(process.execPath, [tsc, '-p', join(rootPath, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], { encoding: 'utf8' })
  assert.equal(built.status, 0, built.stdout + built.stderr)
  for (const file of [pkg.bin['llm-gateway'], probe[1]]) assert.ok(existsSync(join(app, file)), `${file} is built`)
  assert.match(readFileSync(join(app, pkg.bin['llm-gateway']), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin keeps its shebang')

  const mock = await startMock(t)
  const data = join(app, 'data')
  mkdirSync(data)
  const port = await freePort()
  const env = {
    PATH: process.env.PATH ?? '',
    ...stageEnv(runtime),
    // tests bind loopback only; the data volume is a temp folder
    GATEWAY_HOST: '127.0.0.1',
    BASE_PATH: data,
    // seed 002's port name: the probe must follow it without being told
    PROXY_PORT: String(port),
    GATEWAY_UPSTREAM_URL: mock.url
  }
  const runProbe = (): number | null => spawnSync(probe[0], probe.slice(1), { cwd: app, env, encoding: 'utf8', timeout: 15_000 }).status

  assert.equal(runProbe(), 1, 'unhealthy before the gateway listens')
  const child = spawn(entrypoint[0], entrypoint.slice(1), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for await (const line of createInterface({ input: child.stdout })) {
    if ((JSON.parse(line) as { msg?: string }).msg === 'gateway listening') break
  }
  assert.equal(runProbe(), 0, 'healthy once listening')
  const models = await request(`http://127.0.0.1:${port}/v1/models`)
  assert.equal(models.statusCode, 200)
  await models.body.dump()

  const exited = once(child, 'exit')
  child.kill(only(runtime, 'STOPSIGNAL')[0].getArgumentsContent() as NodeJS.Signals)
  const [code] = await exited
  assert.equal(code, 0, 'a clean exit on the stop signal')
  assert.equal(runProbe(), 1, 'unhealthy once stopped')
})
