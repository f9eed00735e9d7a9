/**
 * One protected MCP route: path guard → authenticate (onRequest, before any
 * body is read) → forward to the upstream with identity headers, streaming.
 * Routes with a `policy` also parse each JSON-RPC body, check it against the
 * per-operation scopes, forward the re-serialised body, and filter tools/list
 * results; routes without one forward bodies byte for byte and never parse them
 * (with the audit log on, they parse them for the audit line only).
 *
 * The steps after admission (session gate, policy, stream bounds, forwarding)
 * are written once against an {@link Exchange} (plugins/exchange.ts): Fastify's
 * route runs them, and so does the lane (plugins/lane.ts), which takes the
 * common cached-token POST without Fastify; it joins at the end of {@link registerMcpRoute}.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAbortHookHandler, onRequestHookHandler, RouteHandlerMethod } from 'fastify'
import type { RouteConfig } from '../config/types.js'
import { GatewayError, InvalidTokenError, TemporarilyUnavailableError, InvalidRequestError } from '../errors.js'
import type { Authenticator, RouteAuth } from '../auth/authenticator.js'
import type { Principal } from '../auth/principal.js'
import { authorizationValues, checkTokenSyntax, extractCredential } from '../auth/bearer.js'
import { RouteChallenges } from '../metadata/challenge.js'
import { checkPath, queryDecodable, splitUrl } from '../proxy/paths.js'
import { compileRequestHeaders, identityRepresentable } from '../proxy/headers.js'
import { createUpstream } from '../proxy/upstream.js'
import { compileUpstreamExtras, createUpstreamCredential, UpstreamCredentialError } from '../proxy/upstream-auth.js'
import { createAssertionIssuer } from '../identity/assertion.js'
import type { SigningKeys } from '../identity/keys.js'
import { forward, type StreamTransform, type TransformChooser } from '../proxy/forwarder.js'
import { EndpointScanner, rewriteEndpoint } from '../mcp/sse.js'
import {
  headerMismatch, jsonRpcError, jsonRpcErrorsFor, parseJsonRpc, targetOf,
  JSONRPC_HEADER_MISMATCH, JSONRPC_INSUFFICIENT_SCOPE, type JsonRpcId, type JsonRpcMessage
} from '../mcp/jsonrpc.js'
import { filterToolsListJson, MAX_TOOLS_LIST_RESPONSE_BYTES, ToolsListSseFilter, type ToolsListIds } from '../mcp/tools-filter.js'
import { compilePolicy, type CompiledPolicy } from '../policy/compile.js'
import { allows, evaluate, evaluateNoBody, mayCallTool, requiredFor, type Decision } from '../policy/evaluate.js'
import { MAX_SSE_ENDPOINT_SCAN_BYTES } from '../config/defaults.js'
import { compileRouteCors } from './origin.js'
import type { RateCheck, RateLimits } from './rate-limit.js'
import { admitStreamable, openStream } from './stream-limit.js'
import { compileClientAddress, type ClientAddressResolver } from '../proxy/client-ip.js'
import type { StreamLimiter } from '../proxy/stream-limits.js'
import type { RequestRecording } from './request-log.js'
import { sessionGate, sessionGateHook } from './session-gate.js'
import { answerInternalError, exchangeOf, ReplyExchange, sendRouteError, type Exchange } from './exchange.js'
import { readBody, type Lane, type LaneExchange } from './lane.js'
import type { SessionBinder, SessionExchange } from '../session/binding.js'
import { compileDenialLabel, NOOP_TELEMETRY, type Telemetry } from '../observability/telemetry.js'
import type { AuditWriter } from '../observability/audit.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the route's onRequest hook. */
    principal: Principal | null
    /** Log outcome: ok, no_token, invalid_token:<reason>, insufficient_scope, ... */
    outcome: string | null
  }
}

const INSUFFICIENT_ROUTE_SCOPE = 'The access token lacks a scope this route requires'

/** Methods proxied on a route. OPTIONS is answered by the gateway (CORS preflight, never authenticated). */
const PROXIED_METHODS = ['GET', 'HEAD', 'POST', 'DELETE', 'PUT', 'PATCH'] as const

/** X-Forwarded-For when no trustProxy resolver is given: the socket address. */
const SOCKET_ONLY = compileClientAddress(false)

export interface McpRouteDeps {
  readonly route: RouteConfig
  readonly authenticator: Authenticator
  /** Origin clients use; sets X-Forwarded-Proto/-Host upstream. */
  readonly publicUrl: string
  /** Identity assertion keys; required when the route has `identityAssertion`. */
  readonly signingKeys?: SigningKeys | undefined
  /** Client IP and X-Forwarded-For under trustProxy; default: the socket address only. */
  readonly clientAddress?: ClientAddressResolver
  /** Request rate limits; undefined: none configured. */
  readonly rateLimits?: RateLimits | undefined
  /** Concurrent SSE stream bounds, shared by every route; undefined: unbounded. */
  readonly streams?: StreamLimiter
  /** Session binding (session/binding.ts); undefined: session ids pass unchecked. */
  readonly sessions?: SessionBinder | undefined
  /** Metrics (observability/telemetry.ts); undefined: none. */
  readonly telemetry?: Telemetry
  /** Audit lines of this route's exchanges; undefined: audit is off (bodies of routes without a policy stay unread). */
  readonly audit?: AuditWriter | undefined
  /** The lane (plugins/lane.ts) the route joins, unless it has rate limits; undefined: Fastify only. */
  readonly lane?: Lane | undefined
  /** `limits.maxBatchMessages`: most messages in a batch on a policy route; undefined or null: no cap. */
  readonly maxBatchMessages?: number | null
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
  const insufficientChallenge = challenges.insufficientScope(requiredScopes, INSUFFICIENT_ROUTE_SCOPE)
  const insufficientHeader: readonly string[] = ['www-authenticate', insufficientChallenge]
  const rewriteRequestHeaders = compileRequestHeaders(route, deps.publicUrl)
  const upstream = createUpstream(route)
  // Assertion and upstream credential: undefined (no per-request work) when the route uses neither.
  const credential = createUpstreamCredential(route.upstreamAuth, route.id, app.log)
  if (route.identityAssertion !== undefined && deps.signingKeys === undefined) throw new Error(`route ${route.id}: identityAssertion needs signing keys`)
  const extras = compileUpstreamExtras(route.identityAssertion === undefined ? undefined : createAssertionIssuer(route.identityAssertion, deps.signingKeys!, deps.publicUrl), credential)
  const cors = compileRouteCors(route.allowedOrigins)
  const telemetry = deps.telemetry ?? NOOP_TELEMETRY
  // Bound once: the request path records into this route's own cells.
  const tel = telemetry.route(route.id)
  const audit = deps.audit
  const maxBatchMessages = deps.maxBatchMessages ?? null
  const denialLabel = route.policy === undefined ? undefined : compileDenialLabel(route.policy)
  const limits = deps.rateLimits?.forRoute(route.id, tel)
  const clientAddress = deps.clientAddress ?? SOCKET_ONLY
  const streams = deps.streams
  const recording: RequestRecording = { routeId: route.id, telemetry: tel, audit, requestLine: app.requestLine }
  const routeConfig = { gwRouteId: route.id, kind: 'mcp', cors, recording }

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

  /** The route's scopes are all held (both edges check this once the token is known). */
  const holdsRouteScopes = (principal: Principal): boolean => {
    for (let i = 0; i < requiredScopes.length; i++) if (!principal.scopes.has(requiredScopes[i]!)) return false
    return true
  }

  const admit = (request: FastifyRequest, reply: FastifyReply, principal: Principal, done: () => void): void => {
    if (!holdsRouteScopes(principal)) {
      request.principal = principal
      request.outcome = 'insufficient_scope'
      void sendRouteError(reply.header('www-authenticate', insufficientChallenge), 403, 'insufficient_scope', INSUFFICIENT_ROUTE_SCOPE)
      return
    }
    request.principal = principal
    // Made now, so a client that leaves while its body is read is still recorded (onRequestAbort below).
    exchangeOf(request, reply)
    done()
  }

  const authenticate: onRequestHookHandler = (request, reply, done) => {
    // A disallowed browser Origin is refused before any token work (MCP transports, 2025-11-25).
    if (cors.refuse(request, reply)) return
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
      tel.tokenCache(hit !== undefined)
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

  /** The legacy endpoint rewriter; the rewritten URL's session id is bound to the caller (session/binding.ts). */
  const makeScanner = (session: SessionExchange | null): EndpointScanner => new EndpointScanner((data) => {
    const url = rewriteEndpoint(data, route.upstreamOrigin, route.upstreamPath, route.path)
    if (url !== undefined) session?.endpoint(url)
    return url
  }, MAX_SSE_ENDPOINT_SCAN_BYTES)
  /** GET streams: the legacy endpoint event is rewritten (HTTP+SSE under a prefix). */
  const endpointChooser = (session: SessionExchange | null): TransformChooser => (_status, _headers, sse) => sse ? makeScanner(session) : undefined

  /** Forward to the upstream; the gateway writes the response itself. */
  const proxy = (x: Exchange, body: Buffer | string | undefined, requestId: JsonRpcId | undefined, transform: TransformChooser | undefined, plainEncoding: boolean): void => {
    const principal = x.principal!
    const url = x.url
    const q = url.indexOf('?')
    let path = route.upstreamPath + (q === -1 ? url : url.slice(0, q)).slice(route.path.length)
    if (path === '') path = '/'
    if (q !== -1) path += url.slice(q)
    const raw = x.raw
    let headers = rewriteRequestHeaders.raw(raw.rawHeaders, principal, clientAddress.forwardedFor(raw.socket.remoteAddress, raw.headers['x-forwarded-for']))
    // A filtered response must be readable: ask the upstream for no content coding.
    if (plainEncoding) headers = headers.filter((_v, i, all) => all[i - (i % 2)] !== 'accept-encoding')
    if (extras !== undefined) {
      const more = extras(principal, raw.rawHeaders, Date.now())
      if (!Array.isArray(more)) {
        more.then((m) => {
          // The client left while the credential was fetched (the request stream itself ends once read).
          if (raw.socket.destroyed) x.finished(true)
          else dispatch(x, path, headers.concat(m), body, requestId, transform)
        }, (err: unknown) => {
          if (raw.socket.destroyed) x.finished(true)
          else extrasFailed(x, err)
        })
        return
      }
      for (let i = 0; i < more.length; i++) headers.push(more[i]!)
    }
    dispatch(x, path, headers, body, requestId, transform)
  }

  /** The upstream credential or assertion could not be had: the documented status; nothing reaches the upstream. */
  const extrasFailed = (x: Exchange, err: unknown): void => {
    if (err instanceof UpstreamCredentialError) {
      x.outcome = `upstream_auth:${err.code}`
      const header = err.retryAfterSeconds !== undefined
        ? ['retry-after', String(err.retryAfterSeconds)]
        : ['www-authenticate', err.status === 401 ? challenges.withError('invalid_token', err.publicDescription) : challenges.insufficientScope(route.scopes, err.publicDescription)]
      x.sendError(err.status, err.code, err.publicDescription, header)
      return
    }
    x.outcome = 'internal_error'
    x.log.error({ reqId: x.id, route: route.id, err }, 'identity assertion signing failed')
    x.sendError(500, 'internal_error', 'Internal gateway error')
  }

  const dispatch = (x: Exchange, path: string, headers: string[], body: Buffer | string | undefined, requestId: JsonRpcId | undefined, transform: TransformChooser | undefined): void => {
    // GET opens a stream: bounded per caller and in total, its own connection, destroyed with it (proxy/upstream.ts).
    // Other methods may be answered with a stream (SSE): admitted under the limits, counted while they stream.
    let streamKey: string | undefined
    let onStream: (() => void) | undefined
    const get = x.method === 'GET'
    if (streams !== undefined) {
      if (get) {
        streamKey = openStream(streams, x, x.principal!)
        if (streamKey === undefined) return
        telemetry.streamOpened()
      } else {
        const key = admitStreamable(streams, x, x.principal!)
        if (key === undefined) return
        onStream = () => { streams.track(key); streamKey = key; telemetry.streamOpened() }
      }
    }
    // Milliseconds since the request arrived; what follows is the upstream's time.
    tel.overhead(x.elapsedMs())
    const stream = get ? upstream.streamClient() : undefined
    x.take()
    forward(stream ?? upstream.pool, x.res, {
      path,
      method: x.method,
      headers,
      body,
      requestId,
      extraResponseHeaders: cors.responseHeaders(x.raw.headers.origin),
      responseTransform: transform,
      observer: x.session ?? undefined,
      onStream,
      onEnd: (outcome, failure, code) => {
        if (stream !== undefined) void stream.destroy()
        x.session?.end()
        if (streamKey !== undefined) {
          streams!.release(streamKey)
          telemetry.streamClosed()
        }
        x.outcome = outcome
        if (outcome === 'upstream_error') x.log.warn({ reqId: x.id, route: route.id, failure, code }, 'upstream request failed')
        // Recorded here, as the exchange ends: a response cut or left by the client never finishes.
        x.finished(outcome === 'client_closed')
      }
    })
  }

  /** Routes without a policy: the bytes as received. */
  const forwardBody = (x: Exchange, body: Buffer | undefined): void => {
    proxy(x, body, undefined, x.method === 'GET' ? endpointChooser(x.session) : undefined, false)
  }

  /**
   * forwardBody with the audit on: the body is parsed for the audit line only
   * (POSTs, and other requests with a body); the bytes forwarded are unchanged,
   * and a body that is not JSON-RPC is forwarded as before.
   */
  const forwardAuditedBody = (x: Exchange, buf: Buffer | undefined): void => {
    if (x.method === 'POST' || (buf !== undefined && buf.length > 0)) {
      const parsed = parseJsonRpc(buf)
      x.audit = parsed.ok ? { messages: parsed.messages } : { parseError: parsed.message }
    }
    proxy(x, buf, undefined, x.method === 'GET' ? endpointChooser(x.session) : undefined, false)
  }

  /**
   * The response transform of a filtering exchange: tools/list results keep only
   * the tools this principal may call. `ids` are the tools/list request ids of
   * the POST; undefined (GET streams: legacy HTTP+SSE answers POSTs there) filters
   * every response carrying `result.tools`.
   */
  const filteringChooser = (p: CompiledPolicy, principal: Principal, ids: ToolsListIds, endpoint: boolean, session: SessionExchange | null = null): TransformChooser => {
    const scopes = principal.scopes
    const allowed = (name: string): boolean => mayCallTool(p, scopes, name)
    return (status, headers, sse) => {
      if (sse) {
        if (isContentEncoded(headers)) return 'refuse'
        const filter = new ToolsListSseFilter(ids, allowed, MAX_TOOLS_LIST_RESPONSE_BYTES)
        return endpoint ? chain(makeScanner(session), filter) : filter
      }
      // Clients read results from 2xx JSON only; other statuses and types pass untouched.
      if (status < 200 || status >= 300 || status === 204 || !isJsonResponseType(headers)) return undefined
      if (isContentEncoded(headers)) return 'refuse'
      return { maxBytes: MAX_TOOLS_LIST_RESPONSE_BYTES, apply: (b) => filterToolsListJson(b, ids, allowed) }
    }
  }

  /** A policy refusal; `messages` (a refused body): each refused one is counted, and the audit line names what it lacks. */
  const deny = (x: Exchange, decision: Decision, body: string, messages?: readonly JsonRpcMessage[]): void => {
    x.outcome = 'insufficient_scope'
    if (messages === undefined) tel.policyDenied(denialLabel!(undefined, undefined))
    else {
      const scopes = x.principal!.scopes
      const missing = messages.map((m) => requiredFor(policy!, m).filter((s) => !scopes.has(s)))
      for (let i = 0; i < messages.length; i++) {
        if (missing[i]!.length > 0) tel.policyDenied(denialLabel!(messages[i]!.method, targetOf(messages[i]!)))
      }
      if (x.audit !== null) x.audit.missing = missing
    }
    x.sendJsonRpcError(403, body, ['www-authenticate', challenges.insufficientScope(decision.needed, 'The access token lacks a scope this operation requires')])
  }

  const forwardPolicyBody = (x: Exchange, buf: Buffer | undefined): void => {
    const p = policy!
    const principal = x.principal!
    const raw = x.raw
    if (x.method !== 'POST' && (buf === undefined || buf.length === 0)) {
      // GET, DELETE, HEAD: no operation to read; route scopes and default.
      const decision = evaluateNoBody(p, principal)
      if (!decision.allow) {
        deny(x, decision, jsonRpcError(null, JSONRPC_INSUFFICIENT_SCOPE, 'Insufficient scope'))
        return
      }
      const get = x.method === 'GET'
      const transform = get ? (p.filterToolsList ? filteringChooser(p, principal, undefined, true, x.session) : endpointChooser(x.session)) : undefined
      proxy(x, undefined, undefined, transform, get && p.filterToolsList)
      return
    }
    // Any request with a body is inspected: what is not authorised is never forwarded.
    if (!isJsonRequestType(raw.headers['content-type'])) {
      if (audit !== undefined) x.audit = { parseError: 'Unsupported content type' }
      x.outcome = 'unsupported_media_type'
      x.sendError(415, 'unsupported_media_type', 'The request content type is not supported')
      return
    }
    const parsed = parseJsonRpc(buf, maxBatchMessages)
    if (audit !== undefined) x.audit = parsed.ok ? { messages: parsed.messages } : { parseError: parsed.message }
    if (!parsed.ok) {
      x.outcome = parsed.batchTooLong === true ? 'batch_too_long' : 'invalid_request'
      x.sendJsonRpcError(400, jsonRpcError(parsed.id, parsed.code, parsed.message))
      return
    }
    const single = parsed.batch ? undefined : parsed.messages[0]!
    const requestId: JsonRpcId = single !== undefined && single.method !== undefined && single.id !== undefined ? single.id : null
    const mismatch = headerMismatch(parsed, headerValue(raw.headers['mcp-method']), headerValue(raw.headers['mcp-name']))
    if (mismatch !== undefined) {
      x.outcome = 'header_mismatch'
      x.sendJsonRpcError(400, jsonRpcError(requestId, JSONRPC_HEADER_MISMATCH, mismatch))
      return
    }
    const decision = evaluate(p, principal, parsed.messages)
    if (!decision.allow) {
      deny(x, decision, jsonRpcErrorsFor(parsed, JSONRPC_INSUFFICIENT_SCOPE, (msg) =>
        allows(p, principal, msg) ? 'Not processed: another message in the batch was refused' : 'Insufficient scope'), parsed.messages)
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
    const transform = ids === undefined ? undefined : filteringChooser(p, principal, ids, false)
    // perTool counts what was authorised, once parsed: the tools/call names of this body.
    if (limits?.perTool !== undefined) {
      limits.perTool(x, parsed.messages, requestId).then((ok) => {
        if (ok) proxy(x, out, requestId, transform, ids !== undefined)
      }).catch((err: unknown) => { answerInternalError(x, err) })
      return
    }
    proxy(x, out, requestId, transform, ids !== undefined)
  }

  /** What the route does with a request once its caller is admitted and its body read (both edges). */
  const handleBody = policy !== undefined ? forwardPolicyBody : audit !== undefined ? forwardAuditedBody : forwardBody
  const handler: RouteHandlerMethod = function (request, reply) {
    const body = request.body
    handleBody(exchangeOf(request, reply), Buffer.isBuffer(body) ? body : undefined)
  }

  /**
   * The client left before its request was complete (mid-body): Fastify runs no onResponse, so the
   * request is recorded here, as the lane records it (`client_closed`). Requests refused before
   * admission have already been answered and recorded.
   */
  const recordAbort: onRequestAbortHookHandler = (request, done) => {
    request.exchange?.finished(true)
    done()
  }

  const gate = deps.sessions === undefined ? undefined : sessionGate(deps.sessions, route.id, tel)
  // perIp before any token work; perPrincipal once the caller is known; the session gate last (a store lookup).
  const perIpHook = limits?.perIp === undefined ? undefined : rateLimitHook(limits.perIp)
  const onRequestHooks = [perIpHook, authenticate, limits?.perPrincipal === undefined ? undefined : rateLimitHook(limits.perPrincipal), gate === undefined ? undefined : sessionGateHook(gate)].filter((h): h is onRequestHookHandler => h !== undefined)
  // Server already closed when this runs: cut what is left (SSE streams would hold close() forever).
  app.addHook('onClose', async () => { credential?.close(); await upstream.close() })
  for (const url of [route.path, route.path + '/*']) {
    app.route({ method: [...PROXIED_METHODS], url, onRequest: onRequestHooks, onRequestAbort: recordAbort, handler, config: routeConfig })
    app.route({ method: 'OPTIONS', url, onRequest: perIpHook, handler: cors.preflight, config: routeConfig })
  }

  const lane = deps.lane
  if (lane === undefined) return
  const maxBodyBytes = lane.maxBodyBytes
  const readAndHandle = (x: LaneExchange): void => { readBody(x, handleBody) }
  const afterLimits = gate === undefined ? readAndHandle : (x: LaneExchange): void => { gate(x, () => { readAndHandle(x) }) }
  // The lane counts the same limits as Fastify's hooks, in the same order (its token is known already).
  const laneAdmit = chainRateChecks([limits?.perIp, limits?.perPrincipal], afterLimits)
  lane.add(route.path, (req, res) => {
    const start = performance.now()
    const h = req.headers
    // Only the common case (plugins/lane.ts); anything else is left to Fastify, unread.
    if (h.origin !== undefined || h['transfer-encoding'] !== undefined) return false
    const length = h['content-length']
    const type = h['content-type']
    if (length === undefined || type === undefined) return false
    const bytes = Number(length)
    if (!(bytes > 0) || bytes > maxBodyBytes) return false
    if (policy !== undefined && !isJsonRequestType(type)) return false
    let principal: Principal | undefined
    try {
      const cred = extractCredential(authorizationValues(req.rawHeaders), '', false)
      if (cred.kind !== 'bearer') return false
      principal = authenticator.cached(routeAuth, cred.token, Date.now())
    } catch {
      return false
    }
    if (principal === undefined) return false
    // Taken from here on: the cache lookup has been counted (token_cache_total, introspection cache_hit).
    tel.tokenCache(true)
    const x = lane.exchange(req, res, recording, principal, start)
    if (!holdsRouteScopes(principal)) {
      x.outcome = 'insufficient_scope'
      x.sendError(403, 'insufficient_scope', INSUFFICIENT_ROUTE_SCOPE, insufficientHeader)
      return true
    }
    laneAdmit(x)
    return true
  })
}

/**
 * A rate-limit check as an onRequest hook. An exchange is made for the refusal only: a request
 * the hook lets through gets its exchange when it is admitted, as on a route without limits.
 */
function rateLimitHook (check: RateCheck): onRequestHookHandler {
  return (request, reply, done) => { check(request.exchange ?? new ReplyExchange(request, reply), done) }
}

/** Run the configured checks in order, then `last`; a check that refused has answered. Compiled once per route. */
function chainRateChecks (checks: ReadonlyArray<RateCheck | undefined>, last: (x: LaneExchange) => void): (x: LaneExchange) => void {
  let run = last
  for (let i = checks.length - 1; i >= 0; i--) {
    const check = checks[i]
    if (check === undefined) continue
    const next = run
    run = (x) => { check(x, () => { next(x) }) }
  }
  return run
}
