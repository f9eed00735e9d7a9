/**
 * The one log line per request: route, method, path (no query), status,
 * subject, client id, issuer, outcome and duration. Never headers or tokens.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Principal } from '../auth/principal.js'
import { safePath, type RequestLine } from '../observability/logger.js'
import type { RouteTelemetry, Telemetry } from '../observability/telemetry.js'
import type { AuditState, AuditWriter } from '../observability/audit.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Writes request lines (observability/logger.ts, `requestLine`). */
    requestLine: (line: RequestLine) => void
    /** The recording of requests outside the MCP routes (route `none`), made on first use. */
    noRouteRecording: RequestRecording | null
    /** Metrics (observability/telemetry.ts); requests outside the MCP routes count under `none`. */
    telemetry: Telemetry
  }
  interface FastifyRequest {
    /** What the audit log needs of this request's body; null when the route does not audit (or read no body). */
    audit: AuditState | null
  }
  interface FastifyContextConfig {
    /** Where the route's requests are recorded (MCP routes); absent: route `none`. */
    recording?: RequestRecording
  }
}

const kLogged = Symbol('mcp-auth-gateway.logged')

/** Outcomes set when the forwarder ran: the body reached the upstream. */
const FORWARDED = new Set(['ok', 'upstream_error', 'client_closed'])

/** Where a request is recorded: its route's line fields, metrics and audit (per route, built once). */
export interface RequestRecording {
  /** The route id; null outside the MCP routes. */
  readonly routeId: string | null
  readonly telemetry: RouteTelemetry
  /** The route's audit writer, when audit is on. */
  readonly audit: AuditWriter | undefined
  readonly requestLine: (line: RequestLine) => void
}

/**
 * Record one finished request: its line, requests_total and
 * request_duration_seconds, and (audit on, body read) its audit lines.
 * Shared by Fastify's requests ({@link logRequest}) and the lane's (plugins/lane.ts).
 * @param requestOutcome the outcome the route set (null: none); `outcome` is what the line says
 */
export function recordRequest (rec: RequestRecording, reqId: string, method: string, url: string, res: ServerResponse, principal: Principal | null, requestOutcome: string | null, outcome: string, aborted: boolean, elapsedMs: number, auditState: AuditState | null): void {
  rec.requestLine({
    reqId,
    route: rec.routeId,
    method,
    path: safePath(url),
    status: aborted ? null : res.statusCode,
    subject: principal?.subject,
    clientId: principal?.clientId,
    issuer: principal?.issuer,
    outcome,
    durationMs: Math.round(elapsedMs * 100) / 100
  })
  rec.telemetry.request(method, aborted ? 0 : res.statusCode, outcome, elapsedMs)
  if (auditState !== null && rec.audit !== undefined) {
    const forwarded = requestOutcome !== null && FORWARDED.has(requestOutcome)
    rec.audit.write(auditState, {
      route: rec.routeId ?? '',
      reqId,
      principal,
      forwarded,
      outcome,
      // A 502/504 written by the gateway is no upstream status.
      upstreamStatus: forwarded && requestOutcome !== 'upstream_error' && res.headersSent ? res.statusCode : null,
      latencyMs: elapsedMs
    })
  }
}

/**
 * The outcome a request line says: `client_closed` when the client left first,
 * else what the route set, else `kind` (metadata, health, metrics), else ok or
 * error by status. Both edges use it (Fastify's logRequest, the lane).
 */
export function outcomeOf (aborted: boolean, routeOutcome: string | null, status: number, kind?: string): string {
  if (aborted) return 'client_closed'
  return routeOutcome ?? kind ?? (status < 400 ? 'ok' : 'error')
}

/**
 * Write the request line once; a client that disconnects mid-response is logged as `client_closed`.
 * The same place counts the request (requests_total, request_duration_seconds) and writes its audit lines.
 */
export function logRequest (request: FastifyRequest, reply: FastifyReply, aborted = false): void {
  const flagged = request as unknown as Record<symbol, boolean>
  if (flagged[kLogged] === true) return
  flagged[kLogged] = true
  const cfg = request.routeOptions.config as { gwRouteId?: string | null, kind?: string, recording?: RequestRecording }
  const kind = cfg.kind === 'metadata' || cfg.kind === 'health' || cfg.kind === 'metrics' ? cfg.kind : undefined
  const outcome = outcomeOf(aborted, request.outcome, reply.statusCode, kind)
  const server = request.server
  recordRequest(cfg.recording ?? (server.noRouteRecording ??= { routeId: null, telemetry: server.telemetry.none, audit: undefined, requestLine: server.requestLine }),
    request.id, request.method, request.url, reply.raw, request.principal, request.outcome, outcome, aborted, reply.elapsedTime, request.audit)
}
