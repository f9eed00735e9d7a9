/**
 * The one log line per request: route, method, path (no query), status,
 * subject, client id, issuer, outcome and duration. Never headers or tokens.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { safePath } from '../observability/logger.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where request lines go (observability/logger.ts, `access`). */
    accessLog: Logger
  }
}

const kLogged = Symbol('mcp-auth-gateway.logged')

/** Write the request line once; a client that disconnects mid-response is logged as `client_closed`. */
export function logRequest (request: FastifyRequest, reply: FastifyReply, aborted = false): void {
  const flagged = request as unknown as Record<symbol, boolean>
  if (flagged[kLogged] === true) return
  flagged[kLogged] = true
  const p = request.principal
  const cfg = request.routeOptions.config as { gwRouteId?: string | null, kind?: string }
  ;request.server.accessLog.info({
    reqId: request.id,
    route: cfg.gwRouteId ?? null,
    method: request.method,
    path: safePath(request.url),
    status: aborted ? null : reply.statusCode,
    subject: p?.subject,
    clientId: p?.clientId,
    issuer: p?.issuer,
    outcome: aborted
      ? 'client_closed'
      : request.outcome ?? (cfg.kind === 'metadata' || cfg.kind === 'health' ? cfg.kind : reply.statusCode < 400 ? 'ok' : 'error'),
    durationMs: Math.round(reply.elapsedTime * 100) / 100
  }, 'request')
}
