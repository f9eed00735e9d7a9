/**
 * Concurrent SSE stream bounds on the protected routes (proxy/stream-limits.ts
 * counts). A GET on an MCP route opens a stream (the Streamable HTTP GET
 * stream, the legacy /sse): it takes a slot for its caller before it is
 * forwarded and gives it back when it ends. A POST may be answered with a
 * stream too (SSE): it is admitted only while its caller and the gateway are
 * under their limits, and an SSE answer holds a slot while it streams. Over
 * the caller's limit: 429 `too_many_streams`; over the gateway's total: 503
 * `too_many_streams`; both with Retry-After and the route's CORS headers.
 */
import type { Principal } from '../auth/principal.js'
import { STREAM_LIMIT_RETRY_AFTER_SECONDS } from '../config/defaults.js'
import type { StreamLimiter, StreamRefusal } from '../proxy/stream-limits.js'
import type { Exchange } from './exchange.js'

/**
 * Take a stream slot for the caller: returns the key to release when the
 * stream ends, or undefined after answering 429/503 (nothing to release).
 */
export function openStream (streams: StreamLimiter, x: Exchange, principal: Principal): string | undefined {
  const key = streamKey(principal)
  const refused = streams.acquire(key)
  if (refused === undefined) return key
  refuse(x, refused)
  return undefined
}

/**
 * Admit a request that may be answered with a stream (POST): returns the key
 * to {@link StreamLimiter.track} if the answer is SSE, or undefined after
 * answering 429/503 because the caller or the gateway is at its limit. The
 * slot is taken only when the answer turns out to be a stream: by then the
 * upstream has run the request, so it cannot be refused any more.
 */
export function admitStreamable (streams: StreamLimiter, x: Exchange, principal: Principal): string | undefined {
  const key = streamKey(principal)
  const refused = streams.check(key)
  if (refused === undefined) return key
  refuse(x, refused)
  return undefined
}

function streamKey (principal: Principal): string {
  return principal.issuer + '\n' + principal.subject
}

const RETRY_AFTER: readonly string[] = ['retry-after', String(STREAM_LIMIT_RETRY_AFTER_SECONDS)]

function refuse (x: Exchange, refused: StreamRefusal): void {
  x.outcome = 'too_many_streams'
  if (refused === 'principal') x.sendError(429, 'too_many_streams', 'Too many open streams for this caller; close one and retry', RETRY_AFTER)
  else x.sendError(503, 'too_many_streams', 'The gateway has too many open streams; retry later', RETRY_AFTER)
}
