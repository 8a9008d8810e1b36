/**
 * Address forms: the one normal form used for checking, recording and logging, the rule parser
 * behind the allow/deny lists, and malformed addresses in the config refused at boot (one line,
 * exit 2).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { canonicalIp, clientIpOf, networkKey, parseRule, ruleText } from '../../src/lib/ip.js'
import { loadConfig, ConfigError } from '../../config/load.js'
import { tempDir } from '../tmp.js'

test('one normal form: IPv4-mapped → IPv4, brackets and zone ids dropped, IPv6 compressed lower-case', () => {
  const cases: Array<[string, string | null]> = [
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:cb00:7107', '203.0.113.7'],
    ['0:0:0:0:0:ffff:7f00:1', '127.0.0.1'],
    ['[2001:DB8:0:0:0:0:0:1]', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%25en0]', 'fe80::1'],
    ['::1', '::1'],
    [' 10.0.0.1 ', '10.0.0.1'],
    ['010.0.0.1', null],
    ['256.1.1.1', null],
    ['127.1', null],
    ['1.2.3.4/32', null],
    ['example.com', null],
    ['', null],
    ['::ffff:1.2.3.4:80', null]
  ]
  for (const [input, expected] of cases) assert.equal(canonicalIp(input), expected, JSON.stringify(input))
})

test('client address from request.ip: ports from proxies removed, garbage kept short and stable', () => {
  assert.equal(clientIpOf('::ffff:127.0.0.1'), '127.0.0.1')
  assert.equal(clientIpOf('198.51.100.4:51234'), '198.51.100.4')
  assert.equal(clientIpOf('[2001:db8::7]:443'), '2001:db8::7')
  assert.equal(clientIpOf(undefined), 'unknown')
  assert.equal(clientIpOf('x'.repeat(200)).length, 64)
})

test('rules: addresses and CIDR networks of both families; mapped networks become IPv4; bad forms refused', () => {
  assert.deepEqual(parseRule('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' })
  assert.deepEqual(parseRule('[2001:db8::]/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' })
  assert.deepEqual(parseRule('::ffff:10.0.0.0/104'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' })
  assert.equal(ruleText(parseRule('2001:0DB8::0001')!), '2001:db8::1')
  for (const bad of ['10.0.0.0/33', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/x', '::ffff:10.0.0.0/64', '10.0.0.0/8/8', 'localhost', '1.2.3']) {
    assert.equal(parseRule(bad), null, bad)
  }
})

test('IPv6 clients are grouped per network for rate limits', () => {
  assert.equal(networkKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64), '2001:db8:1:2::/64')
  assert.equal(networkKey('2001:db8:1:2::1', 64), networkKey('2001:db8:1:2::2', 64))
  assert.notEqual(networkKey('2001:db8:1:2::1', 64), networkKey('2001:db8:1:3::1', 64))
  assert.equal(networkKey('2001:db8::1', 128), '2001:db8::1')
  assert.equal(networkKey('203.0.113.7', 64), '203.0.113.7')
})

function refusal (env: Record<string, string>, yaml?: string): string {
  const cwd = tempDir()
  const argv: string[] = []
  if (yaml !== undefined) {
    writeFileSync(join(cwd, 'g.yaml'), yaml)
    argv.push('--config', 'g.yaml')
  }
  try {
    loadConfig({ argv, env, cwd })
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    assert.ok(!err.message.includes('\n'), 'one line')
    return err.message
  }
  assert.fail('expected the configuration to be refused')
}

test('malformed addresses in the config are refused at boot, naming key, entry and expected form', () => {
  assert.match(refusal({ GATEWAY_IP_DENY: '10.0.0.1,10.0.0.300' }), /^ipFilter\.deny\[1\] \(env GATEWAY_IP_DENY\) = "10\.0\.0\.300": expected an IP address or CIDR/)
  assert.match(refusal({ GATEWAY_IP_ALLOW: '10.0.0.0/40' }), /ipFilter\.allow\[0\].*"10\.0\.0\.0\/40"/)
  assert.match(refusal({ GATEWAY_TRUSTED_PROXIES: 'proxy.internal' }), /clientIp\.trustedProxies\[0\].*or one of loopback \| linklocal \| uniquelocal/)
  assert.match(refusal({ GATEWAY_BLACKLIST_IGNORE: '::1,nope' }), /blacklist\.ignore\[1\]/)
  assert.match(refusal({}, 'base_url: https://api.openai.com\nip_whitelist:\n  - 192.168.1.1\n  - 192.168.1.x\n'), /ipFilter\.allow\[1\] \(file .*\) = "192\.168\.1\.x"/)
  assert.match(refusal({ REDIS_URL: 'http://cache:6379' }), /redis\.url \(env REDIS_URL\): expected a URL like redis:\/\//)
  assert.ok(!refusal({ REDIS_URL: 'http://user:hunter2pass@cache:6379' }).includes('hunter2pass'), 'a Redis password is not echoed')
})

test('address lists are stored in normal form; seed 004 lists, zone ids and brackets accepted', () => {
  const cwd = tempDir()
  writeFileSync(join(cwd, 'openai-chat-proxy-config.yaml'), 'base_url: https://api.openai.com\nip_whitelist: ["::ffff:10.1.2.3", "[2001:DB8::1]"]\nip_blacklist: ["fe80::1%eth0", "10.9.0.0/16"]\n')
  const { config } = loadConfig({ env: { GATEWAY_TRUSTED_PROXIES: 'loopback, 10.0.0.0/8' }, cwd })
  assert.deepEqual(config.ipFilter.allow, ['10.1.2.3', '2001:db8::1'])
  assert.deepEqual(config.ipFilter.deny, ['fe80::1', '10.9.0.0/16'])
  assert.deepEqual(config.clientIp.trustedProxies, ['loopback', '10.0.0.0/8'])
  assert.deepEqual(config.blacklist.ignore, ['127.0.0.0/8', '::1'], 'loopback is never blacklisted automatically by default')
  assert.deepEqual(loadConfig({ env: { GATEWAY_BLACKLIST_IGNORE: 'none' }, cwd: tempDir() }).config.blacklist.ignore, [])
})

test('the command exits 2 with one line for a malformed address', () => {
  const cli = [`--import=${import.meta.resolve('tsx')}`, fileURLToPath(new URL('../../src/cli.ts', import.meta.url))]
  const r = spawnSync(process.execPath, [...cli, '--check-config'], {
    env: { PATH: process.env.PATH, GATEWAY_IP_DENY: '2001:db8::/200' }, encoding: 'utf8', cwd: tempDir(), timeout: 30_000
  })
  assert.equal(r.status, 2, r.stderr)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0], /ipFilter\.deny\[0\] \(env GATEWAY_IP_DENY\) = "2001:db8::\/200"/)
})
