/**
 * The one Redis connection of a gateway process, shared by every store set to
 * `redis` (session bindings; rate limits take the same client). Built once in
 * gateway.ts from the `redis:` config section.
 *
 * Failure behaviour: commands never queue while the connection is down
 * (`enableOfflineQueue: false`) and never wait longer than
 * `commandTimeoutMs`, so a Redis outage turns into prompt store errors (each
 * store's fail mode applies), never into hanging requests. The client
 * reconnects forever with a capped backoff; the log says when Redis is lost
 * and when it is back, once per outage.
 */
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisConfig } from '../config/types.js'
import { REDIS_RECONNECT_MAX_DELAY_MS } from '../config/defaults.js'

/**
 * ioredis is loaded when a gateway first needs it: imported at startup it added
 * ~11 MB of RSS (5 MB of heap) to every gateway, with or without a `redis:`
 * section (BENCHMARKS.md, idle streams). It is CommonJS, so require() loads it
 * synchronously and createGateway stays synchronous.
 */
const requireModule = createRequire(import.meta.url)
function redisClass (): typeof Redis {
  return (requireModule('ioredis') as typeof import('ioredis')).Redis
}

/** Reconnect backoff step: attempt n waits n × this, up to REDIS_RECONNECT_MAX_DELAY_MS. */
const RECONNECT_STEP_MS = 100

/**
 * Create the shared client. It does not connect until {@link startRedis}
 * (createGateway does no network I/O). Every key it touches is prefixed with
 * `config.keyPrefix` by ioredis itself.
 */
export function createRedis (config: RedisConfig, logger: Logger): Redis {
  const RedisClient = redisClass()
  const redis = new RedisClient({
    host: config.host,
    port: config.port,
    db: config.db,
    username: config.username,
    password: config.password,
    ...(config.tls ? { tls: isIP(config.host) === 0 ? { servername: config.host } : {} } : {}),
    keyPrefix: config.keyPrefix,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    // Fail fast while disconnected: a queued command would hold its request until Redis returns.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * RECONNECT_STEP_MS, REDIS_RECONNECT_MAX_DELAY_MS),
    connectionName: 'mcp-auth-gateway',
    // CLIENT SETINFO is refused by Redis < 7.2; nothing here needs it.
    disableClientInfo: true,
    lazyConnect: true
  })
  let down = false
  let everReady = false
  redis.on('error', (err: Error & { code?: string }) => {
    // One line per outage, not one per reconnect attempt. The message never holds the password.
    if (down) return
    down = true
    logger.warn({ url: config.url, code: err.code, err }, everReady ? 'redis connection lost; reconnecting' : 'redis unreachable; retrying')
  })
  // 'reconnecting', not 'close': a close we asked for (quit at shutdown) schedules no reconnect.
  redis.on('reconnecting', () => {
    if (everReady && !down) {
      down = true
      logger.warn({ url: config.url }, 'redis connection lost; reconnecting')
    }
  })
  redis.on('ready', () => {
    logger.info({ url: config.url }, everReady ? 'redis connection restored' : 'redis connected')
    everReady = true
    down = false
  })
  return redis
}

/** Start connecting (and reconnecting, forever). Never rejects: failures are logged and retried. */
export function startRedis (redis: Redis): void {
  if (redis.status !== 'wait') return
  redis.connect().catch(() => { /* logged by the error listener; ioredis keeps retrying */ })
}

/** Close the connection: QUIT when connected (bounded by the command timeout), else just disconnect. */
export async function stopRedis (redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit()
      return
    } catch { /* fall through */ }
  }
  redis.disconnect()
}
