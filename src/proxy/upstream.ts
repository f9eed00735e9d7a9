/**
 * Upstream connections for one route, with TLS verification on and explicit
 * timeouts:
 * - a Pool for POST/DELETE/…: keep-alive connections reused across requests,
 *   not capped (every SSE response holds one);
 * - a dedicated Client per GET, which on MCP opens an SSE stream (the
 *   Streamable HTTP GET stream, legacy /sse). It is destroyed when the stream
 *   ends, so a client that leaves mid-stream leaves nothing behind upstream.
 *   (undici 7 opens a replacement connection after aborting an in-flight
 *   response and keeps it unused; nodejs/undici#5845. In the Pool that idle
 *   connection is reused by the next request; for long-lived streams it would
 *   pile up.)
 */
import { buildConnector, Client, Pool } from 'undici'
import type { RouteConfig } from '../config/types.js'
import { DEFAULT_UPSTREAM_CONNECTIONS, UPSTREAM_KEEPALIVE_MAX_MS } from '../config/defaults.js'

export interface Upstream {
  readonly pool: Pool
  /** A fresh single-connection client for one long-lived stream; destroy it when the stream ends. */
  streamClient: () => Client
  close: () => Promise<void>
}

export function createUpstream (route: RouteConfig): Upstream {
  // One connector and one parsed origin for the route, shared by the pool and
  // every stream's client. Given options instead, each Client builds its own
  // connector (its own TLS session cache, with a FinalizationRegistry) and
  // parses the origin into a new URL: ~0.8 KB of heap per open stream, and a
  // full TLS handshake for every stream. Shared, the first session is resumed.
  const connect = buildConnector({ timeout: route.timeouts.connectMs, rejectUnauthorized: true })
  const origin = new URL(route.upstreamOrigin)
  const options = {
    connect,
    headersTimeout: route.timeouts.headersMs,
    bodyTimeout: route.timeouts.idleMs,
    keepAliveMaxTimeout: UPSTREAM_KEEPALIVE_MAX_MS
  }
  const pool = new Pool(origin, { ...options, connections: DEFAULT_UPSTREAM_CONNECTIONS })
  return {
    pool,
    streamClient: () => new Client(origin, options),
    close: async () => { await pool.destroy() }
  }
}
