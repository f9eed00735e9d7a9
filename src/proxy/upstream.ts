/**
 * One undici Pool per upstream origin, with TLS verification on and explicit
 * timeouts. Connections are not capped: every open SSE stream holds one.
 */
import { Pool } from 'undici'
import type { RouteConfig } from '../config/types.js'
import { DEFAULT_UPSTREAM_CONNECTIONS, UPSTREAM_KEEPALIVE_MAX_MS } from '../config/defaults.js'

export function createUpstreamPool (route: RouteConfig): Pool {
  return new Pool(route.upstreamOrigin, {
    connections: DEFAULT_UPSTREAM_CONNECTIONS,
    connect: { timeout: route.timeouts.connectMs, rejectUnauthorized: true },
    headersTimeout: route.timeouts.headersMs,
    bodyTimeout: route.timeouts.idleMs,
    keepAliveMaxTimeout: UPSTREAM_KEEPALIVE_MAX_MS
  })
}
