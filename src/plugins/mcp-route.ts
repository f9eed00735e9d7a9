/**
 * One protected MCP route: path guard → authenticate (onRequest, before any
 * body is read) → forward to the upstream with identity headers, streaming.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, RouteHandlerMethod } from 'fastify'
import type { RouteConfig } from '../config/types.js'
import { GatewayError, InvalidTokenError, TemporarilyUnavailableError, InvalidRequestError } from '../errors.js'
import type { Authenticator, RouteAuth } from '../auth/authenticator.js'
import type { Principal } from '../auth/principal.js'
import { authorizationValues, checkTokenSyntax, extractCredential } from '../auth/bearer.js'
import { RouteChallenges } from '../metadata/challenge.js'
import { checkPath, queryDecodable, splitUrl } from '../proxy/paths.js'
import { compileRequestHeaders, identityRepresentable } from '../proxy/headers.js'
import { createUpstream } from '../proxy/upstream.js'
import { forward } from '../proxy/forwarder.js'
import { EndpointScanner, rewriteEndpoint } from '../mcp/sse.js'
import { MAX_SSE_ENDPOINT_SCAN_BYTES } from '../config/defaults.js'
import { sendError } from './http-errors.js'
import { logRequest } from './request-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the route's onRequest hook. */
    principal: Principal | null
    /** Log outcome: ok, no_token, invalid_token:<reason>, insufficient_scope, ... */
    outcome: string | null
  }
}

/** Methods proxied on a route. OPTIONS is answered by the gateway (CORS preflight, never authenticated). */
const PROXIED_METHODS = ['GET', 'HEAD', 'POST', 'DELETE', 'PUT', 'PATCH'] as const

/** Headers a browser-based MCP client needs to send and to read (MCP transports; SDK CORS example). */
const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name, Mcp-Param-*'
const CORS_EXPOSE_HEADERS = 'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version'
/** Added to proxied responses unless the upstream set its own. Bearer tokens, not cookies: `*` grants no ambient authority. */
const CORS_RESPONSE_HEADERS = ['access-control-allow-origin', '*', 'access-control-expose-headers', CORS_EXPOSE_HEADERS] as const

export interface McpRouteDeps {
  readonly route: RouteConfig
  readonly authenticator: Authenticator
  /** Origin clients use; sets X-Forwarded-Proto/-Host upstream. */
  readonly publicUrl: string
}

/** Error responses of a route are readable by browser clients (they need WWW-Authenticate). */
function sendRouteError (reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return sendError(reply.header('access-control-allow-origin', '*').header('access-control-expose-headers', CORS_EXPOSE_HEADERS), status, error, description)
}

export function registerMcpRoute (app: FastifyInstance, deps: McpRouteDeps): void {
  const { route, authenticator } = deps
  // Identity must be sendable as header values: checked once per token, not per request.
  const routeAuth: RouteAuth = authenticator.compileRoute(route, identityRepresentable)
  const challenges = new RouteChallenges(route.resourceMetadataUrl, route.scopes)
  const requiredScopes = route.scopes
  const insufficientChallenge = challenges.insufficientScope(requiredScopes, 'The access token lacks a scope this route requires')
  const rewriteRequestHeaders = compileRequestHeaders(route, deps.publicUrl)
  const upstream = createUpstream(route)
  const routeConfig = { gwRouteId: route.id, kind: 'mcp' }

  const reject = (request: FastifyRequest, reply: FastifyReply, err: unknown): void => {
    if (err instanceof InvalidRequestError) {
      request.outcome = 'invalid_request'
      void sendRouteError(reply.header('www-authenticate', challenges.withError('invalid_request', err.publicDescription)), 400, err.code, err.publicDescription)
    } else if (err instanceof InvalidTokenError) {
      request.outcome = `invalid_token:${err.reason}`
      void sendRouteError(reply.header('www-authenticate', challenges.withError('invalid_token', err.publicDescription)), 401, err.code, err.publicDescription)
    } else if (err instanceof TemporarilyUnavailableError) {
      request.outcome = 'unavailable'
      request.log.warn({ reqId: request.id, detail: err.detail }, 'token validation unavailable')
      void sendRouteError(reply.header('retry-after', String(err.retryAfterSeconds)), 503, err.code, err.publicDescription)
    } else if (err instanceof GatewayError) {
      request.outcome = err.code
      void sendRouteError(reply, err.status, err.code, err.publicDescription)
    } else {
      request.outcome = 'internal_error'
      request.log.error({ reqId: request.id, err }, 'authentication failed unexpectedly')
      void sendRouteError(reply, 500, 'internal_error', 'Internal gateway error')
    }
  }

  const admit = (request: FastifyRequest, reply: FastifyReply, principal: Principal, done: () => void): void => {
    for (let i = 0; i < requiredScopes.length; i++) {
      if (!principal.scopes.has(requiredScopes[i]!)) {
        request.principal = principal
        request.outcome = 'insufficient_scope'
        void sendRouteError(reply.header('www-authenticate', insufficientChallenge), 403, 'insufficient_scope', 'The access token lacks a scope this route requires')
        return
      }
    }
    request.principal = principal
    done()
  }

  const authenticate: onRequestHookHandler = (request, reply, done) => {
    const { path, query } = splitUrl(request.url)
    const problem = checkPath(path) ?? (queryDecodable(query) ? undefined : 'bad_encoding')
    if (problem !== undefined) {
      request.outcome = problem === 'bad_encoding' ? 'invalid_request' : 'not_found'
      void (problem === 'bad_encoding'
        ? sendRouteError(reply, 400, 'invalid_request', 'The request URL is not validly percent-encoded')
        : sendRouteError(reply, 404, 'not_found', 'No route matches this path'))
      return
    }
    let token: string
    try {
      const cred = extractCredential(authorizationValues(request.raw.rawHeaders), query, false)
      if (cred.kind !== 'bearer') {
        request.outcome = 'no_token'
        void sendRouteError(reply.header('www-authenticate', challenges.noToken), 401, 'unauthorized', 'An access token is required')
        return
      }
      token = cred.token
      const hit = authenticator.cached(routeAuth, token, Date.now())
      if (hit !== undefined) {
        admit(request, reply, hit, done)
        return
      }
      // Only tokens not seen before pay for the syntax check: cached ones passed it.
      checkTokenSyntax(token)
      authenticator.verify(routeAuth, token).then(
        (principal) => { admit(request, reply, principal, done) },
        (err: unknown) => { reject(request, reply, err) }
      )
    } catch (err) {
      reject(request, reply, err)
    }
  }

  const preflight: RouteHandlerMethod = (_request, reply) => {
    void reply
      .code(204)
      .header('access-control-allow-origin', '*')
      .header('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS')
      .header('access-control-allow-headers', CORS_ALLOW_HEADERS)
      .header('access-control-expose-headers', CORS_EXPOSE_HEADERS)
      .header('access-control-max-age', '600')
      .send()
  }

  const makeScanner = (): EndpointScanner => new EndpointScanner((data) => rewriteEndpoint(data, route.upstreamOrigin, route.upstreamPath, route.path), MAX_SSE_ENDPOINT_SCAN_BYTES)

  const forwardRequest: RouteHandlerMethod = function (request, reply) {
    const principal = request.principal!
    const url = request.url
    const q = url.indexOf('?')
    let path = route.upstreamPath + (q === -1 ? url : url.slice(0, q)).slice(route.path.length)
    if (path === '') path = '/'
    if (q !== -1) path += url.slice(q)
    const raw = request.raw
    const body = request.body
    // GET opens a stream: its own connection, destroyed with it (proxy/upstream.ts).
    const stream = request.method === 'GET' ? upstream.streamClient() : undefined
    // The gateway writes the response itself; Fastify still runs onResponse (the log line) on finish.
    reply.hijack()
    forward(stream ?? upstream.pool, reply.raw, {
      path,
      method: request.method,
      headers: rewriteRequestHeaders.raw(raw.rawHeaders, principal, raw.socket.remoteAddress),
      body: Buffer.isBuffer(body) ? body : undefined,
      extraResponseHeaders: CORS_RESPONSE_HEADERS,
      sseRewriter: request.method === 'GET' ? makeScanner : undefined,
      onEnd: (outcome, failure, code, cut) => {
        if (stream !== undefined) void stream.destroy()
        request.outcome = outcome
        if (outcome === 'upstream_error') request.log.warn({ reqId: request.id, route: route.id, failure, code }, 'upstream request failed')
        // A response that never finishes gets no onResponse: log it here.
        if (outcome === 'client_closed') logRequest(request, reply, true)
        else if (cut === true) logRequest(request, reply)
      }
    })
  }

  // Server already closed when this runs: cut what is left (SSE streams would hold close() forever).
  app.addHook('onClose', async () => { await upstream.close() })
  for (const url of [route.path, route.path + '/*']) {
    app.route({ method: [...PROXIED_METHODS], url, onRequest: authenticate, handler: forwardRequest, config: routeConfig })
    app.route({ method: 'OPTIONS', url, handler: preflight, config: routeConfig })
  }
}
