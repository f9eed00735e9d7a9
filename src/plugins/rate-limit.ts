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
 */
import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import fastifyRateLimit from '@fastify/rate-limit'
import type { Principal } from '../auth/principal.js'
import type { RateLimitsConfig, RateWindow } from '../config/types.js'
import {
  RATE_LIMIT_MAX_KEY_CHARS, RATE_LIMIT_MEMORY_MAX_KEYS, RATE_LIMIT_STORE_ERROR_LOG_INTERVAL_MS, UNAVAILABLE_RETRY_AFTER_SECONDS
} from '../config/defaults.js'
import type { ClientAddressResolver } from '../proxy/client-ip.js'
import { jsonRpcError, type JsonRpcId, type JsonRpcMessage } from '../mcp/jsonrpc.js'
import { sendError, sendJsonRpcError } from './http-errors.js'
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

/** Which limit a store key belongs to: its first character. */
const IP = 'i'
const PRINCIPAL = 'p'
const TOOL = 't'

/** The hooks and checks one route adds; each undefined when its limit is not configured. */
export interface RouteRateLimits {
  /** onRequest, before authentication. */
  readonly perIp: onRequestHookHandler | undefined
  /** onRequest, after authentication (request.principal is set). */
  readonly perPrincipal: onRequestHookHandler | undefined
  /**
   * Count each tools/call message of a parsed body; resolves true when the
   * request may go on, false when the reply was sent (429 or 503).
   */
  readonly perTool: ((request: FastifyRequest, reply: FastifyReply, messages: readonly JsonRpcMessage[], requestId: JsonRpcId) => Promise<boolean>) | undefined
}

export interface RateLimits {
  /** The limits of one route; its CORS settings decorate the refusals; its telemetry counts them. */
  forRoute: (routeId: string, cors: RouteCors, telemetry?: RouteTelemetry) => RouteRateLimits
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
  let lastStoreErrorLog = 0

  /**
   * Count one hit. A store failure rejects; the shared Redis client fails fast
   * (no offline queue, redis.commandTimeoutSeconds), so an outage never holds requests.
   */
  const hit = (request: FastifyRequest, key: string): Promise<LimitResult> => {
    (request as unknown as Record<symbol, string>)[kKey] = key
    return limiter!(request)
  }

  /** The store failed: log (throttled when allowing), then deny (503) or allow. Returns true when the request may go on. */
  const storeFailed = (request: FastifyRequest, reply: FastifyReply, cors: RouteCors, err: unknown): boolean => {
    const code = (err as { code?: string }).code
    const now = Date.now()
    if (deny || now - lastStoreErrorLog >= RATE_LIMIT_STORE_ERROR_LOG_INTERVAL_MS) {
      lastStoreErrorLog = now
      request.log.warn({ reqId: request.id, code, failMode: config.onStoreError }, 'rate-limit store unavailable')
    }
    if (!deny) return true
    request.outcome = 'rate_limit_unavailable'
    void sendError(cors.decorate(reply, request.headers.origin).header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)), 503, 'temporarily_unavailable', 'The rate limit cannot be checked; retry later')
    return false
  }

  /** Over the limit: the plugin's headers on the refusal, and the log outcome. */
  const limited = (request: FastifyRequest, reply: FastifyReply, cors: RouteCors, r: LimitResult & { isAllowed: false }, limit: RateLimitKind, telemetry: RouteTelemetry): FastifyReply => {
    request.outcome = 'rate_limited'
    telemetry.rateLimited(limit)
    request.log.debug({ reqId: request.id, limit }, 'rate limited')
    const after = String(Math.max(1, r.ttlInSeconds))
    return cors.decorate(reply, request.headers.origin)
      .header('x-ratelimit-limit', String(r.max))
      .header('x-ratelimit-remaining', '0')
      .header('x-ratelimit-reset', after)
      .header('retry-after', after)
  }

  const hook = (cors: RouteCors, limit: RateLimitKind, keyOf: (request: FastifyRequest) => string, telemetry: RouteTelemetry): onRequestHookHandler => (request, reply, done) => {
    hit(request, keyOf(request)).then((r) => {
      if (r.isAllowed || !r.isExceeded) {
        done()
        return
      }
      void sendError(limited(request, reply, cors, r, limit, telemetry), 429, 'rate_limited', 'Too many requests; retry later')
    }, (err: unknown) => {
      if (storeFailed(request, reply, cors, err)) done()
    })
  }

  return {
    forRoute: (routeId, cors, telemetry = NOOP_ROUTE_TELEMETRY) => {
      const perIp = config.perIp === undefined
        ? undefined
        : hook(cors, 'perIp', (request) => storeKey(IP, deps.clientAddress(request.raw.socket.remoteAddress, request.headers['x-forwarded-for']).ip), telemetry)
      const pp = config.perPrincipal
      const perPrincipal = pp === undefined
        ? undefined
        : hook(cors, 'perPrincipal', (request) => storeKey(PRINCIPAL, principalId(request.principal!, pp.key)), telemetry)
      const keyMode = pp?.key ?? 'subject'
      const perTool = config.perTool === undefined
        ? undefined
        : async (request: FastifyRequest, reply: FastifyReply, messages: readonly JsonRpcMessage[], requestId: JsonRpcId): Promise<boolean> => {
          const who = principalId(request.principal!, keyMode)
          // Every tools/call message counts, batches included; the first one over its limit refuses the request.
          for (let i = 0; i < messages.length; i++) {
            const m = messages[i]!
            if (m.method !== 'tools/call') continue
            let r: LimitResult
            try {
              r = await hit(request, storeKey(TOOL, `${routeId} ${who} ${(m.params as { name: string }).name}`))
            } catch (err) {
              return storeFailed(request, reply, cors, err)
            }
            if (!r.isAllowed && r.isExceeded) {
              void sendJsonRpcError(limited(request, reply, cors, r, 'perTool', telemetry), 429, jsonRpcError(requestId, JSONRPC_RATE_LIMITED, 'Rate limit exceeded for this tool; retry later'))
              return false
            }
          }
          return true
        }
      return { perIp, perPrincipal, perTool }
    }
  }
}
