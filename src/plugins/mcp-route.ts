/**
 * One protected MCP route: path guard → authenticate (onRequest, before any
 * body is read) → forward to the upstream with identity headers, streaming.
 */
import { pipeline } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, RouteHandlerMethod } from 'fastify'
import replyFrom from '@fastify/reply-from'
import type { RouteConfig } from '../config/types.js'
import { GatewayError, InvalidTokenError, TemporarilyUnavailableError, InvalidRequestError } from '../errors.js'
import type { Authenticator, RouteAuth } from '../auth/authenticator.js'
import type { Principal } from '../auth/principal.js'
import { authorizationValues, extractCredential } from '../auth/bearer.js'
import { RouteChallenges } from '../metadata/challenge.js'
import { checkPath, queryDecodable, splitUrl } from '../proxy/paths.js'
import { compileRequestHeaders, identityRepresentable, rewriteResponseHeaders, type HeaderBag } from '../proxy/headers.js'
import { classifyUpstreamError, createUpstreamClient, kAbortSignal } from '../proxy/upstream.js'
import { EndpointRewriter, rewriteEndpoint } from '../mcp/sse.js'
import { JSONRPC_UPSTREAM_TIMEOUT, JSONRPC_UPSTREAM_UNREACHABLE, jsonRpcError, requestIdOf } from '../mcp/jsonrpc.js'
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

export interface McpRouteDeps {
  readonly route: RouteConfig
  readonly index: number
  readonly authenticator: Authenticator
  /** Origin clients use; sets X-Forwarded-Proto/-Host upstream. */
  readonly publicUrl: string
}

export function registerMcpRoute (app: FastifyInstance, deps: McpRouteDeps): void {
  const { route, authenticator } = deps
  const routeAuth: RouteAuth = authenticator.compileRoute(route, deps.index)
  const challenges = new RouteChallenges(route.resourceMetadataUrl, route.scopes)
  const requiredScopes = route.scopes
  const insufficientChallenge = challenges.insufficientScope(requiredScopes, 'The access token lacks a scope this route requires')
  const rewriteRequestHeaders = compileRequestHeaders(route, deps.publicUrl)
  const client = createUpstreamClient(route)
  const routeConfig = { gwRouteId: route.id, kind: 'mcp' }

  const reject = (request: FastifyRequest, reply: FastifyReply, err: unknown): void => {
    if (err instanceof InvalidRequestError) {
      request.outcome = 'invalid_request'
      void sendError(reply.header('www-authenticate', challenges.withError('invalid_request', err.publicDescription)), 400, err.code, err.publicDescription)
    } else if (err instanceof InvalidTokenError) {
      request.outcome = `invalid_token:${err.reason}`
      void sendError(reply.header('www-authenticate', challenges.withError('invalid_token', err.publicDescription)), 401, err.code, err.publicDescription)
    } else if (err instanceof TemporarilyUnavailableError) {
      request.outcome = 'unavailable'
      request.log.warn({ detail: err.detail }, 'token validation unavailable')
      void sendError(reply.header('retry-after', String(err.retryAfterSeconds)), 503, err.code, err.publicDescription)
    } else if (err instanceof GatewayError) {
      request.outcome = err.code
      void sendError(reply, err.status, err.code, err.publicDescription)
    } else {
      request.outcome = 'internal_error'
      request.log.error({ err }, 'authentication failed unexpectedly')
      void sendError(reply, 500, 'internal_error', 'Internal gateway error')
    }
  }

  const admit = (request: FastifyRequest, reply: FastifyReply, principal: Principal, done: () => void): void => {
    for (let i = 0; i < requiredScopes.length; i++) {
      if (!principal.scopes.has(requiredScopes[i]!)) {
        request.principal = principal
        request.outcome = 'insufficient_scope'
        void sendError(reply.header('www-authenticate', insufficientChallenge), 403, 'insufficient_scope', 'The access token lacks a scope this route requires')
        return
      }
    }
    if (!identityRepresentable(principal)) {
      reject(request, reply, new InvalidTokenError('invalid_claim', { detail: 'identity claims contain characters that cannot be sent as header values' }))
      return
    }
    request.principal = principal
    done()
  }

  const authenticate: onRequestHookHandler = (request, reply, done) => {
    reply.header('access-control-allow-origin', '*').header('access-control-expose-headers', CORS_EXPOSE_HEADERS)
    const { path, query } = splitUrl(request.url)
    const problem = checkPath(path) ?? (queryDecodable(query) ? undefined : 'bad_encoding')
    if (problem !== undefined) {
      request.outcome = problem === 'bad_encoding' ? 'invalid_request' : 'not_found'
      void (problem === 'bad_encoding'
        ? sendError(reply, 400, 'invalid_request', 'The request URL is not validly percent-encoded')
        : sendError(reply, 404, 'not_found', 'No route matches this path'))
      return
    }
    let token: string
    try {
      const cred = extractCredential(authorizationValues(request.raw.rawHeaders), query)
      if (cred.kind !== 'bearer') {
        request.outcome = 'no_token'
        void sendError(reply.header('www-authenticate', challenges.noToken), 401, 'unauthorized', 'An access token is required')
        return
      }
      token = cred.token
      const hit = authenticator.cached(routeAuth, token, Date.now())
      if (hit.principal !== undefined) {
        admit(request, reply, hit.principal, done)
        return
      }
      authenticator.verify(routeAuth, token, hit.key).then(
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

  const forward: RouteHandlerMethod = function (request, reply) {
    const principal = request.principal!
    const q = request.url.indexOf('?')
    const path = q === -1 ? request.url : request.url.slice(0, q)
    const rest = path.slice(route.path.length)
    let source = route.upstreamPath + rest
    if (source === '') source = '/'
    if (q !== -1) source += request.url.slice(q)

    // Abort the upstream request when the client goes away before the response is complete.
    const abort = new AbortController()
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) {
        abort.abort()
        logRequest(request, reply, true)
      }
    })

    const body = request.body
    const opts: Parameters<FastifyReply['from']>[1] = {
      rewriteRequestHeaders: (_req, headers) => {
        rewriteRequestHeaders(headers as HeaderBag, principal, request.raw.socket.remoteAddress)
        ;(headers as Record<symbol, unknown>)[kAbortSignal] = abort.signal
        return headers
      },
      rewriteHeaders: (headers) => {
        rewriteResponseHeaders(headers as HeaderBag)
        return headers
      },
      onResponse: (req, rep, res) => {
        request.outcome = 'ok'
        const ct = (res as unknown as { headers: Record<string, unknown> }).headers['content-type']
        const sse = typeof ct === 'string' && ct.toLowerCase().startsWith('text/event-stream')
        const stream = (res as unknown as { stream: NodeJS.ReadableStream }).stream
        if (sse && req.method === 'GET') {
          const rewriter = new EndpointRewriter((data) => rewriteEndpoint(data, route.upstreamOrigin, route.upstreamPath, route.path), MAX_SSE_ENDPOINT_SCAN_BYTES)
          pipeline(stream, rewriter, () => { /* errors end the response; nothing to add */ })
          void rep.send(rewriter)
        } else {
          void rep.send(stream)
        }
      },
      onError: (rep, { error }) => {
        const kind = classifyUpstreamError(error)
        if (kind === 'aborted' || abort.signal.aborted) {
          request.outcome = 'client_closed'
          void sendError(rep as FastifyReply, 499, 'client_closed', 'The client closed the request')
          return
        }
        request.outcome = 'upstream_error'
        request.log.warn({ route: route.id, failure: kind, code: (error as { cause?: { code?: string } }).cause?.code }, 'upstream request failed')
        const timeout = kind === 'timeout'
        void (rep as FastifyReply)
          .code(timeout ? 504 : 502)
          .header('content-type', 'application/json; charset=utf-8')
          .send(jsonRpcError(
            requestIdOf(body),
            timeout ? JSONRPC_UPSTREAM_TIMEOUT : JSONRPC_UPSTREAM_UNREACHABLE,
            timeout ? 'The upstream MCP server did not respond in time' : 'The upstream MCP server is unreachable'
          ))
      },
      // Never retry: a repeated POST could run a tool twice.
      retryDelay: () => null
    }
    if (Buffer.isBuffer(body)) {
      opts.body = body
      opts.contentType = request.headers['content-type'] ?? 'application/octet-stream'
    }
    return reply.from(source, opts)
  }

  app.register(async (scope) => {
    await scope.register(replyFrom, {
      base: route.upstreamOrigin,
      undici: client as never,
      disableCache: true,
      disableRequestLogging: true
    })
    scope.addHook('onClose', async () => { await client.close() })
    for (const url of [route.path, route.path + '/*']) {
      scope.route({ method: [...PROXIED_METHODS], url, onRequest: authenticate, handler: forward, config: routeConfig })
      scope.route({ method: 'OPTIONS', url, handler: preflight, config: routeConfig })
    }
  })
}
