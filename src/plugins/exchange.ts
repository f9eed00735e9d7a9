/**
 * One request on an MCP route as the route's steps see it (session gate,
 * stream bounds, policy, forwarding), whichever edge admitted it: Fastify's
 * route (ReplyExchange) or the lane (plugins/lane.ts), which takes the common
 * case without Fastify. Each step is written once, against this interface.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { SessionExchange } from '../session/binding.js'
import type { AuditState } from '../observability/audit.js'
import { sendError, sendJsonRpcError } from './http-errors.js'
import { applyRouteCors } from './origin.js'
import { logRequest } from './request-log.js'

export interface Exchange {
  readonly id: string
  readonly method: string
  /** The request target as received (path and query). */
  readonly url: string
  readonly raw: IncomingMessage
  readonly res: ServerResponse
  /** The gateway's logger (errors and warnings; never the request line). */
  readonly log: Logger
  /** The authenticated caller, once known. */
  principal: Principal | null
  /** The request line's outcome (ok, insufficient_scope, …); null: from the status. */
  outcome: string | null
  /** Session binding state (session/binding.ts); null: none. */
  session: SessionExchange | null
  /** What the audit log needs of the body; null: nothing. */
  audit: AuditState | null
  /** Milliseconds since the request arrived. */
  elapsedMs: () => number
  /** From here on the gateway writes the response itself (the forwarder). */
  take: () => void
  /** Answer `{ error, error_description }` with the route's CORS headers; `headers`: more [name, value, …]. */
  sendError: (status: number, error: string, description: string, headers?: readonly string[]) => void
  /** Answer a serialised JSON-RPC error body, likewise. */
  sendJsonRpcError: (status: number, body: string, headers?: readonly string[]) => void
  /** Record the request once: its line, metrics and audit. `aborted`: the client left first. */
  finished: (aborted: boolean) => void
}

const NONE: readonly string[] = []

/** An {@link Exchange} over Fastify's request and reply; state lives on the request (its decorations). */
export class ReplyExchange implements Exchange {
  readonly request: FastifyRequest
  readonly reply: FastifyReply

  constructor (request: FastifyRequest, reply: FastifyReply) {
    this.request = request
    this.reply = reply
  }

  get id (): string { return this.request.id }
  get method (): string { return this.request.method }
  get url (): string { return this.request.url }
  get raw (): IncomingMessage { return this.request.raw }
  get res (): ServerResponse { return this.reply.raw }
  get log (): Logger { return this.request.log as unknown as Logger }
  get principal (): Principal | null { return this.request.principal }
  set principal (p: Principal | null) { this.request.principal = p }
  get outcome (): string | null { return this.request.outcome }
  set outcome (o: string | null) { this.request.outcome = o }
  get session (): SessionExchange | null { return this.request.session }
  set session (s: SessionExchange | null) { this.request.session = s }
  get audit (): AuditState | null { return this.request.audit }
  set audit (a: AuditState | null) { this.request.audit = a }

  elapsedMs (): number { return this.reply.elapsedTime }
  take (): void { this.reply.hijack() }

  sendError (status: number, error: string, description: string, headers: readonly string[] = NONE): void {
    void sendRouteError(this.#headers(headers), status, error, description)
  }

  sendJsonRpcError (status: number, body: string, headers: readonly string[] = NONE): void {
    applyRouteCors(this.request, this.#headers(headers))
    void sendJsonRpcError(this.reply, status, body)
  }

  finished (aborted: boolean): void { logRequest(this.request, this.reply, aborted) }

  #headers (headers: readonly string[]): FastifyReply {
    for (let i = 0; i < headers.length; i += 2) this.reply.header(headers[i]!, headers[i + 1]!)
    return this.reply
  }
}

/**
 * An unexpected failure after the request was admitted: logged with its detail, answered 500
 * without it (as Fastify's error handler would), or the connection cut when the response has
 * already started.
 */
export function answerInternalError (x: Exchange, err: unknown): void {
  x.log.error({ reqId: x.id, err }, 'request failed')
  if (x.res.headersSent) {
    x.res.destroy()
    x.finished(true)
    return
  }
  x.outcome = 'internal_error'
  x.sendError(500, 'internal_error', 'Internal gateway error')
}

/** Error responses of a route are readable by browser clients from allowed origins (they need WWW-Authenticate). */
export function sendRouteError (reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  applyRouteCors(reply.request, reply)
  return sendError(reply, status, error, description)
}

/** The request's exchange, made once per request (the hooks and the handler share it). */
export function exchangeOf (request: FastifyRequest, reply: FastifyReply): Exchange {
  return (request.exchange ??= new ReplyExchange(request, reply))
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's {@link Exchange}, once a step asked for it. */
    exchange: Exchange | null
  }
}
