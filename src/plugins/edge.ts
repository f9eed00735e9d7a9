/**
 * The gateway's edge protections, composed once for createGateway: HTTP
 * server bounds (header size, header and request timeouts), the client
 * address under trustProxy, the SSE stream bounds and the rate limits.
 */
import type { ServerOptions } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from '../config/types.js'
import { CONNECTIONS_CHECK_INTERVAL_MS, RATE_LIMIT_REDIS_PREFIX } from '../config/defaults.js'
import { compileClientAddress, type ClientAddressResolver } from '../proxy/client-ip.js'
import { StreamLimiter } from '../proxy/stream-limits.js'
import { registerRateLimits, type RateLimits } from './rate-limit.js'

/**
 * Node HTTP server options for the configured bounds: a request head over
 * maxHeaderBytes gets 431; headers (or the whole request) not received in
 * time get 408 and the socket is closed (the clientErrorHandler writes both).
 * Sockets are checked every second, so a bound holds to within a second.
 */
export function httpServerOptions (limits: GatewayConfig['limits']): Pick<ServerOptions, 'maxHeaderSize' | 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'> {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS
  }
}

export interface Edge {
  readonly clientAddress: ClientAddressResolver
  readonly streams: StreamLimiter
  readonly rateLimits: RateLimits | undefined
}

/**
 * Build the shared edge state and register the rate-limit plugin.
 * @param redis the shared ioredis client (session/redis.ts), when `redis` is configured
 */
export function registerEdge (app: FastifyInstance, config: GatewayConfig, redis?: unknown): Edge {
  const clientAddress = compileClientAddress(config.trustProxy)
  return {
    clientAddress,
    streams: new StreamLimiter(config.limits.maxStreams, config.limits.maxStreamsPerPrincipal),
    // The shared client adds the configured redis.keyPrefix itself.
    rateLimits: registerRateLimits(app, config.rateLimits, { clientAddress, redis, redisPrefix: RATE_LIMIT_REDIS_PREFIX })
  }
}
