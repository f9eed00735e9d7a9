/**
 * The lane (src/plugins/lane.ts, issue 3): the common request of a protected
 * route is taken before Fastify sees it. This suite proves, through real
 * gateways (YAML config through the real loader, port 0), the real
 * oidc-provider AS and real SDK upstreams, that:
 * - exactly the documented common request is taken (gateway.laneTaken()
 *   counts it): a POST to the route's exact path, no Origin, no
 *   Transfer-Encoding, a Content-Length body within limits.maxBodyBytes, a
 *   Content-Type (JSON on a policy route), one Authorization header with a
 *   cached bearer token, not closing (a cached token without the route's
 *   scopes is answered 403 by the lane, as Fastify would);
 * - on a gateway with rate limits the lane counts perIp, perPrincipal and
 *   perTool in the same store as Fastify's hooks, and its 429s are Fastify's;
 * - everything else falls through to Fastify and gets its documented answer;
 * - the refusals the lane writes itself (policy, malformed JSON-RPC, header
 *   mismatch, session binding, stream bounds, upstream down) are the same
 *   status, body and headers Fastify writes for the same request, which is
 *   made to fall through by an allowed Origin header (CORS headers aside) or
 *   a chunked body;
 * - a lane request is recorded like any other: one request line, its audit
 *   lines, requests_total; a client that leaves mid-body is client_closed;
 *   request ids never repeat between the two edges; no token is ever logged.
 */
import { connect } from 'node:net'
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStatefulUpstream, startStatelessUpstream, type SeenRequest } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY, type RunningGateway } from '../helpers/gateway.js'
import { freePort, rawRequest } from '../helpers/net.js'
import { eventually } from '../helpers/cli.js'
import { scrape } from '../helpers/prometheus.js'
import { SESSION_NOT_FOUND_BODY } from '../../src/session/binding.js'

const RESOURCE = 'https://mcp.lane.test/mcp'
const PROTOCOL = '2025-06-18'
const EVIL = 'https://evil.example'

const as = await startAuthServer()
as.registerResource({ url: RESOURCE, scope: 'mcp:tools mcp:admin' })
const up = await startStatelessUpstream({ jsonResponse: true })
const stateful = await startStatefulUpstream()
// A port that was free a moment ago (port 0, then closed): nothing listens there.
const closedPort = await freePort()

const issuers = [{ issuer: as.issuer, audience: RESOURCE }]
const gw = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/admin', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools', 'mcp:admin'] },
    { path: '/policy', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], policy: { default: [], tools: { whoami: ['mcp:admin'] } } },
    { path: '/stateful', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/down', upstream: `http://127.0.0.1:${closedPort}/mcp`, scopes: ['mcp:tools'] }
  ],
  limits: { maxBodyBytes: 4096 }
}))
const gwLimited = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
  rateLimits: { perPrincipal: { max: 3, windowSeconds: 60 } }
}))
const gwToolLimited = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [{ path: '/policy', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], policy: { default: ['mcp:tools'] } }],
  rateLimits: { perTool: { max: 2, windowSeconds: 60 } }
}))
const gwIpLimited = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
  rateLimits: { perIp: { max: 3, windowSeconds: 60 } }
}))
// One stream per caller: GET /t/ticks holds it (the upstream's SSE test route), POST /mcp is the lane's.
const gwStreams = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/t', upstream: up.origin, scopes: ['mcp:tools'] }
  ],
  limits: { maxStreamsPerPrincipal: 1 }
}))
const gwObs = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/policy', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], policy: { default: [], tools: { whoami: ['mcp:admin'] } } }
  ],
  audit: { enabled: true, destination: 'stdout' },
  metrics: { enabled: true }
}))
// The server's own bounds (a slow body) and its shutdown; closed by its test.
const gwEdge = await startGateway(() => ({
  authorizationServers: issuers,
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
  limits: { headersTimeoutSeconds: 1, requestTimeoutSeconds: 1 }
}))
const gateways: RunningGateway[] = [gw, gwLimited, gwIpLimited, gwToolLimited, gwStreams, gwObs, gwEdge]
t.teardown(async () => {
  await Promise.all(gateways.map(async (g) => { await g.close() }))
  await Promise.all([up.close(), stateful.close(), as.close()])
})

const TOOLS = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const alice = (await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'lane-alice' })).accessToken
const bob = (await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'lane-bob' })).accessToken
/** Every token this suite sends: none may ever appear in a log line. */
const sentTokens = [TOOLS, alice, bob]
async function freshToken (scope = 'mcp:tools'): Promise<string> {
  const tok = await as.clientCredentialsToken({ resource: RESOURCE, scope })
  sentTokens.push(tok)
  return tok
}

let nextId = 1
const rpc = (method: string, params?: Record<string, unknown>, id: number | string = nextId++): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })

interface Answer { status: number, headers: IncomingHttpHeaders, body: string, /** laneTaken() delta: 1 the lane took it, 0 Fastify did. */ taken: number }
interface Req { method?: string, headers?: Record<string, string | string[]>, body?: string }

/** One request over its own connection (node:http: repeated headers go out as separate lines). */
async function call (g: RunningGateway, path: string, r: Req = {}): Promise<Answer> {
  const before = g.gateway.laneTaken()
  const res = await rawRequest(g.url, r.method ?? 'POST', path, r.headers ?? {}, r.body)
  return { ...res, taken: g.gateway.laneTaken() - before }
}

/** POST with the standard MCP headers (JSON, bearer token) plus `extra`. */
const post = (token: string, extra: Record<string, string | string[]> = {}): Record<string, string | string[]> =>
  ({ ...mcpHeaders(token, { 'mcp-protocol-version': PROTOCOL }), ...extra })

/** A Fastify twin of a request: an allowed Origin (the gateway's own) makes it fall through. */
const withOrigin = (r: Req, g: RunningGateway = gw): Req => ({ ...r, headers: { ...r.headers, origin: g.url } })
/** The other twin: the same body sent chunked (no Content-Length). */
const chunked = (r: Req): Req => ({ ...r, headers: { ...r.headers, 'transfer-encoding': 'chunked' } })

/** The parts of an answer both edges must agree on: status, body, and every header but the connection's and CORS. */
const IGNORED = new Set(['date', 'connection', 'keep-alive', 'vary', 'transfer-encoding'])
function comparable (a: Answer): { status: number, body: string, headers: Record<string, unknown> } {
  const headers: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(a.headers)) if (!IGNORED.has(k) && !k.startsWith('access-control-')) headers[k] = v
  return { status: a.status, body: a.body, headers }
}

/** Cache the token on a route: its first request is verified by Fastify's route, which caches it. */
async function warm (g: RunningGateway, path: string, token: string): Promise<Answer> {
  return await call(g, path, { headers: post(token), body: rpc('tools/list') })
}

/** A request line without what differs between any two requests (its id, time and duration). */
function lineFields (l: Record<string, unknown>): Record<string, unknown> {
  const { reqId: _id, time: _time, durationMs: _ms, ...rest } = l
  return rest
}

/** {@link call}, and the one request line it wrote. */
async function recorded (g: RunningGateway, path: string, r: Req): Promise<Answer & { line: Record<string, unknown> | undefined }> {
  const from = g.requestLogs().length
  const a = await call(g, path, r)
  await eventually(() => g.requestLogs().length > from, 2000)
  const lines = g.requestLogs().slice(from)
  return { ...a, line: lines.length === 1 ? lineFields(lines[0]!) : undefined }
}

const PRM = (route: string): string => `${gw.url}/.well-known/oauth-protected-resource${route}`
const json = (a: Answer): unknown => JSON.parse(a.body)

t.test('the common request: a cached token takes the lane', async (t) => {
  const token = await freshToken()
  const req: Req = { headers: post(token), body: rpc('tools/call', { name: 'echo', arguments: { text: 'via the lane' } }, 'same') }
  const first = await call(gw, '/mcp', req)
  t.equal(first.status, 200, 'first request with a fresh token: 200')
  t.equal(first.taken, 0, 'first request: the token is not cached yet, Fastify verifies it')
  const second = await call(gw, '/mcp', req)
  t.equal(second.status, 200, 'the identical second request: 200')
  t.equal(second.taken, 1, 'the identical second request: taken by the lane')
  t.strictSame(json(second), { jsonrpc: '2.0', id: 'same', result: { content: [{ type: 'text', text: 'via the lane' }] } }, 'the upstream\'s answer')
  t.strictSame(json(second), json(first), 'the same answer as through Fastify')
  t.match(second.headers['content-type'], /^application\/json/)
  const seen = up.requests.at(-1)!
  t.equal(seen.url, '/mcp', 'forwarded to the upstream path')
  t.equal(seen.headers['content-length'], String(Buffer.byteLength(req.body!)), 'the body forwarded whole')
  t.equal(seen.headers.authorization, undefined, 'the client\'s token is not forwarded')
  t.equal(typeof seen.headers['x-forwarded-user'], 'string', 'identity headers are added')

  const padded = (n: number): string => JSON.stringify({ jsonrpc: '2.0', id: 'pad', method: 'tools/list', params: { pad: 'x'.repeat(n) } })
  const atLimit = padded(4096 - padded(0).length)
  t.equal(Buffer.byteLength(atLimit), 4096)
  const limit = await call(gw, '/mcp', { headers: post(token), body: atLimit })
  t.equal(limit.status, 200, 'a body of exactly limits.maxBodyBytes: 200')
  t.equal(limit.taken, 1, 'and taken by the lane')
})

t.test('fall-through: everything but the common request goes to Fastify, unread, and gets its documented answer', async (t) => {
  await warm(gw, '/mcp', TOOLS)
  const body = rpc('tools/list')
  const toolsList = (a: Answer): boolean => Array.isArray((json(a) as { result?: { tools?: unknown } }).result?.tools)
  interface Case {
    what: string
    path?: string
    req: Req
    status: number
    /** The gateway's own `{ error }` body; undefined: the upstream answered. */
    error?: string
    /** The upstream received it (Fastify forwarded it). */
    forwarded: boolean
    check?: (a: Answer) => void
  }
  const cases: Case[] = [
    {
      what: 'an allowed Origin',
      req: { headers: post(TOOLS, { origin: gw.url }), body },
      status: 200,
      forwarded: true,
      check: (a) => {
        t.ok(toolsList(a), 'allowed origin: the upstream\'s tools/list answer')
        t.equal(a.headers['access-control-allow-origin'], gw.url, 'allowed origin: CORS header')
        t.match(a.headers.vary, /Origin/, 'allowed origin: Vary: Origin')
        t.match(a.headers['access-control-expose-headers'], /WWW-Authenticate/i, 'allowed origin: WWW-Authenticate readable')
      }
    },
    {
      what: 'a disallowed Origin',
      req: { headers: post(TOOLS, { origin: EVIL }), body },
      status: 403,
      error: 'forbidden_origin',
      forwarded: false,
      check: (a) => { t.equal(a.headers['access-control-allow-origin'], undefined, 'disallowed origin: no CORS header') }
    },
    {
      what: 'a query string',
      path: '/mcp?x=1',
      req: { headers: post(TOOLS), body },
      status: 200,
      forwarded: true,
      check: (a) => {
        t.ok(toolsList(a), 'query: the upstream\'s answer')
        t.equal(up.requests.at(-1)!.url, '/mcp?x=1', 'query: forwarded with it')
      }
    },
    { what: 'a chunked body (Transfer-Encoding)', req: chunked({ headers: post(TOOLS), body }), status: 200, forwarded: true, check: (a) => { t.ok(toolsList(a), 'chunked: the upstream\'s answer') } },
    {
      what: 'Content-Length over limits.maxBodyBytes',
      req: { headers: post(TOOLS), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(5000) } }) },
      status: 413,
      error: 'payload_too_large',
      forwarded: false
    },
    {
      what: 'Content-Length: 0',
      req: { headers: post(TOOLS, { 'content-length': '0' }), body: '' },
      status: 400,
      forwarded: true,
      check: (a) => { t.match(json(a), { error: { code: -32700 } }, 'empty body: forwarded, the upstream\'s parse error') }
    },
    {
      what: 'no Content-Type',
      req: { headers: { accept: 'application/json, text/event-stream', authorization: `Bearer ${TOOLS}` }, body },
      status: 415,
      forwarded: true,
      check: (a) => { t.match(json(a), { error: { message: /Content-Type/ } }, 'no content type: forwarded (no policy on /mcp), the upstream refuses it') }
    },
    {
      what: 'two Authorization headers',
      req: { headers: post(TOOLS, { authorization: [`Bearer ${TOOLS}`, `Bearer ${TOOLS}`] }), body },
      status: 400,
      error: 'invalid_request',
      forwarded: false,
      check: (a) => { t.equal(a.headers['www-authenticate'], `Bearer error="invalid_request", error_description="More than one Authorization header was sent", scope="mcp:tools", resource_metadata="${PRM('/mcp')}"`, 'two Authorization headers: the invalid_request challenge') }
    },
    {
      what: 'an unknown token',
      req: { headers: post('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'), body },
      status: 401,
      error: 'invalid_token',
      forwarded: false,
      check: (a) => { t.match(a.headers['www-authenticate'], /^Bearer error="invalid_token", error_description="[^"]+", scope="mcp:tools", resource_metadata=/, 'unknown token: the invalid_token challenge') }
    },
    {
      what: 'no token',
      req: { headers: mcpHeaders(undefined), body },
      status: 401,
      error: 'unauthorized',
      forwarded: false,
      check: (a) => { t.equal(a.headers['www-authenticate'], `Bearer scope="mcp:tools", resource_metadata="${PRM('/mcp')}"`, 'no token: the bare challenge') }
    },
    {
      what: 'another scheme (Basic)',
      req: { headers: post(TOOLS, { authorization: 'Basic dXNlcjpwYXNz' }), body },
      status: 401,
      error: 'unauthorized',
      forwarded: false
    },
    { what: 'GET', req: { method: 'GET', headers: post(TOOLS) }, status: 405, forwarded: true, check: () => { t.equal(up.requests.at(-1)!.method, 'GET', 'GET: forwarded by Fastify') } },
    { what: 'DELETE', req: { method: 'DELETE', headers: post(TOOLS) }, status: 405, forwarded: true, check: () => { t.equal(up.requests.at(-1)!.method, 'DELETE', 'DELETE: forwarded by Fastify') } },
    { what: 'PUT', req: { method: 'PUT', headers: post(TOOLS), body }, status: 405, forwarded: true },
    { what: 'a path under the route', path: '/mcp/x', req: { headers: post(TOOLS), body }, status: 404, forwarded: true, check: () => { t.equal(up.requests.at(-1)!.url, '/mcp/x', 'under the route: forwarded by Fastify') } },
    { what: 'the route path with a trailing slash', path: '/mcp/', req: { headers: post(TOOLS), body }, status: 200, forwarded: true, check: () => { t.equal(up.requests.at(-1)!.url, '/mcp/', 'trailing slash: forwarded by Fastify (the upstream serves /mcp/ too)') } }
  ]
  for (const c of cases) {
    const seen = up.requests.length
    const a = await call(gw, c.path ?? '/mcp', c.req)
    t.equal(a.status, c.status, `${c.what}: ${c.status}`)
    t.equal(a.taken, 0, `${c.what}: not taken by the lane`)
    t.equal(up.requests.length - seen, c.forwarded ? 1 : 0, `${c.what}: ${c.forwarded ? 'forwarded' : 'answered by the gateway'}`)
    if (c.error !== undefined) {
      t.match(json(a), { error: c.error, error_description: String }, `${c.what}: error ${c.error}`)
      t.equal(a.headers['cache-control'], 'no-store', `${c.what}: not cacheable`)
    }
    c.check?.(a)
  }

  t.test('`bearer` in lower case with extra spaces is a bearer credential: the lane takes it', async (t) => {
    const a = await call(gw, '/mcp', { headers: post(TOOLS, { authorization: `bearer    ${TOOLS}   ` }), body })
    t.equal(a.status, 200)
    t.equal(a.taken, 1, 'the scheme is case-insensitive (RFC 9110 §11.1) and the token is trimmed, as on Fastify\'s route')
    t.ok(toolsList(a), 'the upstream\'s answer')
  })

})

t.test('rate limits: the lane counts them with Fastify\'s hooks, and refuses as Fastify does', async (t) => {
  const LIMITED = { error: 'rate_limited', error_description: 'Too many requests; retry later' }
  const listBody = rpc('tools/list')
  // Each table row: a gateway and limit, the warm-up through Fastify counting as request 1,
  // requests 2..max through the lane (200), then one more through the lane and one through
  // Fastify (an allowed Origin): both over the limit, with the same answer.
  const cases = [
    { what: 'perPrincipal (max 3)', g: gwLimited, path: '/mcp', max: 3, body: () => listBody, refused: () => LIMITED },
    { what: 'perIp (max 3)', g: gwIpLimited, path: '/mcp', max: 3, body: () => listBody, refused: () => LIMITED }
  ]
  for (const c of cases) {
    const token = await freshToken()
    const from = c.g.requestLogs().length
    t.equal((await warm(c.g, c.path, token)).taken, 0, `${c.what}: request 1 (warm-up) through Fastify`)
    for (let i = 2; i <= c.max; i++) {
      const a = await call(c.g, c.path, { headers: post(token), body: c.body() })
      t.same([a.status, a.taken], [200, 1], `${c.what}: request ${i} taken by the lane, within the limit`)
    }
    const lane = await call(c.g, c.path, { headers: post(token), body: c.body() })
    const fastify = await call(c.g, c.path, withOrigin({ headers: post(token), body: c.body() }, c.g))
    t.same([lane.status, lane.taken, fastify.taken], [429, 1, 0], `${c.what}: over the limit on the lane (and on Fastify's route)`)
    t.strictSame(json(lane), c.refused(), `${c.what}: the gateway's body`)
    t.equal(lane.headers['x-ratelimit-limit'], String(c.max), `${c.what}: X-RateLimit-Limit`)
    t.equal(lane.headers['x-ratelimit-remaining'], '0', `${c.what}: X-RateLimit-Remaining`)
    t.match(lane.headers['retry-after'], /^\d+$/, `${c.what}: Retry-After`)
    const fastifySame = { ...comparable(fastify), headers: { ...comparable(fastify).headers, 'x-ratelimit-reset': undefined, 'retry-after': undefined } }
    const laneSame = { ...comparable(lane), headers: { ...comparable(lane).headers, 'x-ratelimit-reset': undefined, 'retry-after': undefined } }
    t.strictSame(laneSame, fastifySame, `${c.what}: the lane's refusal is Fastify's (the seconds left aside)`)
    await eventually(() => c.g.requestLogs().length >= from + c.max + 2, 2000)
    const outcomes = c.g.requestLogs().slice(from).map((l) => l.outcome)
    t.same(outcomes.filter((o) => o === 'rate_limited').length, 2, `${c.what}: both refusals logged as rate_limited`)
  }

  t.test('perTool on a policy route: counted on the lane, the JSON-RPC refusal with the request id', async (t) => {
    const token = await freshToken()
    t.equal((await warm(gwToolLimited, '/policy', token)).taken, 0, 'warm-up (tools/list, not counted): Fastify')
    for (let i = 1; i <= 2; i++) {
      const a = await call(gwToolLimited, '/policy', { headers: post(token), body: rpc('tools/call', { name: 'echo', arguments: { text: 'x' } }) })
      t.same([a.status, a.taken], [200, 1], `echo ${i}: taken by the lane, within perTool.max`)
    }
    const before = up.requests.length
    const a = await call(gwToolLimited, '/policy', { headers: post(token), body: rpc('tools/call', { name: 'echo', arguments: { text: 'x' } }, 'third') })
    t.same([a.status, a.taken], [429, 1], 'the third echo: refused on the lane')
    t.strictSame(json(a), { jsonrpc: '2.0', id: 'third', error: { code: -31429, message: 'Rate limit exceeded for this tool; retry later' } })
    t.equal(a.headers['x-ratelimit-limit'], '2', 'X-RateLimit-Limit')
    t.equal(up.requests.length, before, 'the refused call never reached the upstream')
  })
})

t.test('refusals written by the lane are the ones Fastify writes for the same request', async (t) => {
  await warm(gw, '/policy', TOOLS)
  const lacking = await freshToken('mcp:tools')
  t.equal((await warm(gw, '/admin', lacking)).status, 403, 'a token without mcp:admin is verified (and cached) on /admin')
  interface Case { what: string, path: string, req: Req, status: number, body: unknown, outcome: string, challenge?: string }
  const cases: Case[] = [
    {
      // The lane has counted the cache hit by then, so it answers rather than leave the request to Fastify.
      what: 'a cached token lacking the route scope',
      path: '/admin',
      req: { headers: post(lacking), body: rpc('tools/list', undefined, 40) },
      outcome: 'insufficient_scope',
      status: 403,
      body: { error: 'insufficient_scope', error_description: 'The access token lacks a scope this route requires' },
      challenge: `Bearer error="insufficient_scope", error_description="The access token lacks a scope this route requires", scope="mcp:tools mcp:admin", resource_metadata="${PRM('/admin')}"`
    },
    {
      what: 'a tools/call the policy denies',
      path: '/policy',
      req: { headers: post(TOOLS), body: rpc('tools/call', { name: 'whoami', arguments: {} }, 41) },
      outcome: 'insufficient_scope',
      status: 403,
      body: { jsonrpc: '2.0', id: 41, error: { code: -31403, message: 'Insufficient scope' } },
      challenge: `Bearer error="insufficient_scope", error_description="The access token lacks a scope this operation requires", scope="mcp:tools mcp:admin", resource_metadata="${PRM('/policy')}"`
    },
    {
      what: 'a batch with one denied call',
      path: '/policy',
      req: { headers: post(TOOLS), body: `[${rpc('tools/list', undefined, 42)},${rpc('tools/call', { name: 'whoami', arguments: {} }, 43)}]` },
      outcome: 'insufficient_scope',
      status: 403,
      body: [
        { jsonrpc: '2.0', id: 42, error: { code: -31403, message: 'Not processed: another message in the batch was refused' } },
        { jsonrpc: '2.0', id: 43, error: { code: -31403, message: 'Insufficient scope' } }
      ],
      challenge: `Bearer error="insufficient_scope", error_description="The access token lacks a scope this operation requires", scope="mcp:tools mcp:admin", resource_metadata="${PRM('/policy')}"`
    },
    {
      what: 'malformed JSON',
      path: '/policy',
      req: { headers: post(TOOLS), body: '{"jsonrpc":"2.0","id":44,' },
      outcome: 'invalid_request',
      status: 400,
      body: { jsonrpc: '2.0', id: null, error: { code: -32700, message: String } }
    },
    {
      what: 'an Mcp-Method header that does not match the body',
      path: '/policy',
      req: { headers: post(TOOLS, { 'mcp-method': 'tools/list' }), body: rpc('tools/call', { name: 'echo', arguments: { text: 'x' } }, 45) },
      outcome: 'header_mismatch',
      status: 400,
      body: { jsonrpc: '2.0', id: 45, error: { code: -32020, message: String } }
    },
    {
      what: 'the upstream is down',
      path: '/down',
      req: { headers: post(TOOLS), body: rpc('tools/list', undefined, 'down-1') },
      outcome: 'upstream_error',
      status: 502,
      body: { jsonrpc: '2.0', id: 'down-1', error: { code: -32000, message: 'The upstream MCP server is unreachable' } }
    }
  ]
  await warm(gw, '/down', TOOLS)
  for (const c of cases) {
    const lane = await recorded(gw, c.path, c.req)
    t.equal(lane.status, c.status, `${c.what}: ${c.status}`)
    t.equal(lane.taken, 1, `${c.what}: written by the lane`)
    t.match(json(lane), c.body, `${c.what}: the JSON-RPC error with the request's id`)
    t.match(lane.headers['content-type'], /^application\/json/, `${c.what}: JSON`)
    t.equal(lane.headers['www-authenticate'], c.challenge, `${c.what}: WWW-Authenticate`)
    t.match(lane.line, { route: c.path, method: 'POST', path: c.path, status: c.status, outcome: c.outcome }, `${c.what}: one request line, outcome ${c.outcome}`)
    for (const [name, twin] of [['an allowed Origin', withOrigin(c.req)], ['a chunked body', chunked(c.req)]] as const) {
      const fastify = await recorded(gw, c.path, twin)
      t.equal(fastify.taken, 0, `${c.what}, with ${name}: answered by Fastify`)
      t.strictSame(comparable(lane), comparable(fastify), `${c.what}: the lane's answer is Fastify's (twin with ${name})`)
      t.strictSame(lane.line, fastify.line, `${c.what}: the lane's request line is Fastify's (twin with ${name})`)
    }
  }

  t.test('a non-JSON content type on a policy route falls through: 415', async (t) => {
    const a = await call(gw, '/policy', { headers: post(TOOLS, { 'content-type': 'text/plain' }), body: rpc('tools/list') })
    t.equal(a.status, 415)
    t.equal(a.taken, 0, 'not taken')
    t.strictSame(json(a), { error: 'unsupported_media_type', error_description: 'The request content type is not supported' })
  })

  t.test('an allowed call on a policy route is taken, with a JSON content type with parameters', async (t) => {
    const a = await call(gw, '/policy', { headers: post(TOOLS, { 'content-type': 'application/json; charset=utf-8' }), body: rpc('tools/call', { name: 'echo', arguments: { text: 'ok' } }, 46) })
    t.equal(a.status, 200)
    t.equal(a.taken, 1)
    t.strictSame(json(a), { jsonrpc: '2.0', id: 46, result: { content: [{ type: 'text', text: 'ok' }] } })
  })
})

t.test('session binding: another identity\'s session id is refused by the lane, never forwarded', async (t) => {
  const init = await call(gw, '/stateful', { headers: post(alice), body: INITIALIZE_BODY })
  t.equal(init.status, 200, 'alice initializes')
  const sid = init.headers['mcp-session-id'] as string
  t.type(sid, 'string', 'alice has a session')
  await warm(gw, '/stateful', bob)
  const bobSeen = (): number => stateful.requests.filter((r: SeenRequest) => r.headers['x-forwarded-user'] === 'lane-bob' && r.headers['mcp-session-id'] === sid).length
  const req: Req = { headers: post(bob, { 'mcp-session-id': sid }), body: rpc('tools/list', undefined, 51) }
  const lane = await recorded(gw, '/stateful', req)
  t.equal(lane.status, 404, 'bob with alice\'s session: 404')
  t.equal(lane.taken, 1, 'refused by the lane')
  t.strictSame(json(lane), JSON.parse(SESSION_NOT_FOUND_BODY), 'the unknown-session body')
  t.match(lane.line, { route: '/stateful', status: 404, outcome: 'session_mismatch', subject: 'lane-bob' }, 'its request line')
  const fastify = await recorded(gw, '/stateful', withOrigin(req))
  t.equal(fastify.taken, 0)
  t.strictSame(comparable(lane), comparable(fastify), 'the same answer as Fastify\'s')
  t.strictSame(lane.line, fastify.line, 'the same request line as Fastify\'s')
  t.equal(bobSeen(), 0, 'no request of bob with that session id reached the upstream')
  const line = gw.requestLogs().filter((l) => l.outcome === 'session_mismatch' && l.subject === 'lane-bob')
  t.equal(line.length, 2, 'both refusals logged as session_mismatch')
  const mine = await call(gw, '/stateful', { headers: post(alice, { 'mcp-session-id': sid }), body: rpc('tools/list', undefined, 52) })
  t.equal(mine.status, 200, 'alice in her own session: 200')
  t.equal(mine.taken, 1, 'taken by the lane')

  t.test('keep-alive: lane answers share a connection, one of them refused before its body was read', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => { agent.destroy() })
    const big = rpc('tools/call', { name: 'echo', arguments: { text: 'y'.repeat(3000) } })
    const sequence: Array<[string, string, Record<string, string>, string, number]> = [
      ['bob in alice\'s session (refused unread)', '/stateful', post(bob, { 'mcp-session-id': sid }) as Record<string, string>, big, 404],
      ['alice in her session', '/stateful', post(alice, { 'mcp-session-id': sid }) as Record<string, string>, rpc('tools/list'), 200],
      ['the same refusal again', '/stateful', post(bob, { 'mcp-session-id': sid }) as Record<string, string>, big, 404],
      ['a plain route', '/mcp', post(TOOLS) as Record<string, string>, rpc('tools/list'), 200]
    ]
    await warm(gw, '/mcp', TOOLS)
    const before = gw.gateway.laneTaken()
    const ports = new Set<number>()
    for (const [what, path, headers, body, status] of sequence) {
      const got = await new Promise<{ status: number, port: number }>((resolve, reject) => {
        const req = httpRequest(`${gw.url}${path}`, { method: 'POST', headers, agent }, (res) => {
          const port = res.socket.localPort ?? 0
          res.resume()
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, port }) })
        })
        req.on('error', reject)
        req.end(body)
      })
      t.equal(got.status, status, `${what}: ${status}`)
      ports.add(got.port)
    }
    t.equal(ports.size, 1, 'one connection for all four')
    t.equal(gw.gateway.laneTaken() - before, sequence.length, 'all four taken by the lane')
  })
})

t.test('stream bounds: a caller at maxStreamsPerPrincipal gets 429 from the lane', async (t) => {
  t.equal((await warm(gwStreams, '/mcp', TOOLS)).status, 200, 'warm-up')
  const ac = new AbortController()
  t.teardown(() => { ac.abort() })
  const stream = await fetch(`${gwStreams.url}/t/ticks?n=2&interval=10000`, { headers: { authorization: `Bearer ${TOOLS}` }, signal: ac.signal })
  t.equal(stream.status, 200, 'a GET SSE stream is open')
  await stream.body!.getReader().read()
  const req: Req = { headers: post(TOOLS), body: rpc('tools/list') }
  const lane = await recorded(gwStreams, '/mcp', req)
  t.equal(lane.status, 429)
  t.equal(lane.taken, 1, 'refused by the lane')
  t.strictSame(json(lane), { error: 'too_many_streams', error_description: 'Too many open streams for this caller; close one and retry' })
  t.equal(lane.headers['retry-after'], '5', 'Retry-After')
  t.equal(lane.headers['cache-control'], 'no-store')
  t.match(lane.line, { route: '/mcp', status: 429, outcome: 'too_many_streams' }, 'its request line')
  const fastify = await recorded(gwStreams, '/mcp', withOrigin(req, gwStreams))
  t.equal(fastify.taken, 0, 'the twin with an Origin: Fastify')
  t.equal(fastify.headers['access-control-allow-origin'], gwStreams.url, 'Fastify\'s answer carries the CORS headers')
  t.strictSame(comparable(lane), comparable(fastify), 'the same answer as Fastify\'s')
  t.strictSame(lane.line, fastify.line, 'the same request line as Fastify\'s')
  ac.abort()
  let after: Answer | undefined
  t.ok(await eventually(async () => (after = await call(gwStreams, '/mcp', req)).status === 200, 3000), 'the stream closed: its slot came back')
  t.equal(after?.taken, 1, 'and the lane forwards again')
})

t.test('request line, audit and metrics of a lane request', async (t) => {
  const olivia = (await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'lane-olivia' })).accessToken
  sentTokens.push(olivia)
  t.equal((await warm(gwObs, '/mcp', olivia)).taken, 0, 'warm-up: Fastify')
  const metricsBefore = await scrape(`${gwObs.url}/metrics`)
  const okCount = (m: typeof metricsBefore): number => m.sum('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '200', outcome: 'ok' })
  const linesBefore = gwObs.logs.length
  const a = await call(gwObs, '/mcp', { headers: post(olivia), body: rpc('tools/call', { name: 'echo', arguments: { text: 'audited' } }) })
  t.equal(a.status, 200)
  t.equal(a.taken, 1, 'taken by the lane')
  const parse = (from: number): Array<Record<string, unknown>> => gwObs.logs.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(await eventually(() => parse(linesBefore).some((l) => l.msg === 'audit'), 3000), 'the audit line is written')
  const newLines = parse(linesBefore)
  const requestLines = newLines.filter((l) => l.msg === 'request')
  t.equal(requestLines.length, 1, 'exactly one request line')
  const line = requestLines[0]!
  t.match(line, { route: '/mcp', method: 'POST', path: '/mcp', status: 200, outcome: 'ok', subject: 'lane-olivia', issuer: as.issuer, clientId: 'user-app' })
  t.type(line.reqId, 'string')
  t.type(line.durationMs, 'number')
  const audits = newLines.filter((l) => l.msg === 'audit')
  t.equal(audits.length, 1, 'one audit line (one message)')
  t.match(audits[0], { audit: true, reqId: line.reqId, route: '/mcp', subject: 'lane-olivia', method: 'tools/call', tool: 'echo', decision: 'allowed', upstreamStatus: 200 })
  const all = gwObs.logs.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.strictSame(all.filter((l) => l.reqId === line.reqId).map((l) => l.msg).sort(), ['audit', 'request'], 'its reqId is on its request line and audit line only')
  const metricsAfter = await scrape(`${gwObs.url}/metrics`)
  t.equal(okCount(metricsAfter) - okCount(metricsBefore), 1, 'requests_total counted it once')

  t.test('a policy refusal by the lane: the audit line, request line and counters Fastify writes', async (t) => {
    t.equal((await warm(gwObs, '/policy', olivia)).status, 200, 'warm-up')
    const req: Req = { headers: post(olivia), body: rpc('tools/call', { name: 'whoami', arguments: {} }, 'denied') }
    const denials = async (): Promise<number> => (await scrape(`${gwObs.url}/metrics`)).sum('mcp_gateway_policy_denials_total', { route: '/policy' })
    const records = async (r: Req): Promise<{ taken: number, status: number, lines: Array<Record<string, unknown>>, denied: number }> => {
      const d = await denials()
      const from = gwObs.logs.length
      const a = await call(gwObs, '/policy', r)
      await eventually(() => parse(from).some((l) => l.msg === 'audit') && parse(from).some((l) => l.msg === 'request'), 2000)
      const lines = parse(from).filter((l) => l.msg === 'audit' || l.msg === 'request')
      return { taken: a.taken, status: a.status, lines, denied: await denials() - d }
    }
    const lane = await records(req)
    t.equal(lane.taken, 1, 'refused by the lane')
    t.equal(lane.status, 403)
    t.equal(lane.denied, 1, 'policy_denials_total: one')
    t.match(lane.lines.find((l) => l.msg === 'audit'), { method: 'tools/call', tool: 'whoami', decision: 'denied', reason: 'insufficient_scope', missingScopes: ['mcp:admin'], upstreamStatus: null, subject: 'lane-olivia' })
    t.equal(new Set(lane.lines.map((l) => l.reqId)).size, 1, 'the audit line and the request line share the reqId')
    const fastify = await records(withOrigin(req, gwObs))
    t.equal(fastify.taken, 0, 'the twin with an Origin: Fastify')
    t.equal(fastify.denied, 1)
    const strip = (l: Record<string, unknown>): Record<string, unknown> => {
      const { reqId: _id, time: _time, durationMs: _ms, latencyMs: _lat, ...rest } = l
      return rest
    }
    t.strictSame(lane.lines.map(strip), fastify.lines.map(strip), 'the same audit line and request line as Fastify\'s (ids and timings aside)')
  })

  t.test('a client that leaves mid-body: client_closed, the gateway stays up', async (t) => {
    const port = Number(new URL(gwObs.url).port)
    const body = rpc('tools/call', { name: 'echo', arguments: { text: 'never complete' } })
    const upBefore = up.requests.length
    const taken = gwObs.gateway.laneTaken()
    const logFrom = gwObs.logs.length
    const socket = connect(port, '127.0.0.1')
    socket.on('error', () => { /* reset by our own destroy */ })
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${olivia}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, body.length >> 1)}`)
    t.ok(await eventually(() => gwObs.gateway.laneTaken() === taken + 1, 3000), 'the lane took it')
    socket.destroy()
    t.ok(await eventually(() => parse(logFrom).some((l) => l.msg === 'request'), 3000), 'a request line is written')
    await sleep(100)
    const lines = parse(logFrom)
    const reqLines = lines.filter((l) => l.msg === 'request')
    t.equal(reqLines.length, 1, 'exactly one request line')
    t.match(reqLines[0], { route: '/mcp', method: 'POST', path: '/mcp', status: null, outcome: 'client_closed', subject: 'lane-olivia' })
    t.equal(lines.filter((l) => l.msg === 'audit').length, 0, 'no audit line: the body was never read whole')
    t.equal(up.requests.length, upBefore, 'nothing reached the upstream')
    const next = await call(gwObs, '/mcp', { headers: post(olivia), body: rpc('tools/list') })
    t.equal(next.status, 200, 'the next request works')
    t.equal(next.taken, 1)
    const m = await scrape(`${gwObs.url}/metrics`)
    t.equal(m.sum('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '0', outcome: 'client_closed' }), 1, 'requests_total counts it with status 0')

    // The same request made to fall through (an allowed Origin): "one line per request"
    // (docs/security.md) holds for Fastify's edge too. Regression: Fastify's onResponse never
    // runs for a client that left mid-body, so that request used to get no request line and
    // no requests_total count; the route's onRequestAbort hook now records it.
    const fastifyFrom = gwObs.logs.length
    const twin = connect(port, '127.0.0.1')
    twin.on('error', () => { /* reset by our own destroy */ })
    await new Promise<void>((resolve) => twin.once('connect', resolve))
    const takenTwin = gwObs.gateway.laneTaken()
    twin.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${gwObs.url}\r\nAuthorization: Bearer ${olivia}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, body.length >> 1)}`)
    await sleep(200)
    twin.destroy()
    await eventually(() => parse(fastifyFrom).some((l) => l.msg === 'request'), 1000)
    t.equal(gwObs.gateway.laneTaken(), takenTwin, 'the twin with an Origin: Fastify')
    t.strictSame(parse(fastifyFrom).filter((l) => l.msg === 'request').map((l) => [l.status, l.outcome]), [[null, 'client_closed']],
      'Fastify\'s edge also writes one request line, client_closed, for a client that left mid-body (as the lane does)')
  })
})

t.test('counters: a cached-token request is counted once, whoever answers it', async (t) => {
  const hits = async (g: RunningGateway, route: string): Promise<number> => (await scrape(`${g.url}/metrics`)).sum('mcp_gateway_token_cache_total', { route, result: 'hit' })
  const lacking = await freshToken('mcp:tools')
  await warm(gw, '/admin', lacking)
  await warm(gw, '/mcp', TOOLS)
  let before = await hits(gw, '/mcp')
  t.equal((await warm(gw, '/mcp', TOOLS)).taken, 1, 'a lane request')
  t.equal(await hits(gw, '/mcp') - before, 1, 'token_cache_total: one hit for a lane request')
  before = await hits(gw, '/admin')
  const a = await call(gw, '/admin', { headers: post(lacking), body: rpc('tools/list') })
  t.equal(a.status, 403, 'a cached token lacking the route scope')
  t.equal(a.taken, 1, 'answered by the lane')
  t.equal(await hits(gw, '/admin') - before, 1, 'token_cache_total: one hit, not two')

  t.test('opaque tokens: introspection cache hits are counted once', async (t) => {
    const OPAQUE = 'https://mcp.lane.test/opaque'
    as.registerResource({ url: OPAQUE, scope: 'mcp:tools mcp:admin', format: 'opaque' })
    const g = await startGateway(() => ({
      authorizationServers: [{
        issuer: as.issuer,
        tokenType: 'opaque',
        audience: OPAQUE,
        introspection: { endpoint: `${as.issuer}/token/introspection`, clientId: as.clients.gatewayBasic.id, clientSecret: { fromEnv: 'INTROSPECTION_SECRET' }, authMethod: 'client_secret_basic' }
      }],
      routes: [
        { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
        { path: '/admin', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools', 'mcp:admin'] }
      ]
    }), { env: { INTROSPECTION_SECRET: as.clients.gatewayBasic.secret } })
    gateways.push(g)
    const opaque = await as.clientCredentialsToken({ resource: OPAQUE, scope: 'mcp:tools' })
    sentTokens.push(opaque)
    const cacheHits = async (): Promise<number> => (await scrape(`${g.url}/metrics`)).sum('mcp_gateway_introspection_total', { issuer: as.issuer, result: 'cache_hit' })
    t.equal((await warm(g, '/mcp', opaque)).status, 200, 'an opaque token, introspected by Fastify\'s route')
    let before = await cacheHits()
    const lane = await warm(g, '/mcp', opaque)
    t.equal(lane.status, 200)
    t.equal(lane.taken, 1, 'a cached opaque token takes the lane')
    t.equal(await cacheHits() - before, 1, 'introspection_total cache_hit: one for a lane request')
    t.equal((await warm(g, '/admin', opaque)).status, 403, 'introspected (and cached) on /admin: lacks mcp:admin')
    before = await cacheHits()
    const control = await call(g, '/admin', { headers: post(opaque, { origin: g.url }), body: rpc('tools/list') })
    t.equal(control.status, 403)
    t.equal(control.taken, 0)
    t.equal(await cacheHits() - before, 1, 'control: the same request with an Origin (Fastify only) counts one cache hit')
    before = await cacheHits()
    const refused = await warm(g, '/admin', opaque)
    t.equal(refused.status, 403)
    t.equal(refused.taken, 1, 'lacking the route scope: answered by the lane')
    // Regression: the lane used to leave this request to Fastify after its cache lookup, and
    // Authenticator.cached() counted the introspection cache hit twice.
    t.equal(await cacheHits() - before, 1, 'introspection_total cache_hit: one, not one from the lane\'s look plus one from Fastify\'s')
  })
})

t.test('request ids never repeat between the lane and Fastify', async (t) => {
  const from = gw.requestLogs().length
  const body = rpc('tools/list')
  const kinds: Req[] = [
    { headers: post(TOOLS), body },
    withOrigin({ headers: post(TOOLS), body }),
    { headers: post('unknown.token.here'), body },
    { headers: post(TOOLS, { 'mcp-method': 'tools/call' }), body }
  ]
  const before = gw.gateway.laneTaken()
  const answers: Answer[] = []
  // Ten at a time, so the two edges interleave.
  for (let i = 0; i < 50; i += 10) {
    answers.push(...await Promise.all(Array.from({ length: 10 }, async (_v, j) => await call(gw, (i + j) % 8 === 3 ? '/policy' : '/mcp', kinds[(i + j) % 4]!))))
  }
  t.equal(answers.length, 50)
  t.equal(gw.gateway.laneTaken() - before, answers.filter((_a, k) => k % 4 === 0 || k % 4 === 3).length, 'the lane took the cached-token requests without an Origin (kinds 0 and 3)')
  t.ok(await eventually(() => gw.requestLogs().length >= from + 50, 3000), 'one request line each')
  const ids = gw.requestLogs().slice(from).map((l) => l.reqId)
  t.equal(ids.length, 50)
  t.equal(new Set(ids).size, 50, 'the 50 request ids are distinct')
  const every = gw.requestLogs().map((l) => l.reqId)
  t.equal(new Set(every).size, every.length, 'no request id repeats over the whole run')
})

t.test('a slow body on the lane: 408 within limits.requestTimeoutSeconds, recorded as client_closed', async (t) => {
  await warm(gwEdge, '/mcp', TOOLS)
  const port = Number(new URL(gwEdge.url).port)
  const body = rpc('tools/list')
  const upBefore = up.requests.length
  const from = gwEdge.requestLogs().length
  const taken = gwEdge.gateway.laneTaken()
  const started = Date.now()
  const text = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let out = ''
    socket.on('data', (c: Buffer) => { out += c.toString('latin1') })
    socket.on('error', () => { /* closed by the gateway */ })
    socket.on('close', () => { resolve(out) })
    // Headers at once, then the body never completes: one byte, and nothing more.
    socket.on('connect', () => { socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOOLS}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n{`) })
    setTimeout(() => { socket.destroy() }, 6000).unref()
  })
  const elapsed = Date.now() - started
  t.equal(gwEdge.gateway.laneTaken(), taken + 1, 'taken by the lane')
  t.match(text, /^HTTP\/1\.1 408 /, '408')
  t.match(text, /"error":"request_timeout"/)
  t.ok(elapsed >= 900 && elapsed <= 3500, `closed after ${elapsed} ms (bound 1 s + check interval 1 s)`)
  t.equal(up.requests.length, upBefore, 'nothing reached the upstream')
  t.ok(await eventually(() => gwEdge.requestLogs().length > from, 2000), 'a request line is written')
  t.match(gwEdge.requestLogs().slice(from), [{ route: '/mcp', method: 'POST', status: null, outcome: 'client_closed' }], 'one request line: the body never arrived')
})

t.test('a closing gateway sends every request to Fastify (503)', async (t) => {
  await warm(gwEdge, '/mcp', TOOLS)
  const port = Number(new URL(gwEdge.url).port)
  const body = rpc('tools/list', undefined, 'before-close')
  const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOOLS}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n`
  const socket = connect(port, '127.0.0.1')
  let text = ''
  socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
  socket.on('error', () => { /* closed by the gateway */ })
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  const taken = gwEdge.gateway.laneTaken()
  // A request in flight (half its body) keeps the connection open through close().
  socket.write(head + body.slice(0, 10))
  t.ok(await eventually(() => gwEdge.gateway.laneTaken() === taken + 1, 3000), 'the first request was taken')
  const closed = gwEdge.close()
  await sleep(100)
  // The rest of the first body, then a second request pipelined on the same connection.
  socket.write(body.slice(10) + head + body)
  t.ok(await eventually(() => (text.match(/HTTP\/1\.1 /g) ?? []).length >= 2, 5000), 'both answered')
  socket.destroy()
  await closed
  const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))
  t.strictSame(statuses, [200, 503], 'the request in flight is served; the one after close() gets Fastify\'s 503')
  t.equal(gwEdge.gateway.laneTaken(), taken + 1, 'the lane took nothing once closing')
})

t.test('no token appears in any log line', async (t) => {
  for (const g of gateways) {
    for (const tok of sentTokens) {
      const sig = tok.split('.')[2]!
      t.notOk(g.logs.some((l) => l.includes(tok) || l.includes(sig)), `no token (nor its signature) in the logs of ${g.url}`)
    }
  }
})
