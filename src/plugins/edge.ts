/**
 * The gateway's edge protections, composed once for createGateway: HTTP
 * server bounds (header size, header and request timeouts), the client
 * address under trustProxy, the SSE stream bounds and the rate limits.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from '../config/types.js'
import { CONNECTIONS_CHECK_INTERVAL_MS, RATE_LIMIT_REDIS_PREFIX, SERVER_KEEP_ALIVE_TIMEOUT_MS } from '../config/defaults.js'
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

/**
 * The gateway's HTTP or HTTPS server (listen.tls) with the bounds of
 * {@link httpServerOptions}, and the keep-alive timeout Fastify sets on a server
 * it creates itself. `handler`: the request listener; none: the caller adds one.
 */
export function createGatewayServer (config: Pick<GatewayConfig, 'limits' | 'listen'>, handler?: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const options = httpServerOptions(config.limits)
  const tls = config.listen.tls
  const server: Server = tls !== undefined
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...options }, handler)
    : createHttpServer(options, handler)
  server.keepAliveTimeout = SERVER_KEEP_ALIVE_TIMEOUT_MS
  return server
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
