/**
 * Section 4 of the core issue, one table row per situation: status,
 * WWW-Authenticate and body, against a real gateway, the real oidc-provider AS
 * (valid tokens), a static issuer (hand-shaped bad tokens) and a real SDK
 * MCP upstream.
 */
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStaticIssuer, unsignedJwt, hs256WithPublicKey } from '../helpers/static-issuer.js'
import { startStatefulUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { rawRequest, type RawResponse } from '../helpers/net.js'

const as = await startAuthServer()
const st = await startStaticIssuer({ alg: 'ES256' })
const up = await startStatefulUpstream()
const gw = await startGateway((origin) => ({
  authorizationServers: [{ issuer: as.issuer }, { issuer: st.issuer }],
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
  allowedOrigins: ['https://app.example.com']
}))
t.teardown(async () => { await gw.close(); await up.close(); await st.close(); await as.close() })

const RESOURCE = `${gw.url}/mcp`
const PRM = `${gw.url}/.well-known/oauth-protected-resource/mcp`
as.registerResource({ url: RESOURCE, scope: 'mcp:tools mcp:resources' })
as.registerResource({ url: `${gw.url}/other`, scope: 'mcp:tools' })

const validToken = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const noScopeToken = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:resources' })
const otherAudienceToken = await as.clientCredentialsToken({ resource: `${gw.url}/other`, scope: 'mcp:tools' })
const now = Math.floor(Date.now() / 1000)
const claims = (o: Record<string, unknown> = {}): Record<string, unknown> => st.claims({ aud: RESOURCE, scope: 'mcp:tools', ...o })

const NO_TOKEN_CHALLENGE = `Bearer scope="mcp:tools", resource_metadata="${PRM}"`
const invalidToken = (desc: string): string => `Bearer error="invalid_token", error_description="${desc}", scope="mcp:tools", resource_metadata="${PRM}"`
const invalidRequest = (desc: string): string => `Bearer error="invalid_request", error_description="${desc}", scope="mcp:tools", resource_metadata="${PRM}"`

interface Row {
  name: string
  /** Raw header lines; an array value sends the header more than once. */
  headers?: Record<string, string | string[]>
  path?: string
  method?: string
  status: number
  challenge: string | null
  error: string
  description?: string
}

const rows: Row[] = [
  // no credentials, for every method and the legacy endpoints
  ...['POST /mcp', 'GET /mcp', 'DELETE /mcp', 'GET /mcp/sse', 'POST /mcp/messages?sessionId=x'].map((mp): Row => {
    const [method, path] = mp.split(' ') as [string, string]
    return { name: `no credentials: ${mp}`, method, path, status: 401, challenge: NO_TOKEN_CHALLENGE, error: 'unauthorized', description: 'An access token is required' }
  }),
  { name: 'other scheme (Basic) is not a bearer credential', headers: { authorization: 'Basic dXNlcjpwYXNz' }, status: 401, challenge: NO_TOKEN_CHALLENGE, error: 'unauthorized' },
  { name: 'empty Authorization header', headers: { authorization: '' }, status: 401, challenge: NO_TOKEN_CHALLENGE, error: 'unauthorized' },
  // invalid tokens
  { name: 'expired', headers: { authorization: `Bearer ${await st.sign(claims({ exp: now - 600, iat: now - 1200 }))}` }, status: 401, challenge: invalidToken('The access token has expired'), error: 'invalid_token' },
  { name: 'not yet valid (nbf in the future)', headers: { authorization: `Bearer ${await st.sign(claims({ nbf: now + 3600 }))}` }, status: 401, challenge: invalidToken('The access token is not yet valid'), error: 'invalid_token' },
  { name: 'issued in the future (iat)', headers: { authorization: `Bearer ${await st.sign(claims({ iat: now + 3600 }))}` }, status: 401, challenge: invalidToken('The access token was issued in the future'), error: 'invalid_token' },
  { name: 'bad signature (key not in the JWKS, same kid)', headers: { authorization: `Bearer ${await st.sign(claims(), { key: 'other' })}` }, status: 401, challenge: invalidToken('The access token signature is invalid'), error: 'invalid_token' },
  { name: 'unknown key id', headers: { authorization: `Bearer ${await st.sign(claims(), { kid: 'no-such-kid' })}` }, status: 401, challenge: invalidToken('The access token was signed with an unknown key'), error: 'invalid_token' },
  { name: 'wrong issuer (untrusted)', headers: { authorization: `Bearer ${await st.sign(claims({ iss: 'https://evil.example.com' }))}` }, status: 401, challenge: invalidToken('The access token issuer is not trusted'), error: 'invalid_token' },
  { name: 'wrong issuer (trusted name, other issuer\'s key)', headers: { authorization: `Bearer ${await st.sign(claims({ iss: as.issuer }))}` }, status: 401, challenge: invalidToken('The access token was signed with an unknown key'), error: 'invalid_token' },
  { name: 'wrong audience (real AS token for another resource)', headers: { authorization: `Bearer ${otherAudienceToken}` }, status: 401, challenge: invalidToken('The access token was not issued for this resource'), error: 'invalid_token' },
  { name: 'wrong audience (hand-shaped)', headers: { authorization: `Bearer ${await st.sign(claims({ aud: 'https://other.example.com/mcp' }))}` }, status: 401, challenge: invalidToken('The access token was not issued for this resource'), error: 'invalid_token' },
  { name: 'no audience', headers: { authorization: `Bearer ${await st.sign(claims({ aud: undefined }))}` }, status: 401, challenge: invalidToken('The access token lacks a required claim'), error: 'invalid_token' },
  { name: 'no exp', headers: { authorization: `Bearer ${await st.sign(claims({ exp: undefined }))}` }, status: 401, challenge: invalidToken('The access token lacks a required claim'), error: 'invalid_token' },
  { name: 'alg none', headers: { authorization: `Bearer ${unsignedJwt(claims())}` }, status: 401, challenge: invalidToken('The access token signing algorithm is not allowed'), error: 'invalid_token' },
  { name: 'HS256 signed with the public key (key confusion)', headers: { authorization: `Bearer ${await hs256WithPublicKey(claims(), st.publicJwk())}` }, status: 401, challenge: invalidToken('The access token signing algorithm is not allowed'), error: 'invalid_token' },
  { name: 'an ID token type (typ: id_token+jwt)', headers: { authorization: `Bearer ${await st.sign(claims(), { typ: 'id_token+jwt' })}` }, status: 401, challenge: invalidToken('The token is not an access token'), error: 'invalid_token' },
  { name: 'subject that cannot be sent as a header value', headers: { authorization: `Bearer ${await st.sign(claims({ sub: 'bad\u0001sub' }))}` }, status: 401, challenge: invalidToken('The access token has an invalid claim'), error: 'invalid_token' },
  { name: 'garbage', headers: { authorization: 'Bearer not-a-jwt' }, status: 401, challenge: invalidToken('The access token is malformed'), error: 'invalid_token' },
  { name: 'three garbage segments', headers: { authorization: 'Bearer aaa.bbb.ccc' }, status: 401, challenge: invalidToken('The access token is malformed'), error: 'invalid_token' },
  { name: 'oversized token', headers: { authorization: `Bearer ${'a'.repeat(9000)}` }, status: 401, challenge: invalidToken('The access token is too large'), error: 'invalid_token' },
  // valid token lacking the route scope
  { name: 'valid token missing the route scope', headers: { authorization: `Bearer ${noScopeToken}` }, status: 403, challenge: `Bearer error="insufficient_scope", error_description="The access token lacks a scope this route requires", scope="mcp:tools", resource_metadata="${PRM}"`, error: 'insufficient_scope' },
  // malformed requests
  { name: 'token in the query string', path: `/mcp?access_token=${validToken}`, status: 400, challenge: invalidRequest('Access tokens must be sent in the Authorization header, not in the query string'), error: 'invalid_request' },
  { name: 'token in the query string and the header', path: '/mcp?x=1&access_token=abc', headers: { authorization: `Bearer ${validToken}` }, status: 400, challenge: invalidRequest('Access tokens must be sent in the Authorization header, not in the query string'), error: 'invalid_request' },
  { name: 'two Authorization headers', headers: { authorization: [`Bearer ${validToken}`, `Bearer ${validToken}`] }, status: 400, challenge: invalidRequest('More than one Authorization header was sent'), error: 'invalid_request' },
  { name: 'Bearer with no token', headers: { authorization: 'Bearer' }, status: 400, challenge: invalidRequest('The Bearer credential is empty'), error: 'invalid_request' },
  { name: 'Bearer with two tokens', headers: { authorization: `Bearer ${validToken} ${validToken}` }, status: 400, challenge: invalidRequest('More than one Bearer token was sent'), error: 'invalid_request' },
  { name: 'undecodable query string (would crash the proxy library)', path: '/mcp?x=%zz', headers: { authorization: `Bearer ${validToken}` }, status: 400, challenge: null, error: 'invalid_request', description: 'The request URL is not validly percent-encoded' },
  { name: 'undecodable path (router error): our body, not the path echoed', path: '/mcp/%zz', headers: { authorization: `Bearer ${validToken}` }, status: 400, challenge: null, error: 'invalid_request', description: 'The request URL is malformed' },
  { name: 'percent-encoded access_token parameter name', path: '/mcp?%61ccess_token=abc', status: 400, challenge: invalidRequest('Access tokens must be sent in the Authorization header, not in the query string'), error: 'invalid_request' },
  { name: 'Bearer with a quoted token', headers: { authorization: 'Bearer "abc"' }, status: 400, challenge: invalidRequest('The Bearer credential is not a valid token'), error: 'invalid_request' }
]

/** Raw request so that repeated headers are sent as separate lines. */
async function send (method: string, path: string, headers: Record<string, string | string[]>, body?: string): Promise<RawResponse> {
  return await rawRequest(gw.url, method, path, headers, body)
}

for (const row of rows) {
  t.test(row.name, async (t) => {
    const method = row.method ?? 'POST'
    const res = await send(method, row.path ?? '/mcp', { ...(method === 'POST' ? mcpHeaders() : {}), ...(row.headers ?? {}) }, method === 'POST' ? INITIALIZE_BODY : undefined)
    t.equal(res.status, row.status, 'status')
    t.equal(res.headers['www-authenticate'] ?? null, row.challenge, 'WWW-Authenticate')
    t.match(res.headers['content-type'], /^application\/json/, 'JSON body')
    const body = JSON.parse(res.body) as Record<string, unknown>
    t.same(Object.keys(body).sort(), ['error', 'error_description'], 'body has exactly error and error_description')
    t.equal(body.error, row.error, 'error code')
    if (row.description !== undefined) t.equal(body.error_description, row.description)
    // The description never echoes the token or a library message.
    const sent = JSON.stringify(row.headers ?? {}) + (row.path ?? '')
    for (const part of sent.match(/[A-Za-z0-9_-]{20,}/g) ?? []) t.notOk(res.body.includes(part), 'no token material in the body')
    t.notMatch(String(body.error_description), /jose|JWS|JWT|timestamp|check failed|"/i, 'no raw library message')
  })
}

t.test('a valid token reaches the upstream', async (t) => {
  const res = await send('POST', '/mcp', mcpHeaders(validToken), INITIALIZE_BODY)
  t.equal(res.status, 200)
  t.ok(res.headers['mcp-session-id'], 'session id passed through')
  t.equal(res.headers['www-authenticate'], undefined)
})

t.test('a rejected request is never proxied', async (t) => {
  const before = up.requests.length
  await send('POST', '/mcp', mcpHeaders('not-a-jwt'), INITIALIZE_BODY)
  await send('POST', '/mcp', mcpHeaders(), INITIALIZE_BODY)
  await send('POST', '/mcp', mcpHeaders(noScopeToken), INITIALIZE_BODY)
  t.equal(up.requests.length, before, 'upstream saw no request')
})

t.test('paths outside every route get 404 and are never proxied', async (t) => {
  const before = up.requests.length
  for (const path of ['/', '/admin', '/mcpx', '/mcp/../admin', '/mcp/%2e%2e/admin', '/mcp/%2E%2E/%2E%2E/etc/passwd', '/mcp/.%2e/x', '/mcp/%252e%252e/x', '/mcp/a%2fb', '/.well-known/unknown']) {
    const res = await send('GET', path, { authorization: `Bearer ${validToken}` })
    t.equal(res.status, 404, `${path} → 404`)
    t.same(JSON.parse(res.body), { error: 'not_found', error_description: 'No route matches this path' }, `${path} body`)
  }
  t.equal(up.requests.length, before, 'upstream saw no request')
})

t.test('OPTIONS preflight needs no token', async (t) => {
  const res = await send('OPTIONS', '/mcp', { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' })
  t.equal(res.status, 204)
  t.equal(res.headers['www-authenticate'], undefined)
  t.match(String(res.headers['access-control-allow-headers']), /Authorization/)
  t.match(String(res.headers['access-control-allow-headers']), /Mcp-Session-Id/)
})

t.test('challenges expose WWW-Authenticate to browsers', async (t) => {
  const res = await send('POST', '/mcp', { ...mcpHeaders(), origin: 'https://app.example.com' }, INITIALIZE_BODY)
  t.equal(res.status, 401)
  t.equal(res.headers['access-control-allow-origin'], 'https://app.example.com', 'the allowed origin is echoed')
  t.match(String(res.headers['access-control-expose-headers']), /WWW-Authenticate/)
})

t.test('no token appears in any log line', async (t) => {
  const all = gw.logs.join('\n')
  for (const tok of [validToken, noScopeToken, otherAudienceToken]) {
    t.notOk(all.includes(tok), 'token absent from logs')
    t.notOk(all.includes(tok.split('.')[2]!), 'signature absent from logs')
  }
  t.notOk(/access_token=/.test(all), 'no query string with a token is logged')
  const outcomes = new Set(gw.requestLogs().map((r) => r.outcome))
  for (const o of ['no_token', 'invalid_token:expired', 'invalid_token:bad_signature', 'invalid_token:wrong_audience', 'insufficient_scope', 'invalid_request', 'ok']) {
    t.ok(outcomes.has(o), `outcome ${o} logged`)
  }
})

t.test('HTTP parse errors get our error body, then the connection closes', async (t) => {
  const { connect } = await import('node:net')
  const exchange = (raw: string): Promise<string> => new Promise((resolve, reject) => {
    const url = new URL(gw.url)
    const socket = connect(Number(url.port), url.hostname, () => { socket.write(raw) })
    let data = ''
    socket.on('data', (c: Buffer) => { data += c.toString() })
    socket.on('close', () => { resolve(data) })
    socket.on('error', reject)
  })
  const garbage = await exchange('NOT HTTP AT ALL\r\n\r\n')
  t.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(garbage, /\{"error":"invalid_request","error_description":"The HTTP request is malformed"\}$/)
  const huge = await exchange(`GET /mcp HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 /)
  t.match(huge, /"error_description":"The request headers are too large"/)
})
