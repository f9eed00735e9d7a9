/**
 * Concurrent SSE stream bounds on the protected routes (proxy/stream-limits.ts
 * counts). A GET on an MCP route opens a stream (the Streamable HTTP GET
 * stream, the legacy /sse): it takes a slot for its caller before it is
 * forwarded and gives it back when it ends. Over the caller's limit: 429
 * `too_many_streams`; over the gateway's total: 503 `too_many_streams`; both
 * with Retry-After and the route's CORS headers.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Principal } from '../auth/principal.js'
import { STREAM_LIMIT_RETRY_AFTER_SECONDS } from '../config/defaults.js'
import type { StreamLimiter } from '../proxy/stream-limits.js'
import { sendError } from './http-errors.js'
import { applyRouteCors } from './origin.js'

/**
 * Take a stream slot for the caller: returns the key to release when the
 * stream ends, or undefined after answering 429/503 (nothing to release).
 */
export function openStream (streams: StreamLimiter, request: FastifyRequest, reply: FastifyReply, principal: Principal): string | undefined {
  const key = principal.issuer + '\n' + principal.subject
  const refused = streams.acquire(key)
  if (refused === undefined) return key
  request.outcome = 'too_many_streams'
  applyRouteCors(request, reply)
  reply.header('retry-after', String(STREAM_LIMIT_RETRY_AFTER_SECONDS))
  if (refused === 'principal') void sendError(reply, 429, 'too_many_streams', 'Too many open streams for this caller; close one and retry')
  else void sendError(reply, 503, 'too_many_streams', 'The gateway has too many open streams; retry later')
  return undefined
}
