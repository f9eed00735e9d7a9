/**
 * One protected MCP route: path guard → authenticate (onRequest, before any
 * body is read) → forward to the upstream with identity headers, streaming.
 * Routes with a `policy` also parse each JSON-RPC body, check it against the
 * per-operation scopes, forward the re-serialised body, and filter tools/list
 * results; routes without one forward bodies byte for byte and never parse them.
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
import { forward, type StreamTransform, type TransformChooser } from '../proxy/forwarder.js'
import { EndpointScanner, rewriteEndpoint } from '../mcp/sse.js'
import {
  headerMismatch, jsonRpcError, jsonRpcErrorsFor, parseJsonRpc,
  JSONRPC_HEADER_MISMATCH, JSONRPC_INSUFFICIENT_SCOPE, type JsonRpcId
} from '../mcp/jsonrpc.js'
import { filterToolsListJson, MAX_TOOLS_LIST_RESPONSE_BYTES, ToolsListSseFilter, type ToolsListIds } from '../mcp/tools-filter.js'
import { compilePolicy, type CompiledPolicy } from '../policy/compile.js'
import { allows, evaluate, evaluateNoBody, mayCallTool, type Decision } from '../policy/evaluate.js'
import { MAX_SSE_ENDPOINT_SCAN_BYTES } from '../config/defaults.js'
import { sendError, sendJsonRpcError } from './http-errors.js'
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

/** {@link sendRouteError} with a JSON-RPC error body (policy routes). */
function sendRouteJsonRpcError (reply: FastifyReply, status: number, body: string): FastifyReply {
  return sendJsonRpcError(reply.header('access-control-allow-origin', '*').header('access-control-expose-headers', CORS_EXPOSE_HEADERS), status, body)
}

/** MCP POST bodies are `application/json` (any parameters; RFC 8259 §8.1: UTF-8). */
function isJsonRequestType (value: string | undefined): boolean {
  if (value === undefined) return false
  if (value === 'application/json') return true
  const semi = value.indexOf(';')
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase() === 'application/json'
}

/** A response media type the JSON filter reads: application/json or any `+json` type. */
function isJsonResponseType (headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'content-type') continue
    const v = headers[i + 1]!
    const semi = v.indexOf(';')
    const type = (semi === -1 ? v : v.slice(0, semi)).trim().toLowerCase()
    return type === 'application/json' || type.endsWith('+json')
  }
  return false
}

/** A response body in a content coding (gzip, …) cannot be read by a filter. */
function isContentEncoded (headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-encoding' && headers[i + 1]!.trim().toLowerCase() !== 'identity') return true
  }
  return false
}

/** The value of a request header, or undefined (duplicates arrive joined with ", " and so cannot match). */
function headerValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/** Run two stream transforms in sequence (legacy endpoint rewriting, then tools/list filtering). */
function chain (first: StreamTransform, second: StreamTransform): StreamTransform {
  return {
    write: (chunk) => {
      const a = first.write(chunk)
      return a === undefined || a.length === 0 ? undefined : second.write(a)
    },
    end: () => {
      const a = first.end()
      const b = a === undefined || a.length === 0 ? undefined : second.write(a)
      const c = second.end()
      return b === undefined ? c : c === undefined ? b : Buffer.concat([b, c])
    }
  }
}

export function registerMcpRoute (app: FastifyInstance, deps: McpRouteDeps): void {
  const { route, authenticator } = deps
  // Identity must be sendable as header values: checked once per token, not per request.
  const routeAuth: RouteAuth = authenticator.compileRoute(route, identityRepresentable)
  const challenges = new RouteChallenges(route.resourceMetadataUrl, route.scopes)
  const policy: CompiledPolicy | undefined = route.policy === undefined ? undefined : compilePolicy(route.policy, route.scopes)
  // Policy routes check the route's scopes with the operation's, once the body is read, so one
  // 403 names every scope the operation needs (MCP 2026-07-28); the others check them here.
  const requiredScopes = policy === undefined ? route.scopes : []
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
  /** GET streams: the legacy endpoint event is rewritten (HTTP+SSE under a prefix). */
  const endpointChooser: TransformChooser = (_status, _headers, sse) => sse ? makeScanner() : undefined

  /** Forward to the upstream; the gateway writes the response itself. */
  const proxy = (request: FastifyRequest, reply: FastifyReply, body: Buffer | string | undefined, requestId: JsonRpcId | undefined, transform: TransformChooser | undefined, plainEncoding: boolean): void => {
    const principal = request.principal!
    const url = request.url
    const q = url.indexOf('?')
    let path = route.upstreamPath + (q === -1 ? url : url.slice(0, q)).slice(route.path.length)
    if (path === '') path = '/'
    if (q !== -1) path += url.slice(q)
    const raw = request.raw
    let headers = rewriteRequestHeaders.raw(raw.rawHeaders, principal, raw.socket.remoteAddress)
    // A filtered response must be readable: ask the upstream for no content coding.
    if (plainEncoding) headers = headers.filter((_v, i, all) => all[i - (i % 2)] !== 'accept-encoding')
    // GET opens a stream: its own connection, destroyed with it (proxy/upstream.ts).
    const stream = request.method === 'GET' ? upstream.streamClient() : undefined
    // The gateway writes the response itself; Fastify still runs onResponse (the log line) on finish.
    reply.hijack()
    forward(stream ?? upstream.pool, reply.raw, {
      path,
      method: request.method,
      headers,
      body,
      requestId,
      extraResponseHeaders: CORS_RESPONSE_HEADERS,
      responseTransform: transform,
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

  const forwardRequest: RouteHandlerMethod = function (request, reply) {
    const body = request.body
    proxy(request, reply, Buffer.isBuffer(body) ? body : undefined, undefined, request.method === 'GET' ? endpointChooser : undefined, false)
  }

  /**
   * The response transform of a filtering exchange: tools/list results keep only
   * the tools this principal may call. `ids` are the tools/list request ids of
   * the POST; undefined (GET streams: legacy HTTP+SSE answers POSTs there) filters
   * every response carrying `result.tools`.
   */
  const filteringChooser = (p: CompiledPolicy, principal: Principal, ids: ToolsListIds, endpoint: boolean): TransformChooser => {
    const scopes = principal.scopes
    const allowed = (name: string): boolean => mayCallTool(p, scopes, name)
    return (status, headers, sse) => {
      if (sse) {
        if (isContentEncoded(headers)) return 'refuse'
        const filter = new ToolsListSseFilter(ids, allowed, MAX_TOOLS_LIST_RESPONSE_BYTES)
        return endpoint ? chain(makeScanner(), filter) : filter
      }
      // Clients read results from 2xx JSON only; other statuses and types pass untouched.
      if (status < 200 || status >= 300 || status === 204 || !isJsonResponseType(headers)) return undefined
      if (isContentEncoded(headers)) return 'refuse'
      return { maxBytes: MAX_TOOLS_LIST_RESPONSE_BYTES, apply: (b) => filterToolsListJson(b, ids, allowed) }
    }
  }

  const deny = (request: FastifyRequest, reply: FastifyReply, decision: Decision, body: string): void => {
    request.outcome = 'insufficient_scope'
    void sendRouteJsonRpcError(reply.header('www-authenticate', challenges.insufficientScope(decision.needed, 'The access token lacks a scope this operation requires')), 403, body)
  }

  const forwardPolicyRequest: RouteHandlerMethod = function (request, reply) {
    const p = policy!
    const principal = request.principal!
    const raw = request.raw
    const body = request.body
    const buf = Buffer.isBuffer(body) ? body : undefined
    if (request.method !== 'POST' && (buf === undefined || buf.length === 0)) {
      // GET, DELETE, HEAD: no operation to read; route scopes and default.
      const decision = evaluateNoBody(p, principal)
      if (!decision.allow) {
        deny(request, reply, decision, jsonRpcError(null, JSONRPC_INSUFFICIENT_SCOPE, 'Insufficient scope'))
        return
      }
      const get = request.method === 'GET'
      const transform = get ? (p.filterToolsList ? filteringChooser(p, principal, undefined, true) : endpointChooser) : undefined
      proxy(request, reply, undefined, undefined, transform, get && p.filterToolsList)
      return
    }
    // Any request with a body is inspected: what is not authorised is never forwarded.
    if (!isJsonRequestType(raw.headers['content-type'])) {
      request.outcome = 'unsupported_media_type'
      void sendRouteError(reply, 415, 'unsupported_media_type', 'The request content type is not supported')
      return
    }
    const parsed = parseJsonRpc(buf)
    if (!parsed.ok) {
      request.outcome = 'invalid_request'
      void sendRouteJsonRpcError(reply, 400, jsonRpcError(parsed.id, parsed.code, parsed.message))
      return
    }
    const single = parsed.batch ? undefined : parsed.messages[0]!
    const requestId: JsonRpcId = single !== undefined && single.method !== undefined && single.id !== undefined ? single.id : null
    const mismatch = headerMismatch(parsed, headerValue(raw.headers['mcp-method']), headerValue(raw.headers['mcp-name']))
    if (mismatch !== undefined) {
      request.outcome = 'header_mismatch'
      void sendRouteJsonRpcError(reply, 400, jsonRpcError(requestId, JSONRPC_HEADER_MISMATCH, mismatch))
      return
    }
    const decision = evaluate(p, principal, parsed.messages)
    if (!decision.allow) {
      deny(request, reply, decision, jsonRpcErrorsFor(parsed, JSONRPC_INSUFFICIENT_SCOPE, (msg) =>
        allows(p, principal, msg) ? 'Not processed: another message in the batch was refused' : 'Insufficient scope'))
      return
    }
    // What is authorised is exactly what is forwarded: the parsed value, re-serialised, so the
    // upstream cannot read the bytes differently from the gateway (parser differentials). The
    // consequences are accepted: integers beyond 2^53 lose precision, duplicate keys collapse
    // to the last one, and whitespace and escapes are normalised. undici sets Content-Length.
    const out = JSON.stringify(parsed.value)
    let ids: Set<string | number> | undefined
    if (p.filterToolsList) {
      const msgs = parsed.messages
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i]!
        if (m.method === 'tools/list' && m.id !== undefined && m.id !== null) (ids ??= new Set()).add(m.id)
      }
    }
    proxy(request, reply, out, requestId, ids === undefined ? undefined : filteringChooser(p, principal, ids, false), ids !== undefined)
  }

  // Server already closed when this runs: cut what is left (SSE streams would hold close() forever).
  app.addHook('onClose', async () => { await upstream.close() })
  for (const url of [route.path, route.path + '/*']) {
    app.route({ method: [...PROXIED_METHODS], url, onRequest: authenticate, handler: policy === undefined ? forwardRequest : forwardPolicyRequest, config: routeConfig })
    app.route({ method: 'OPTIONS', url, handler: preflight, config: routeConfig })
  }
}
