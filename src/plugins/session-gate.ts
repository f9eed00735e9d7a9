/**
 * The session gate of an MCP route (session/binding.ts): an onRequest hook that
 * runs after authentication. A request carrying another identity's session id
 * is answered 404 here and never forwarded; a request the gate admits gets
 * `request.session`, which the forwarder feeds with the upstream's response.
 */
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { sessionIdsOf, SessionExchange, SESSION_HEADER, type SessionBinder, type SessionCheck } from '../session/binding.js'
import { isPromise } from '../session/store.js'
import { NOOP_ROUTE_TELEMETRY, type RouteTelemetry } from '../observability/telemetry.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's session binding state; null when it carries and may start no session. */
    session: SessionExchange | null
  }
}

/** How the route sends a JSON error body (with its CORS headers). */
export type SendJsonBody = (reply: FastifyReply, status: number, body: string) => FastifyReply

/**
 * The gate for one route. Requests without a session id never touch the store;
 * with the memory store the check is synchronous (no extra await).
 */
export function sessionGate (binder: SessionBinder, routeId: string, send: SendJsonBody, telemetry: RouteTelemetry = NOOP_ROUTE_TELEMETRY): onRequestHookHandler {
  const settle = (request: FastifyRequest, reply: FastifyReply, c: SessionCheck, done: () => void): void => {
    if (c instanceof SessionExchange) {
      request.session = c
      done()
      return
    }
    request.outcome = c.outcome
    // A 404 is a binding refusal (another caller's, or an unknown legacy, session); a 503 is the store failing.
    if (c.status === 404) telemetry.sessionRejected()
    if (c.retryAfterSeconds !== undefined) reply.header('retry-after', String(c.retryAfterSeconds))
    void send(reply, c.status, c.body)
  }
  return (request, reply, done) => {
    const principal = request.principal!
    const url = request.url
    const ids = sessionIdsOf(request.headers[SESSION_HEADER], url)
    if (ids === undefined) {
      request.session = binder.watch(principal, request.method, url) ?? null
      done()
      return
    }
    const c = binder.check(ids, principal, request.method, url, { reqId: request.id, route: routeId })
    if (isPromise(c)) c.then((r) => { settle(request, reply, r, done) }, (err: unknown) => { done(err as Error) })
    else settle(request, reply, c, done)
  }
}
