/**
 * The `sessions:` and `redis:` config sections: normalised values, defaults,
 * the password as a secret reference, warnings for risky settings, and the
 * cross-section rule. Field-level rules are covered by the fixtures
 * (test/fixtures/config/sessions-*.yaml, redis-url-*.yaml).
 */
import t from 'tap'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig, type Env } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'
import type { GatewayConfig } from '../../src/config/types.js'
import { MINIMAL_CONFIG } from '../helpers/config-text.js'

const BASE = MINIMAL_CONFIG.replace('https://gw.example.com', 'https://mcp.example.com')

function parse (extra: string, env: Env = {}, baseDir?: string): GatewayConfig {
  return parseConfig(BASE + extra, { env, ...(baseDir !== undefined ? { baseDir } : {}) })
}

function problems (extra: string, env: Env = {}): readonly string[] {
  try {
    parse(extra, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('defaults: binding on, in memory, fail closed, one hour idle; no Redis', async (t) => {
  const c = parse('')
  t.strictSame(c.sessions, { store: 'memory', idleTtlMs: 3_600_000, onStoreError: 'deny' })
  t.equal(c.redis, undefined)
  t.ok(Object.isFrozen(c.sessions))
})

t.test('redis: the URL is split into connection settings; defaults applied', async (t) => {
  const cases: Array<[string, Partial<NonNullable<GatewayConfig['redis']>>]> = [
    ['redis://127.0.0.1', { host: '127.0.0.1', port: 6379, db: 0, tls: false }],
    ['redis://localhost:6380/', { host: 'localhost', port: 6380, db: 0, tls: false }],
    ['redis://127.0.0.1:7000/3', { host: '127.0.0.1', port: 7000, db: 3, tls: false }],
    ['rediss://redis.example.com:6380/1', { host: 'redis.example.com', port: 6380, db: 1, tls: true }],
    ['rediss://[2001:db8::1]:6379', { host: '2001:db8::1', port: 6379, db: 0, tls: true }]
  ]
  for (const [url, want] of cases) {
    const r = parse(`redis:\n  url: ${JSON.stringify(url)}\n`).redis!
    t.match(r, want, url)
    t.equal(r.url, url, 'the URL is kept as configured (it holds no credentials, so it may be logged)')
  }
  const r = parse('redis:\n  url: redis://127.0.0.1\n').redis!
  t.strictSame(r, {
    url: 'redis://127.0.0.1',
    host: '127.0.0.1',
    port: 6379,
    db: 0,
    tls: false,
    username: undefined,
    password: undefined,
    keyPrefix: 'mcp-gw:',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 1000
  })
  t.ok(Object.isFrozen(r))
})

t.test('redis: all settings, the password from the environment or a file', async (t) => {
  const c = parse(`sessions:
  store: redis
  idleTtlSeconds: 0.5
  onStoreError: deny
redis:
  url: rediss://redis.example.com
  username: gateway
  password: { fromEnv: REDIS_PW }
  keyPrefix: "tenant-a:"
  connectTimeoutSeconds: 2
  commandTimeoutSeconds: 0.25
`, { REDIS_PW: 's3cret pw' })
  t.strictSame(c.sessions, { store: 'redis', idleTtlMs: 500, onStoreError: 'deny' })
  t.match(c.redis, { username: 'gateway', password: 's3cret pw', keyPrefix: 'tenant-a:', connectTimeoutMs: 2000, commandTimeoutMs: 250 })
  t.strictSame(c.warnings, [], 'rediss:// and deny: nothing risky')

  const dir = mkdtempSync(join(tmpdir(), 'mcp-gw-redis-pw-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'pw'), 'from-file\n')
  chmodSync(join(dir, 'pw'), 0o600)
  const f = parse('redis:\n  url: redis://127.0.0.1\n  password: { fromFile: pw }\n', {}, dir)
  t.equal(f.redis!.password, 'from-file', 'read from the file, relative to the config, trailing newline dropped')
})

t.test('risky settings are accepted with a startup warning', async (t) => {
  const plain = parse('sessions: { store: redis }\nredis:\n  url: redis://redis.internal:6379\n')
  t.ok(plain.warnings.some((w) => w.startsWith('redis.url is plain redis:// on a non-loopback host')), 'plain redis:// off loopback')
  const allow = parse('sessions: { store: redis, onStoreError: allow }\nredis:\n  url: redis://127.0.0.1\n')
  t.ok(allow.warnings.some((w) => w.startsWith('sessions.onStoreError is allow')), 'allow fails open')
  t.notOk(parse('sessions: { store: redis }\nredis:\n  url: redis://127.0.0.1\n').warnings.some((w) => w.includes('redis')), 'loopback and deny: no warning')
})

t.test('cross-section and secret problems', async (t) => {
  const cases: Array<[string, string, Env, string[]]> = [
    ['store redis without redis', 'sessions: { store: redis }\n', {}, ['sessions.store: redis without a redis connection: configure the top-level redis settings, or use store: memory']],
    ['password variable not set', 'redis:\n  url: redis://127.0.0.1\n  password: { fromEnv: NOPE }\n', {}, ['redis.password.fromEnv: environment variable NOPE is not set or empty: the secret must be provided']],
    ['password in the URL', 'redis:\n  url: "redis://:topsecret@127.0.0.1"\n', {}, ['redis.url: URL contains a password: give it with redis.password ({ fromEnv } or { fromFile }), never in the URL']]
  ]
  for (const [name, extra, env, want] of cases) {
    const got = problems(extra, env)
    t.strictSame(got, want, name)
    t.notOk(got.join('\n').includes('topsecret'), `${name}: the password is never echoed`)
  }
})
