/**
 * The one log line per request: route, method, path (no query), status,
 * subject, client id, issuer, outcome and duration. Never headers or tokens.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { safePath } from '../observability/logger.js'
import type { RouteTelemetry, Telemetry } from '../observability/telemetry.js'
import type { AuditState, AuditWriter } from '../observability/audit.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where request lines go (observability/logger.ts, `access`). */
    accessLog: Logger
    /** Metrics (observability/telemetry.ts); requests outside the MCP routes count under `none`. */
    telemetry: Telemetry
  }
  interface FastifyRequest {
    /** What the audit log needs of this request's body; null when the route does not audit (or read no body). */
    audit: AuditState | null
  }
  interface FastifyContextConfig {
    /** The route's metrics handle (MCP routes); absent: `telemetry.none`. */
    telemetry?: RouteTelemetry
    /** The route's audit writer, when audit is enabled. */
    audit?: AuditWriter
  }
}

const kLogged = Symbol('mcp-auth-gateway.logged')

/** Outcomes set when the forwarder ran: the body reached the upstream. */
const FORWARDED = new Set(['ok', 'upstream_error', 'client_closed'])

/**
 * Write the request line once; a client that disconnects mid-response is logged as `client_closed`.
 * The same place counts the request (requests_total, request_duration_seconds) and writes its audit lines.
 */
export function logRequest (request: FastifyRequest, reply: FastifyReply, aborted = false): void {
  const flagged = request as unknown as Record<symbol, boolean>
  if (flagged[kLogged] === true) return
  flagged[kLogged] = true
  const p = request.principal
  const cfg = request.routeOptions.config as { gwRouteId?: string | null, kind?: string, telemetry?: RouteTelemetry, audit?: AuditWriter }
  const outcome = aborted
    ? 'client_closed'
    : request.outcome ?? (cfg.kind === 'metadata' || cfg.kind === 'health' || cfg.kind === 'metrics' ? cfg.kind : reply.statusCode < 400 ? 'ok' : 'error')
  const elapsed = reply.elapsedTime
  ;request.server.accessLog.info({
    reqId: request.id,
    route: cfg.gwRouteId ?? null,
    method: request.method,
    path: safePath(request.url),
    status: aborted ? null : reply.statusCode,
    subject: p?.subject,
    clientId: p?.clientId,
    issuer: p?.issuer,
    outcome,
    durationMs: Math.round(elapsed * 100) / 100
  }, 'request')
  ;(cfg.telemetry ?? request.server.telemetry.none).request(request.method, aborted ? 0 : reply.statusCode, outcome, elapsed)
  const audit = request.audit
  if (audit !== null && cfg.audit !== undefined) {
    const forwarded = request.outcome !== null && FORWARDED.has(request.outcome)
    const res = reply.raw
    cfg.audit.write(audit, {
      route: cfg.gwRouteId ?? '',
      reqId: request.id,
      principal: p,
      forwarded,
      outcome,
      // A 502/504 written by the gateway is no upstream status.
      upstreamStatus: forwarded && request.outcome !== 'upstream_error' && res.headersSent ? res.statusCode : null,
      latencyMs: elapsed
    })
  }
}
