/**
 * Target configuration from YAML and from the seeds' forms, its checks (one-line errors) and its
 * secrets (keys masked and redacted, key names kept).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import { maskedConfig } from '../../config/describe.js'
import { secretsOf } from '../../config/secrets.js'
import { inferProvider } from '../../config/sections/targets.js'
import { tempDir } from '../helper.js'
import { refusal } from '../config/support.js'

function load (argv: string[] = [], env: Record<string, string> = {}, yaml?: string) {
  const cwd = tempDir()
  if (yaml !== undefined) {
    writeFileSync(join(cwd, 'gateway.yaml'), yaml)
  }
  return loadConfig({ argv, env, cwd }).config
}

test('seed 003: key:domain lists from env and repeated flags, split on the first colon, bare domains → https', () => {
  const c = load(['-targets', 'b:b.example.com:8443', '--targets=C:http://c.example.com'], { OPENAI_PROXY_TARGETS: 'oa:api.openai.com, az:res.openai.azure.com' })
  assert.equal(c.targets.oa.url, 'https://api.openai.com')
  assert.equal(c.targets.oa.provider, 'openai')
  assert.equal(c.targets.az.provider, 'azure')
  assert.equal(c.targets.b.url, 'https://b.example.com:8443')
  assert.equal(c.targets.c.url, 'http://c.example.com', 'an explicit http:// stays http (seed 003 broke it)')
  assert.equal(c.routing.defaultTarget, 'default')
  assert.match(refusal(() => load([], { OPENAI_PROXY_TARGETS: 'nocolon' })), /OPENAI_PROXY_TARGETS.*key:domain/)
  assert.match(refusal(() => load(['-targets', 'a.b:x.com'])), /target name "a\.b"/)
})

test('seed 002: OPENAI_API_HOST and CLAUDE_API_HOST make targets with Host prefixes and providers', () => {
  const c = load([], { OPENAI_API_HOST: 'api.openai.com', CLAUDE_API_HOST: 'api.anthropic.com' })
  assert.deepEqual({ url: c.targets.openai.url, provider: c.targets.openai.provider, prefixes: c.targets.openai.hostPrefixes },
    { url: 'https://api.openai.com', provider: 'openai', prefixes: ['openai.api.'] })
  assert.deepEqual({ url: c.targets.claude.url, provider: c.targets.claude.provider, prefixes: c.targets.claude.hostPrefixes },
    { url: 'https://api.anthropic.com', provider: 'anthropic', prefixes: ['claude.api.'] })
  const flags = load(['--CLAUDE_API_HOST', 'claude.internal.example'])
  assert.equal(flags.targets.claude.url, 'https://claude.internal.example')
})

test('seed 004: proxy and proxy_url_path land on the default target', () => {
  const c = load([], {}, 'base_url: https://api.example.com\nproxy: http://127.0.0.1:7890\nproxy_url_path: /v2/chat\n')
  assert.equal(c.upstream.proxy, 'http://127.0.0.1:7890')
  assert.deepEqual(c.upstream.pathRewrites, { '/v1/chat/completions': '/v2/chat' })
  const empty = load([], {}, 'base_url: https://api.example.com\nproxy:\n')
  assert.equal(empty.upstream.proxy, '')
})

test('YAML targets: defaults filled, inherited timeouts, keys named, GATEWAY_TARGETS JSON, default target choice', () => {
  const c = load([], { GATEWAY_TARGETS: '{"groq":{"url":"api.groq.com","keys":["gsk-abcdefgh"]}}', GATEWAY_DEFAULT_TARGET: 'groq' }, `
upstream:
  firstByteTimeoutMs: 1234
targets:
  oa:
    url: https://api.openai.com/v1
    keys: [sk-one-aaaaaaaa, { key: sk-two-bbbbbbbb, name: backup, weight: 2 }]
    idleTimeoutMs: 99
`)
  assert.equal(c.targets.oa.firstByteTimeoutMs, 1234, 'inherited from upstream')
  assert.equal(c.targets.oa.idleTimeoutMs, 99)
  assert.deepEqual(c.targets.oa.keys, [{ name: 'key-1', key: 'sk-one-aaaaaaaa', weight: 1 }, { name: 'backup', key: 'sk-two-bbbbbbbb', weight: 2 }])
  assert.equal(c.targets.groq.url, 'https://api.groq.com')
  assert.equal(c.targets.groq.provider, 'openai-compatible')
  assert.equal(c.routing.defaultTarget, 'groq')
  assert.equal(load([], { GATEWAY_DEFAULT_TARGET: 'none' }).routing.defaultTarget, '')
  assert.deepEqual(load([], { GATEWAY_UPSTREAM_KEY: 'sk-single-111', GATEWAY_UPSTREAM_KEYS: 'sk-extra-2222' }).upstream.keys.map(k => typeof k === 'string' ? k : k.key), ['sk-single-111', 'sk-extra-2222'])
})

test('bad target configuration stops the boot with one line', () => {
  assert.match(refusal(() => load([], {}, 'targets:\n  default:\n    url: https://x.example\n')), /"default" is reserved.*upstream:/)
  assert.match(refusal(() => load([], {}, 'targets:\n  Oa:\n    url: https://x.example\n')), /target name "Oa"/)
  assert.match(refusal(() => load([], {}, 'targets:\n  oa:\n    url: https://x.example\n    colour: red\n')), /targets\.oa\.colour: unknown key/)
  assert.match(refusal(() => load([], {}, 'targets:\n  oa:\n    url: ftp://x.example\n')), /targets\.oa\.url.*http/)
  assert.match(refusal(() => load([], {}, 'targets:\n  oa:\n    url: https://x.example\n    provider: bedrock\n')), /targets\.oa\.provider.*one of auto \| openai/)
  assert.match(refusal(() => load([], {}, 'targets:\n  oa:\n    url: https://x.example\n    pathRewrites: { v1/x: /y }\n')), /pathRewrites.*start with \//)
  assert.match(refusal(() => load([], {}, 'targets:\n  oa:\n    url: https://x.example\n    keys: [{ key: sk-a-aaaaaaaa, name: k }, { key: sk-b-bbbbbbbb, name: k }]\n')), /key name "k" is used twice/)
  assert.match(refusal(() => load([], { GATEWAY_DEFAULT_TARGET: 'nope' })), /routing\.defaultTarget.*"nope".*expected one of default/)
  assert.match(refusal(() => load([], { GATEWAY_TARGET_HEADER_ALLOW: 'a.example/path' })), /allowHosts.*a\.example\/path/)
  assert.match(refusal(() => load([], {}, 'upstream:\n  headers: { "bad header": x }\n')), /not a valid header name/)
})

test('keys are secrets (masked, redacted); key names and other fields are not', () => {
  const c = load([], { HTTPS_PROXY: 'http://user:pw-secret-9@proxy.example:3128' }, `
targets:
  oa:
    url: https://api.openai.com
    keys: [{ key: sk-pool-secret-aaaa, name: team-key }]
    proxy: http://u:target-proxy-pw@p.example:1
`)
  const secrets = secretsOf(c)
  assert.ok(secrets.includes('sk-pool-secret-aaaa'))
  assert.ok(secrets.includes('http://u:target-proxy-pw@p.example:1'))
  assert.ok(secrets.includes('http://user:pw-secret-9@proxy.example:3128'))
  assert.ok(!secrets.includes('team-key'), 'names are what logs show')
  assert.ok(!secrets.includes('https://api.openai.com'))
  const masked = JSON.stringify(maskedConfig(c))
  assert.ok(!masked.includes('sk-pool-secret-aaaa'))
  assert.ok(!masked.includes('target-proxy-pw'))
  assert.ok(!masked.includes('pw-secret-9'))
  assert.ok(masked.includes('"name":"team-key"'))
  assert.ok(Array.isArray((maskedConfig(c) as { targets: { oa: { keys: unknown } } }).targets.oa.keys), 'lists stay lists')
})

test('target header values are secrets (masked by --check-config, redacted, filtered from answers); their names are not', () => {
  const c = load([], {}, `
upstream:
  headers: { x-org-token: org-header-secret-1 }
targets:
  oa:
    url: https://api.openai.com
    headers: { OpenAI-Organization: org-target-secret-2 }
`)
  const secrets = secretsOf(c)
  assert.ok(secrets.includes('org-header-secret-1'))
  assert.ok(secrets.includes('org-target-secret-2'))
  const masked = maskedConfig(c) as { upstream: { headers: Record<string, string> }, targets: { oa: { headers: Record<string, string> } } }
  assert.deepEqual(masked.upstream.headers, { 'x-org-token': '[REDACTED]' })
  assert.deepEqual(masked.targets.oa.headers, { 'OpenAI-Organization': '[REDACTED]' })
})

test('provider inference from the host', () => {
  assert.equal(inferProvider('https://api.anthropic.com'), 'anthropic')
  assert.equal(inferProvider('https://my-res.openai.azure.com'), 'azure')
  assert.equal(inferProvider('https://my-res.cognitiveservices.azure.com'), 'azure')
  assert.equal(inferProvider('https://api.openai.com/v1'), 'openai')
  assert.equal(inferProvider('https://openrouter.ai/api'), 'openai-compatible')
  assert.equal(inferProvider('mock'), 'openai')
})
