/**
 * Request rate limits on the protected routes, counted by @fastify/rate-limit
 * (its fixed-window stores: an LRU in memory, or a Lua INCR/PEXPIRE script in
 * Redis, shared by every replica):
 * - perIp: before any token work (an onRequest hook ahead of authentication),
 *   keyed by the client IP under `trustProxy`;
 * - perPrincipal: after authentication, keyed by issuer and subject (or client id);
 * - perTool: per caller and tools/call name, once a policy route has parsed
 *   the body (routes without a policy never read bodies, so it does not apply there).
 *
 * Over a limit: 429 with Retry-After and X-RateLimit-Limit/-Remaining/-Reset,
 * the gateway's JSON error body (a JSON-RPC error with the request id for
 * perTool), outcome `rate_limited`. When the store fails: `deny` answers 503
 * with Retry-After (fail closed), `allow` lets the request pass.
 * Health and metadata routes are never limited.
 *
 * The checks work on an {@link Exchange}, so Fastify's route (as onRequest
 * hooks) and the lane (plugins/lane.ts) count the same limits the same way.
 */
import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fastifyRateLimit from '@fastify/rate-limit'
import type { Principal } from '../auth/principal.js'
import type { RateLimitsConfig, RateWindow } from '../config/types.js'
import {
  RATE_LIMIT_MAX_KEY_CHARS, RATE_LIMIT_MEMORY_MAX_KEYS, RATE_LIMIT_STORE_ERROR_LOG_INTERVAL_MS, UNAVAILABLE_RETRY_AFTER_SECONDS
} from '../config/defaults.js'
import type { ClientAddressResolver } from '../proxy/client-ip.js'
import { jsonRpcError, type JsonRpcId, type JsonRpcMessage } from '../mcp/jsonrpc.js'
import { answerInternalError, type Exchange } from './exchange.js'
import type { RouteCors } from './origin.js'
import { NOOP_ROUTE_TELEMETRY, type RateLimitKind, type RouteTelemetry } from '../observability/telemetry.js'

declare module 'fastify' {
  /**
   * The gateway's per-route settings. Declared here because @fastify/rate-limit
   * adds an optional `rateLimit` to this interface, after which TypeScript
   * accepts only objects that share a property with it.
   */
  interface FastifyContextConfig {
    /** Route label in the request log (the configured path); null for health. */
    gwRouteId?: string | null
    /** mcp, metadata or health. */
    kind?: string
    /** The route's CORS settings (protected routes). */
    cors?: RouteCors
  }
}

/**
 * JSON-RPC error code of a rate-limited tools/call. Outside the reserved
 * -32768…-32000 range as MCP 2026-07-28 asks for new codes, mirroring the
 * HTTP status like JSONRPC_INSUFFICIENT_SCOPE (-31403).
 */
export const JSONRPC_RATE_LIMITED = -31429

/** The limiter function @fastify/rate-limit's createRateLimit returns. */
type Limiter = ReturnType<FastifyInstance['createRateLimit']>
type LimitResult = Awaited<ReturnType<Limiter>>

/** The store key of the limit being checked, read by the plugin's keyGenerator. */
const kKey = Symbol('mcp-auth-gateway.rateLimitKey')

/**
 * What the limiter is handed instead of a Fastify request: it reads only our
 * key (keyGenerator, max and timeWindow are ours) and `routeOptions.config`
 * for a per-route group id, which no route sets. So the lane, which has no
 * Fastify request, counts through the same limiter and store.
 */
interface LimiterCarrier { [kKey]: string, routeOptions: { config: Record<string, never> } }
const NO_ROUTE_OPTIONS = { config: {} }

/** Which limit a store key belongs to: its first character. */
const IP = 'i'
const PRINCIPAL = 'p'
const TOOL = 't'

/**
 * Count one request against a limit. `next` runs when the request may go on;
 * otherwise the exchange has been answered (429, or 503 when the store fails
 * under `onStoreError: deny`) and recorded.
 */
export type RateCheck = (x: Exchange, next: () => void) => void

/** The checks one route adds; each undefined when its limit is not configured. */
export interface RouteRateLimits {
  /** Before authentication on Fastify's route (keyed by the client IP under trustProxy). */
  readonly perIp: RateCheck | undefined
  /** After authentication (`x.principal` is set). */
  readonly perPrincipal: RateCheck | undefined
  /**
   * Count each tools/call message of a parsed body; resolves true when the
   * request may go on, false when it was answered (429 or 503). Never rejects.
   */
  readonly perTool: ((x: Exchange, messages: readonly JsonRpcMessage[], requestId: JsonRpcId) => Promise<boolean>) | undefined
}

export interface RateLimits {
  /** The limits of one route; its telemetry counts the refusals (the exchange adds the route's CORS headers). */
  forRoute: (routeId: string, telemetry?: RouteTelemetry) => RouteRateLimits
}

export interface RateLimitDeps {
  readonly clientAddress: ClientAddressResolver
  /** ioredis client for store: redis (the shared connection, session/redis.ts). */
  readonly redis?: unknown
  /** Key prefix in Redis, after the client's own redis.keyPrefix. */
  readonly redisPrefix?: string
}

/** A store key: the limit's letter and its identity, hashed when long (subjects and tool names are unbounded). */
function storeKey (kind: string, id: string): string {
  if (id.length <= RATE_LIMIT_MAX_KEY_CHARS) return kind + ':' + id
  return kind + '#' + createHash('sha256').update(id).digest('base64url')
}

function principalId (p: Principal, key: 'subject' | 'clientId'): string {
  // Tokens without a client id count by subject, never all together under one empty key.
  return key === 'clientId' && p.clientId !== undefined ? `c ${p.issuer} ${p.clientId}` : `s ${p.issuer} ${p.subject}`
}

/**
 * Register @fastify/rate-limit (not global: only the hooks built here apply)
 * and return the per-route hooks; undefined when no limit is configured.
 */
export function registerRateLimits (app: FastifyInstance, config: RateLimitsConfig | undefined, deps: RateLimitDeps): RateLimits | undefined {
  if (config === undefined || (config.perIp === undefined && config.perPrincipal === undefined && config.perTool === undefined)) return undefined
  const windows: Record<string, RateWindow | undefined> = { [IP]: config.perIp, [PRINCIPAL]: config.perPrincipal, [TOOL]: config.perTool }
  const windowOf = (key: string): RateWindow => windows[key[0]!]!
  const redis = config.store === 'redis' ? deps.redis : undefined
  if (config.store === 'redis' && redis === undefined) throw new Error('rateLimits.store is redis but no Redis connection was given')

  let limiter: Limiter | undefined
  void app.register(fastifyRateLimit, {
    global: false,
    // One limiter for all three limits: the key says which, and so its max and window.
    keyGenerator: (req) => (req as unknown as Record<symbol, string>)[kKey]!,
    max: (_req, key) => windowOf(key).max,
    timeWindow: (_req, key) => windowOf(key).windowMs,
    skipOnError: false,
    cache: RATE_LIMIT_MEMORY_MAX_KEYS,
    ...(redis !== undefined ? { redis, nameSpace: deps.redisPrefix ?? '' } : {})
  })
  void app.register(async (instance) => { limiter = instance.createRateLimit() })

  const deny = config.onStoreError === 'deny'
  const UNAVAILABLE_HEADERS = ['retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)]
  let lastStoreErrorLog = 0

  /**
   * Count one hit. A store failure rejects; the shared Redis client fails fast
   * (no offline queue, redis.commandTimeoutSeconds), so an outage never holds requests.
   */
  const hit = (key: string): Promise<LimitResult> => {
    const carrier: LimiterCarrier = { [kKey]: key, routeOptions: NO_ROUTE_OPTIONS }
    return limiter!(carrier as unknown as FastifyRequest)
  }

  /** The store failed: log (throttled when allowing), then deny (503) or allow. Returns true when the request may go on. */
  const storeFailed = (x: Exchange, err: unknown): boolean => {
    const code = (err as { code?: string }).code
    const now = Date.now()
    if (deny || now - lastStoreErrorLog >= RATE_LIMIT_STORE_ERROR_LOG_INTERVAL_MS) {
      lastStoreErrorLog = now
      x.log.warn({ reqId: x.id, code, failMode: config.onStoreError }, 'rate-limit store unavailable')
    }
    if (!deny) return true
    x.outcome = 'rate_limit_unavailable'
    x.sendError(503, 'temporarily_unavailable', 'The rate limit cannot be checked; retry later', UNAVAILABLE_HEADERS)
    return false
  }

  /** Over the limit: the log outcome and metrics; returns the plugin's headers for the refusal. */
  const limited = (x: Exchange, r: LimitResult & { isAllowed: false }, limit: RateLimitKind, telemetry: RouteTelemetry): string[] => {
    x.outcome = 'rate_limited'
    telemetry.rateLimited(limit)
    x.log.debug({ reqId: x.id, limit }, 'rate limited')
    const after = String(Math.max(1, r.ttlInSeconds))
    return ['x-ratelimit-limit', String(r.max), 'x-ratelimit-remaining', '0', 'x-ratelimit-reset', after, 'retry-after', after]
  }

  const check = (limit: RateLimitKind, keyOf: (x: Exchange) => string, telemetry: RouteTelemetry): RateCheck => (x, next) => {
    hit(keyOf(x)).then((r) => {
      if (r.isAllowed || !r.isExceeded) {
        next()
        return
      }
      x.sendError(429, 'rate_limited', 'Too many requests; retry later', limited(x, r, limit, telemetry))
    }, (err: unknown) => {
      if (storeFailed(x, err)) next()
    }).catch((err: unknown) => { answerInternalError(x, err) })
  }

  return {
    forRoute: (routeId, telemetry = NOOP_ROUTE_TELEMETRY) => {
      const perIp = config.perIp === undefined
        ? undefined
        : check('perIp', (x) => storeKey(IP, deps.clientAddress(x.raw.socket.remoteAddress, x.raw.headers['x-forwarded-for']).ip), telemetry)
      const pp = config.perPrincipal
      const perPrincipal = pp === undefined
        ? undefined
        : check('perPrincipal', (x) => storeKey(PRINCIPAL, principalId(x.principal!, pp.key)), telemetry)
      const keyMode = pp?.key ?? 'subject'
      const perTool = config.perTool === undefined
        ? undefined
        : async (x: Exchange, messages: readonly JsonRpcMessage[], requestId: JsonRpcId): Promise<boolean> => {
          const who = principalId(x.principal!, keyMode)
          // Every tools/call message counts, batches included; the first one over its limit refuses the request.
          for (let i = 0; i < messages.length; i++) {
            const m = messages[i]!
            if (m.method !== 'tools/call') continue
            let r: LimitResult
            try {
              r = await hit(storeKey(TOOL, `${routeId} ${who} ${(m.params as { name: string }).name}`))
            } catch (err) {
              return storeFailed(x, err)
            }
            if (!r.isAllowed && r.isExceeded) {
              x.sendJsonRpcError(429, jsonRpcError(requestId, JSONRPC_RATE_LIMITED, 'Rate limit exceeded for this tool; retry later'), limited(x, r, 'perTool', telemetry))
              return false
            }
          }
          return true
        }
      return { perIp, perPrincipal, perTool }
    }
  }
}
