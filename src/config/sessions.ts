/**
 * Normalises the `sessions:` and `redis:` sections (called by load.ts, after
 * schema validation). Secrets are resolved through the loader's own resolver,
 * so this module never reads the environment or files itself.
 */
import { isLoopbackHost, type RawConfig, type RawSecretRef } from './schema.js'
import * as D from './defaults.js'
import type { RedisConfig, SessionsConfig } from './types.js'

/** Resolves a `{ fromEnv }` / `{ fromFile }` reference (load.ts `resolveSecret`); problems go to the loader's list. */
export type SecretResolver = (ref: RawSecretRef, where: string) => string

/** Redis default port (redis.io: port 6379). */
const REDIS_DEFAULT_PORT = 6379

export function normaliseSessions (raw: RawConfig, warnings: string[], problems: string[], secret: SecretResolver): { sessions: SessionsConfig, redis: RedisConfig | undefined } {
  const s = raw.sessions
  const store = s?.store ?? D.DEFAULT_SESSION_STORE
  const onStoreError = s?.onStoreError ?? D.DEFAULT_SESSION_ON_STORE_ERROR
  if (store === 'redis' && raw.redis === undefined) {
    problems.push('sessions.store: redis without a redis connection: configure the top-level redis settings, or use store: memory')
  }
  if (store === 'redis' && onStoreError === 'allow') {
    warnings.push('sessions.onStoreError is allow: while Redis is unreachable, requests carrying a session id are forwarded without the session binding check')
  }
  const sessions: SessionsConfig = Object.freeze({
    store,
    // Redis PX takes whole milliseconds, at least 1.
    idleTtlMs: Math.max(1, Math.round((s?.idleTtlSeconds ?? D.DEFAULT_SESSION_IDLE_TTL_SECONDS) * 1000)),
    onStoreError
  })
  return { sessions, redis: raw.redis === undefined ? undefined : normaliseRedis(raw.redis, warnings, secret) }
}

function normaliseRedis (r: NonNullable<RawConfig['redis']>, warnings: string[], secret: SecretResolver): RedisConfig {
  // The schema has checked the URL: scheme, no credentials, host, database path.
  const url = new URL(r.url)
  const tls = url.protocol === 'rediss:'
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  if (!tls && !isLoopbackHost(url.hostname)) {
    warnings.push('redis.url is plain redis:// on a non-loopback host: session bindings, rate-limit counters and the password cross the network unencrypted (use rediss://)')
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  return Object.freeze({
    url: r.url,
    host: hostname,
    port: url.port === '' ? REDIS_DEFAULT_PORT : Number(url.port),
    db,
    tls,
    username: r.username,
    password: r.password === undefined ? undefined : secret(r.password, 'redis.password'),
    keyPrefix: r.keyPrefix ?? D.DEFAULT_REDIS_KEY_PREFIX,
    connectTimeoutMs: Math.round((r.connectTimeoutSeconds ?? D.DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS) * 1000),
    commandTimeoutMs: Math.max(1, Math.round((r.commandTimeoutSeconds ?? D.DEFAULT_REDIS_COMMAND_TIMEOUT_SECONDS) * 1000))
  })
}
