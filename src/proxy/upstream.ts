/**
 * Upstream connection pools and failure mapping. One undici Pool per upstream
 * origin, with TLS verification on (reply-from's own default turns it off) and
 * explicit timeouts. Requests are never retried: a POST may be a tool call.
 */
import { Pool, type Dispatcher } from 'undici'
import type { RouteConfig } from '../config/types.js'
import { DEFAULT_UPSTREAM_CONNECTIONS } from '../config/defaults.js'

/** Symbol under which the forwarder passes an AbortSignal through the proxy library's header object. */
export const kAbortSignal: unique symbol = Symbol('mcp-auth-gateway.abortSignal')

/**
 * A dispatcher-like object for @fastify/reply-from: it forwards to the pool and
 * attaches the client's abort signal, so a client that disconnects before the
 * upstream answers aborts the upstream request too.
 */
export interface UpstreamClient {
  request: (opts: Dispatcher.RequestOptions & { headers?: Record<string | symbol, unknown> }, cb: (err: Error | null, data?: Dispatcher.ResponseData) => void) => void
  close: () => Promise<void>
}

export function createUpstreamClient (route: RouteConfig): UpstreamClient {
  const pool = new Pool(route.upstreamOrigin, {
    connections: DEFAULT_UPSTREAM_CONNECTIONS,
    connect: { timeout: route.timeouts.connectMs, rejectUnauthorized: true },
    headersTimeout: route.timeouts.headersMs,
    bodyTimeout: route.timeouts.idleMs
  })
  return {
    request (opts, cb) {
      const headers = opts.headers as Record<string | symbol, unknown> | undefined
      const signal = headers?.[kAbortSignal] as AbortSignal | undefined
      if (headers !== undefined) delete headers[kAbortSignal]
      const req: Dispatcher.RequestOptions = { ...opts, headers: headers as Record<string, string>, signal, headersTimeout: route.timeouts.headersMs, bodyTimeout: route.timeouts.idleMs }
      pool.request(req, (err, data) => { cb(err, data) })
    },
    async close () {
      await pool.close()
    }
  }
}

export type UpstreamFailure = 'unreachable' | 'timeout' | 'aborted'

/** Classify a proxy error by its root cause. */
export function classifyUpstreamError (err: unknown): UpstreamFailure {
  let cur: unknown = err
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const code = (cur as { code?: string }).code
    const name = (cur as { name?: string }).name
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || name === 'TimeoutError') return 'timeout'
    if (code === 'UND_ERR_ABORTED' || name === 'AbortError') return 'aborted'
    cur = (cur as { cause?: unknown }).cause
  }
  return 'unreachable'
}
