/**
 * Origin validation and CORS for one protected route (policy/origin.ts holds
 * the pure rules). A request whose `Origin` is present and not allowed gets
 * 403 `forbidden_origin` before any token work (MCP 2025-11-25 transports: DNS
 * rebinding); requests without `Origin` (non-browser clients) pass untouched.
 * Allowed origins get their own origin echoed, never `*` (unless `*` was
 * configured), with `Vary: Origin`, on every response of the route: proxied
 * ones, 502/504 and the gateway's own errors, so a browser can read
 * `WWW-Authenticate`.
 */
import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { allowHeadersFor, compileOriginPolicy, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS, type OriginPolicy } from '../policy/origin.js'
import { sendError } from './http-errors.js'

/** Browsers may cache a preflight this long (seconds); Chromium caps it at 7200. */
export const CORS_PREFLIGHT_MAX_AGE_SECONDS = 600

const EMPTY: readonly string[] = Object.freeze([])
const ANY_HEADERS: readonly string[] = Object.freeze(['access-control-allow-origin', '*', 'access-control-expose-headers', CORS_EXPOSE_HEADERS])

export interface RouteCors {
  readonly policy: OriginPolicy
  /**
   * Answer 403 and return true when the request carries an Origin that is not
   * allowed; return false (nothing sent) otherwise. First thing the route does.
   */
  refuse: (request: FastifyRequest, reply: FastifyReply) => boolean
  /** Flat [name, value, …] CORS headers for a proxied response to a request with this Origin (empty: none apply). */
  responseHeaders: (origin: string | undefined) => readonly string[]
  /** Set the CORS headers on a reply the gateway writes itself (errors). */
  decorate: (reply: FastifyReply, origin: string | undefined) => FastifyReply
  /** OPTIONS handler: the preflight answer (never needs a token). */
  preflight: RouteHandlerMethod
}

/** Compile the CORS behaviour of a route from its normalised `allowedOrigins`. */
export function compileRouteCors (origins: readonly string[]): RouteCors {
  const policy = compileOriginPolicy(origins)
  // One header list per allowed origin, built once: forwarding allocates nothing per request.
  const byOrigin = new Map<string, readonly string[]>()
  if (!policy.any) {
    for (const o of origins) byOrigin.set(o, Object.freeze(['access-control-allow-origin', o, 'access-control-expose-headers', CORS_EXPOSE_HEADERS, 'vary', 'Origin']))
  }
  const responseHeaders = (origin: string | undefined): readonly string[] =>
    origin === undefined ? EMPTY : policy.any ? ANY_HEADERS : byOrigin.get(origin) ?? EMPTY

  const decorate = (reply: FastifyReply, origin: string | undefined): FastifyReply => {
    const h = responseHeaders(origin)
    for (let i = 0; i < h.length; i += 2) reply.header(h[i]!, h[i + 1]!)
    return reply
  }

  const refuse = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = request.headers.origin
    if (origin === undefined || policy.allows(origin)) return false
    request.outcome = 'forbidden_origin'
    // No CORS headers: the page that sent it must not read the answer.
    void sendError(reply, 403, 'forbidden_origin', 'Requests from this Origin are not allowed')
    return true
  }

  const preflight: RouteHandlerMethod = (request, reply) => {
    if (refuse(request, reply)) return
    const origin = request.headers.origin
    reply.code(204).header('allow', CORS_ALLOW_METHODS)
    if (origin !== undefined) {
      void reply
        .header('access-control-allow-origin', policy.any ? '*' : origin)
        .header('access-control-allow-methods', CORS_ALLOW_METHODS)
        .header('access-control-allow-headers', allowHeadersFor(request.headers['access-control-request-headers'] as string | undefined))
        .header('access-control-max-age', String(CORS_PREFLIGHT_MAX_AGE_SECONDS))
        // The answer depends on both: shared caches must not mix them.
        .header('vary', 'Origin, Access-Control-Request-Headers')
    }
    void reply.send()
  }

  return { policy, refuse, responseHeaders, decorate, preflight }
}

/**
 * For the gateway's error handler: CORS headers on errors Fastify raises for a
 * protected route (413 and the like), when the route has CORS settings.
 */
export function applyRouteCors (request: FastifyRequest, reply: FastifyReply): void {
  const cors = (request.routeOptions.config as { cors?: RouteCors }).cors
  if (cors !== undefined) cors.decorate(reply, request.headers.origin)
}
