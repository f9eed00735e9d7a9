/**
 * Origin validation and CORS (issue 5, item 4), against a real gateway, the
 * real oidc-provider AS and a real SDK upstream: a disallowed Origin gets 403
 * before any token work and never reaches the upstream; allowed origins are
 * echoed (never `*` for a list) with Vary: Origin on every response of the
 * route, errors included; preflights need no token; metadata stays public.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStatefulUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'

const APP = 'https://app.example.com'
const OTHER = 'https://other.example.com'
const EVIL = 'https://evil.example.com'

/** An upstream that sets its own permissive CORS headers and a Vary, which the gateway must not pass on. */
async function startCorsUpstream (): Promise<{ origin: string, hits: string[], server: Server }> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url ?? '')
    req.resume()
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'X-Internal',
        vary: 'Accept-Encoding'
      })
      res.end('{"jsonrpc":"2.0","id":1,"result":{}}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, server }
}

const as = await startAuthServer()
const up = await startStatefulUpstream()
const corsUp = await startCorsUpstream()
const deadPort = await freePort()
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  allowedOrigins: [APP],
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/other', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], allowedOrigins: [OTHER] },
    { path: '/open', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], allowedOrigins: ['*'] },
    { path: '/closed', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], allowedOrigins: [] },
    { path: '/slow', upstream: up.origin, scopes: ['mcp:tools'], timeouts: { headersSeconds: 0.3 } },
    { path: '/dead', upstream: `http://127.0.0.1:${deadPort}`, scopes: ['mcp:tools'] },
    { path: '/cors-up', upstream: corsUp.origin, scopes: ['mcp:tools'] }
  ],
  limits: { maxBodyBytes: 1024 }
}))
// No allowedOrigins: only the gateway's own origin (publicUrl).
const gwDefault = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }]
}))
t.teardown(async () => {
  await gw.close()
  await gwDefault.close()
  await up.close()
  corsUp.server.closeAllConnections()
  corsUp.server.close()
  await as.close()
})

for (const path of ['/mcp', '/other', '/open', '/closed', '/slow', '/dead', '/cors-up']) as.registerResource({ url: gw.url + path, scope: 'mcp:tools mcp:other' })
as.registerResource({ url: `${gwDefault.url}/mcp`, scope: 'mcp:tools' })
const tokens = new Map<string, string>()
const tokenFor = async (url: string, scope = 'mcp:tools'): Promise<string> => {
  const key = `${url} ${scope}`
  if (!tokens.has(key)) tokens.set(key, await as.clientCredentialsToken({ resource: url, scope }))
  return tokens.get(key)!
}

interface Answer { status: number, headers: Headers, body: string }
async function call (base: string, path: string, opts: { method?: string, origin?: string, token?: string, body?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  const method = opts.method ?? 'POST'
  const headers: Record<string, string> = method === 'POST' ? mcpHeaders(opts.token) : opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}
  if (opts.origin !== undefined) headers.origin = opts.origin
  const res = await fetch(base + path, { method, headers: { ...headers, ...opts.headers }, body: method === 'POST' ? opts.body ?? INITIALIZE_BODY : undefined })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

interface Row {
  name: string
  path: string
  origin?: string
  /** 'valid' sends a valid token for the route; a string sends it as is; undefined sends none. */
  token?: 'valid' | string
  status: number
  /** Expected Access-Control-Allow-Origin; null: absent. */
  acao: string | null
  /** True when the request must reach the upstream. */
  reaches: boolean
}

const rows: Row[] = [
  { name: 'no Origin (a non-browser client): served, no CORS headers', path: '/mcp', token: 'valid', status: 200, acao: null, reaches: true },
  { name: 'allowed Origin: served, origin echoed', path: '/mcp', origin: APP, token: 'valid', status: 200, acao: APP, reaches: true },
  { name: 'disallowed Origin with a valid token: 403', path: '/mcp', origin: EVIL, token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'disallowed Origin without a token: 403 before any token work (not 401)', path: '/mcp', origin: EVIL, status: 403, acao: null, reaches: false },
  { name: 'disallowed Origin with a malformed token: 403, not 401', path: '/mcp', origin: EVIL, token: 'not-a-jwt', status: 403, acao: null, reaches: false },
  { name: 'the opaque origin "null" (sandboxed iframe, file:): 403', path: '/mcp', origin: 'null', token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'same host, other scheme: 403', path: '/mcp', origin: 'http://app.example.com', token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'suffix trick (app.example.com.evil.example): 403', path: '/mcp', origin: 'https://app.example.com.evil.example', token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'DNS rebinding: a page on another name for the gateway host: 403', path: '/mcp', origin: 'http://rebind.example.com:' + new URL(gw.url).port, token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'route list replaces the top-level one: top-level origin refused there', path: '/other', origin: APP, token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'route list: its own origin served', path: '/other', origin: OTHER, token: 'valid', status: 200, acao: OTHER, reaches: true },
  { name: 'explicit "*": any origin, Access-Control-Allow-Origin *', path: '/open', origin: EVIL, token: 'valid', status: 200, acao: '*', reaches: true },
  { name: 'empty list: every Origin refused', path: '/closed', origin: APP, token: 'valid', status: 403, acao: null, reaches: false },
  { name: 'empty list: non-browser clients still served', path: '/closed', token: 'valid', status: 200, acao: null, reaches: true },
  { name: 'allowed Origin without a token: 401 readable by the page', path: '/mcp', origin: APP, status: 401, acao: APP, reaches: false }
]

t.test('Origin table: status, CORS headers, and whether the upstream is reached', async (t) => {
  for (const row of rows) {
    const before = up.requests.length
    const token = row.token === 'valid' ? await tokenFor(gw.url + row.path) : row.token
    const a = await call(gw.url, row.path, { origin: row.origin, token })
    t.equal(a.status, row.status, `${row.name}: status`)
    t.equal(a.headers.get('access-control-allow-origin'), row.acao, `${row.name}: Access-Control-Allow-Origin`)
    if (row.acao !== null && row.acao !== '*') t.match(a.headers.get('vary') ?? '', /\bOrigin\b/, `${row.name}: Vary: Origin`)
    if (row.acao !== null) t.equal(a.headers.get('access-control-expose-headers'), 'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version', `${row.name}: exposed headers`)
    if (row.status === 403) {
      t.strictSame(JSON.parse(a.body), { error: 'forbidden_origin', error_description: 'Requests from this Origin are not allowed' }, `${row.name}: body`)
      t.equal(a.headers.get('www-authenticate'), null, `${row.name}: no challenge`)
    }
    t.equal(up.requests.length > before, row.reaches, `${row.name}: ${row.reaches ? 'reaches' : 'never reaches'} the upstream`)
  }
  const outcomes = gw.requestLogs().filter((l) => l.outcome === 'forbidden_origin')
  t.ok(outcomes.length >= 8 && outcomes.every((l) => l.status === 403), 'refusals logged with outcome forbidden_origin')
})

t.test('default (no allowedOrigins): only the gateway\'s own origin', async (t) => {
  const token = await tokenFor(`${gwDefault.url}/mcp`)
  const same = await call(gwDefault.url, '/mcp', { origin: gwDefault.url, token })
  t.equal(same.status, 200, 'same-origin page served')
  t.equal(same.headers.get('access-control-allow-origin'), gwDefault.url)
  const cross = await call(gwDefault.url, '/mcp', { origin: APP, token })
  t.equal(cross.status, 403, 'every cross-origin page refused')
  const none = await call(gwDefault.url, '/mcp', { token })
  t.equal(none.status, 200, 'non-browser clients unaffected')
})

t.test('preflight: no token needed; allowed headers exact, Mcp-Param-* names echoed', async (t) => {
  const before = up.requests.length
  const pre = await fetch(`${gw.url}/mcp`, {
    method: 'OPTIONS',
    headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,mcp-protocol-version,mcp-param-region,mcp-param-tenant' }
  })
  t.equal(pre.status, 204)
  t.equal(pre.headers.get('access-control-allow-origin'), APP)
  t.equal(pre.headers.get('access-control-allow-methods'), 'GET, POST, DELETE, OPTIONS')
  t.equal(pre.headers.get('access-control-allow-headers'), 'Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name, mcp-param-region, mcp-param-tenant')
  t.equal(pre.headers.get('access-control-max-age'), '600')
  t.equal(pre.headers.get('vary'), 'Origin, Access-Control-Request-Headers')
  t.equal(pre.headers.get('www-authenticate'), null, 'no challenge on a preflight')
  t.equal(pre.headers.get('access-control-allow-credentials'), null, 'no credentials mode: bearer tokens, not cookies')

  const evil = await fetch(`${gw.url}/mcp/sse`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'GET' } })
  t.equal(evil.status, 403, 'preflight from a disallowed origin: 403')
  t.equal(evil.headers.get('access-control-allow-origin'), null, 'and no CORS grant')

  const plain = await fetch(`${gw.url}/mcp`, { method: 'OPTIONS' })
  t.equal(plain.status, 204, 'OPTIONS without Origin: 204')
  t.equal(plain.headers.get('allow'), 'GET, POST, DELETE, OPTIONS')
  t.equal(plain.headers.get('access-control-allow-origin'), null)

  const star = await fetch(`${gw.url}/open`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'POST' } })
  t.equal(star.headers.get('access-control-allow-origin'), '*', 'explicit * answers *')
  t.equal(up.requests.length, before, 'preflights never reach the upstream')
})

t.test('every error of a route carries the CORS headers for an allowed origin', async (t) => {
  const valid = await tokenFor(`${gw.url}/mcp`)
  const cases: Array<{ name: string, status: number, run: () => Promise<Answer> }> = [
    { name: '401 invalid token', status: 401, run: async () => await call(gw.url, '/mcp', { origin: APP, token: 'not-a-jwt' }) },
    { name: '403 insufficient scope', status: 403, run: async () => await call(gw.url, '/mcp', { origin: APP, token: await tokenFor(`${gw.url}/mcp`, 'mcp:other') }) },
    { name: '400 token in the query', status: 400, run: async () => await call(gw.url, `/mcp?access_token=${valid}`, { origin: APP }) },
    { name: '413 body too large', status: 413, run: async () => await call(gw.url, '/mcp', { origin: APP, token: valid, body: 'x'.repeat(4096) }) },
    { name: '502 upstream unreachable', status: 502, run: async () => await call(gw.url, '/dead', { origin: APP, token: await tokenFor(`${gw.url}/dead`) }) },
    { name: '504 upstream timeout', status: 504, run: async () => await call(gw.url, '/slow/hang', { origin: APP, token: await tokenFor(`${gw.url}/slow`) }) },
    { name: '404 encoded slash in the path', status: 404, run: async () => await call(gw.url, '/mcp/a%2fb', { method: 'GET', origin: APP, token: valid }) }
  ]
  for (const c of cases) {
    const a = await c.run()
    t.equal(a.status, c.status, `${c.name}: status`)
    t.equal(a.headers.get('access-control-allow-origin'), APP, `${c.name}: origin echoed`)
    t.match(a.headers.get('vary') ?? '', /\bOrigin\b/, `${c.name}: Vary: Origin`)
    t.match(a.headers.get('access-control-expose-headers') ?? '', /WWW-Authenticate/, `${c.name}: WWW-Authenticate readable`)
  }
  const evil413 = await call(gw.url, '/mcp', { origin: EVIL, token: valid, body: 'x'.repeat(4096) })
  t.equal(evil413.status, 403, 'a disallowed origin is refused before the body is read')
})

t.test('the upstream\'s own CORS headers never reach the client; Vary is merged', async (t) => {
  const token = await tokenFor(`${gw.url}/cors-up`)
  const allowed = await call(gw.url, '/cors-up', { origin: APP, token })
  t.equal(allowed.status, 200)
  t.equal(allowed.headers.get('access-control-allow-origin'), APP, 'the gateway\'s answer, not the upstream\'s *')
  t.equal(allowed.headers.get('access-control-allow-credentials'), null, 'upstream credentials grant dropped')
  t.equal(allowed.headers.get('access-control-expose-headers'), 'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version')
  t.equal(allowed.headers.get('vary'), 'Accept-Encoding, Origin', 'Vary merged')
  const plain = await call(gw.url, '/cors-up', { token })
  t.equal(plain.headers.get('access-control-allow-origin'), null, 'no Origin: the upstream\'s * is dropped too')
  t.equal(plain.headers.get('vary'), 'Accept-Encoding', 'upstream Vary kept')
})

t.test('metadata stays public: PRM readable from any origin', async (t) => {
  const prm = await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp`, { headers: { origin: EVIL } })
  t.equal(prm.status, 200)
  t.equal(prm.headers.get('access-control-allow-origin'), '*')
})
