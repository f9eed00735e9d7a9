/**
 * The session gate of an MCP route (session/binding.ts): it runs after
 * authentication, as an onRequest hook on Fastify's route and as a step of the
 * lane (plugins/lane.ts). A request carrying another identity's session id
 * is answered 404 here and never forwarded; a request the gate admits gets
 * `request.session`, which the forwarder feeds with the upstream's response.
 */
import type { onRequestHookHandler } from 'fastify'
import { sessionIdsOf, SessionExchange, SESSION_HEADER, type SessionBinder, type SessionCheck } from '../session/binding.js'
import { isPromise } from '../session/store.js'
import { NOOP_ROUTE_TELEMETRY, type RouteTelemetry } from '../observability/telemetry.js'
import { exchangeOf, type Exchange } from './exchange.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's session binding state; null when it carries and may start no session. */
    session: SessionExchange | null
  }
}

/**
 * The gate of one route, for both edges: `next()` runs when the request is
 * admitted (`x.session` set); a refusal is answered here (404, or 503 when
 * the store fails under `deny`) and `next` never runs. Requests without a
 * session id never touch the store; with the memory store the check is
 * synchronous (no extra await).
 */
export type SessionGate = (x: Exchange, next: () => void) => void

export function sessionGate (binder: SessionBinder, routeId: string, telemetry: RouteTelemetry = NOOP_ROUTE_TELEMETRY): SessionGate {
  const settle = (x: Exchange, c: SessionCheck, next: () => void): void => {
    if (c instanceof SessionExchange) {
      x.session = c
      next()
      return
    }
    x.outcome = c.outcome
    // A 404 is a binding refusal (another caller's, or an unknown legacy, session); a 503 is the store failing.
    if (c.status === 404) telemetry.sessionRejected()
    x.sendJsonRpcError(c.status, c.body, c.retryAfterSeconds === undefined ? undefined : ['retry-after', String(c.retryAfterSeconds)])
  }
  return (x, next) => {
    const principal = x.principal!
    const url = x.url
    const ids = sessionIdsOf(x.raw.headers[SESSION_HEADER], url)
    if (ids === undefined) {
      x.session = binder.watch(principal, x.method, url) ?? null
      next()
      return
    }
    const c = binder.check(ids, principal, x.method, url, { reqId: x.id, route: routeId })
    if (isPromise(c)) {
      c.then((r) => { settle(x, r, next) }, (err: unknown) => {
        x.log.error({ reqId: x.id, route: routeId, err }, 'session check failed')
        x.outcome = 'internal_error'
        x.sendError(500, 'internal_error', 'Internal gateway error')
      })
    } else settle(x, c, next)
  }
}

/** The gate as a Fastify onRequest hook. */
export function sessionGateHook (gate: SessionGate): onRequestHookHandler {
  return (request, reply, done) => { gate(exchangeOf(request, reply), done) }
}
