/**
 * Issue 5 item 3, upstream credentials, end to end against the real
 * oidc-provider AS: a static header, the gateway's own client-credentials
 * token, and RFC 8693 token exchange (an oidc-provider custom grant in
 * test/helpers/as.ts). The upstream is a plain node:http server that records
 * every request and verifies each bearer token it gets against the AS's JWKS,
 * the way a resource server would. The client's token never reaches it.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { startAuthServer, TOKEN_EXCHANGE_GRANT } from '../helpers/as.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'

/** The upstream API the gateway's tokens are for (an RFC 8707 resource at the AS). */
const UPSTREAM_API = 'https://upstream.example.com/api'
/** The same API with 4 s tokens, for refresh timing. */
const SHORT_API = 'https://upstream.example.com/short'

interface Seen { url: string, headers: IncomingHttpHeaders, bearer?: JWTPayload | 'invalid' }

const as = await startAuthServer()
as.registerResource({ url: UPSTREAM_API, scope: 'up:read up:write' })
as.registerResource({ url: SHORT_API, scope: 'up:read', ttlSeconds: 4 })
/** A second AS for the "AS goes away" case. */
const as2 = await startAuthServer()
as2.registerResource({ url: UPSTREAM_API, scope: 'up:read' })
/** An issuer the gateway trusts but the exchange AS does not know. */
const stranger = await startStaticIssuer({ alg: 'ES256' })
const deadPort = await freePort()
/** A token endpoint that never answers (a hung AS): requests are held until the test ends. */
const held: Array<() => void> = []
const hung = createServer((req) => { req.resume(); held.push(() => { req.socket.destroy() }) })
await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve))
const hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/token`

const seen: Seen[] = []
const asJwks = createRemoteJWKSet(new URL(`${as.issuer}/jwks`))
const as2Jwks = createRemoteJWKSet(new URL(`${as2.issuer}/jwks`))
const upstream = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    const entry: Seen = { url: req.url ?? '', headers: req.headers }
    seen.push(entry)
    const done = (): void => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}') }
    const auth = req.headers.authorization
    if (auth?.startsWith('Bearer ') !== true) { done(); return }
    const jwks = entry.url.startsWith('/cc-as2') ? as2Jwks : asJwks
    jwtVerify(auth.slice(7), jwks, { audience: [UPSTREAM_API, SHORT_API] }).then(
      ({ payload }) => { entry.bearer = payload; done() },
      () => { entry.bearer = 'invalid'; done() }
    )
  })
})
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

const dir = mkdtempSync(join(tmpdir(), 'gw-upstream-auth-'))
const headerFile = join(dir, 'upstream-authorization')
writeFileSync(headerFile, 'Basic dXBzdHJlYW06c2VjcmV0LWZyb20tZmlsZQ==\n', { mode: 0o600 })
const STATIC_KEY = 'k-7f3c9a-static-api-key'
const SECRET = as.clients.gatewayExchange.secret

const client = (tokenEndpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  tokenEndpoint, clientId: as.clients.gatewayExchange.id, clientSecret: { fromEnv: 'GW_CLIENT_SECRET' }, ...extra
})
const ROUTES = ['/static', '/static-file', '/cc', '/cc-post', '/tx-post', '/cc-burst', '/cc-short', '/cc-as2', '/cc-down', '/cc-hung', '/cc-hung-long', '/tx', '/tx-denied', '/tx-down']
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }, { issuer: stranger.issuer }],
  routes: [
    { path: '/static', upstream: `${up}/static`, scopes: ['mcp:tools'], upstreamAuth: { type: 'header', name: 'X-Api-Key', value: { fromEnv: 'UPSTREAM_KEY' } } },
    { path: '/static-file', upstream: `${up}/static-file`, scopes: ['mcp:tools'], upstreamAuth: { type: 'header', value: { fromFile: headerFile } } },
    { path: '/cc', upstream: `${up}/cc`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(`${as.issuer}/token`, { resource: UPSTREAM_API, scope: 'up:read' }) } },
    { path: '/cc-post', upstream: `${up}/cc-post`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', tokenEndpoint: `${as.issuer}/token`, clientId: as.clients.gatewayExchangePost.id, clientSecret: { fromEnv: 'POST_SECRET' }, authMethod: 'client_secret_post', resource: UPSTREAM_API } },
    { path: '/tx-post', upstream: `${up}/tx-post`, scopes: ['mcp:tools'], upstreamAuth: { type: 'tokenExchange', tokenEndpoint: `${as.issuer}/token`, clientId: as.clients.gatewayExchangePost.id, clientSecret: { fromEnv: 'POST_SECRET' }, authMethod: 'client_secret_post', resource: UPSTREAM_API } },
    { path: '/cc-burst', upstream: `${up}/cc-burst`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(`${as.issuer}/token`, { resource: UPSTREAM_API, scope: ['up:read', 'up:write'] }) } },
    { path: '/cc-short', upstream: `${up}/cc-short`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(`${as.issuer}/token`, { resource: SHORT_API }) } },
    { path: '/cc-as2', upstream: `${up}/cc-as2`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', tokenEndpoint: `${as2.issuer}/token`, clientId: as2.clients.gatewayExchange.id, clientSecret: { fromEnv: 'AS2_SECRET' }, resource: UPSTREAM_API } },
    { path: '/cc-down', upstream: `${up}/cc-down`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(`http://127.0.0.1:${deadPort}/token`) } },
    { path: '/cc-hung', upstream: `${up}/cc-hung`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(hungUrl, { timeoutSeconds: 0.3 }) } },
    { path: '/cc-hung-long', upstream: `${up}/cc-hung-long`, scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', ...client(hungUrl, { timeoutSeconds: 30 }) } },
    { path: '/tx', upstream: `${up}/tx`, scopes: ['mcp:tools'], upstreamAuth: { type: 'tokenExchange', ...client(`${as.issuer}/token`, { resource: UPSTREAM_API, scope: 'up:read' }) } },
    { path: '/tx-denied', upstream: `${up}/tx-denied`, scopes: ['mcp:tools'], upstreamAuth: { type: 'tokenExchange', ...client(`${as.issuer}/token`, { audience: 'https://not-registered.example.com/' }) } },
    { path: '/tx-down', upstream: `${up}/tx-down`, scopes: ['mcp:tools'], upstreamAuth: { type: 'tokenExchange', ...client(`http://127.0.0.1:${deadPort}/token`, { resource: UPSTREAM_API }) } }
  ]
}), { env: { GW_CLIENT_SECRET: SECRET, AS2_SECRET: as2.clients.gatewayExchange.secret, UPSTREAM_KEY: STATIC_KEY, POST_SECRET: as.clients.gatewayExchangePost.secret } })
for (const r of ROUTES) as.registerResource({ url: gw.url + r, scope: 'mcp:tools' })
t.teardown(async () => {
  await gw.close()
  upstream.closeAllConnections()
  upstream.close()
  for (const release of held) release()
  hung.close()
  await Promise.all([as.close(), as2.close().catch(() => {}), stranger.close()])
  rmSync(dir, { recursive: true, force: true })
})

const tokenFor = async (route: string): Promise<string> => await as.clientCredentialsToken({ resource: gw.url + route, scope: 'mcp:tools' })

/** POST through the gateway; the response and what the upstream saw (undefined: nothing reached it). */
async function call (route: string, token: string, extra: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: string, upstream: Seen | undefined }> {
  const before = seen.length
  const res = await fetch(gw.url + route, { method: 'POST', headers: mcpHeaders(token, extra), body: INITIALIZE_BODY })
  const body = await res.text()
  return { status: res.status, headers: res.headers, body, upstream: seen.length > before ? seen[seen.length - 1] : undefined }
}

/** Every credential that must never appear in a log line. */
const secrets = (): string[] => [SECRET, as.clients.gatewayExchangePost.secret, STATIC_KEY, 'dXBzdHJlYW06c2VjcmV0LWZyb20tZmlsZQ', ...seen.flatMap((s) => s.headers.authorization?.startsWith('Bearer ') === true ? [s.headers.authorization.slice(7)] : [])]

t.test('header: a static value from env or file replaces the client\'s credential; a client-sent copy is stripped', async (t) => {
  const token = await tokenFor('/static')
  const r = await call('/static', token, { 'X-Api-Key': 'forged-by-client' })
  t.equal(r.status, 200)
  t.equal(r.upstream?.headers['x-api-key'], STATIC_KEY, 'the configured value, not the client\'s')
  t.equal(r.upstream?.headers.authorization, undefined, 'the client token is not forwarded')
  const f = await call('/static-file', await tokenFor('/static-file'))
  t.equal(f.upstream?.headers.authorization, 'Basic dXBzdHJlYW06c2VjcmV0LWZyb20tZmlsZQ==', 'Authorization from the file, trailing newline dropped')
})

t.test('clientCredentials: the upstream gets the gateway\'s own token for its audience, never the client\'s, reused across callers', async (t) => {
  const before = as.grantCount('client_credentials')
  const alice = (await as.userTokens({ resource: gw.url + '/cc', user: 'alice' })).accessToken
  const m2m = await tokenFor('/cc')
  const r1 = await call('/cc', alice)
  const r2 = await call('/cc', m2m)
  t.equal(r1.status, 200)
  t.equal(r2.status, 200)
  const p = r1.upstream?.bearer
  if (p === undefined || p === 'invalid') throw new Error('upstream did not get a valid AS token')
  t.equal(p.aud, UPSTREAM_API, 'aimed at the upstream (RFC 8707 resource)')
  t.equal(p.client_id, as.clients.gatewayExchange.id, 'the gateway\'s own client')
  t.equal(p.scope, 'up:read')
  t.not(r1.upstream?.headers.authorization, `Bearer ${alice}`)
  t.equal(r1.upstream?.headers.authorization, r2.upstream?.headers.authorization, 'one token serves every caller')
  t.equal(r1.upstream?.headers['x-forwarded-user'], 'alice', 'the caller is still named by the identity headers')
  // The m2m client's token request in tokenFor counts too; the gateway itself asked once.
  t.equal(as.grantCount('client_credentials') - before, 2, 'one token request by the gateway (plus the test\'s own)')
})

t.test('client_secret_post: id and secret form-encoded in the body, for both grants', async (t) => {
  const cc = await call('/cc-post', await tokenFor('/cc-post'))
  t.equal(cc.status, 200)
  t.match(cc.upstream?.bearer, { client_id: as.clients.gatewayExchangePost.id, aud: UPSTREAM_API })
  const user = (await as.userTokens({ resource: gw.url + '/tx-post', user: 'erin' })).accessToken
  const tx = await call('/tx-post', user)
  t.equal(tx.status, 200)
  t.match(tx.upstream?.bearer, { sub: 'erin', client_id: as.clients.gatewayExchangePost.id, aud: UPSTREAM_API })
})

t.test('clientCredentials: concurrent first requests share one token request (single flight)', async (t) => {
  const token = await tokenFor('/cc-burst')
  const before = as.grantCount('client_credentials')
  const results = await Promise.all(Array.from({ length: 12 }, async () => await call('/cc-burst', token)))
  t.same(results.map((r) => r.status), Array(12).fill(200))
  t.equal(as.grantCount('client_credentials') - before, 1, 'twelve requests, one token request')
  t.equal(new Set(results.map((r) => r.upstream?.headers.authorization)).size, 1)
  const p = results[0]!.upstream?.bearer as JWTPayload
  t.equal(p.scope, 'up:read up:write', 'a scope list is sent space-separated')
})

t.test('clientCredentials: refreshed before it expires (4 s token: replaced after 2 s)', async (t) => {
  const token = await tokenFor('/cc-short')
  const before = as.grantCount('client_credentials')
  const a = await call('/cc-short', token)
  const b = await call('/cc-short', token)
  t.equal(as.grantCount('client_credentials') - before, 1, 'fetched once')
  t.equal(a.upstream?.headers.authorization, b.upstream?.headers.authorization, 'reused while fresh')
  await sleep(2300)
  const c = await call('/cc-short', token)
  t.equal(c.status, 200)
  t.equal(as.grantCount('client_credentials') - before, 2, 'fetched again before the old one expired')
  t.not(c.upstream?.headers.authorization, a.upstream?.headers.authorization, 'a new token')
  const exp = (a.upstream?.bearer as JWTPayload).exp!
  t.ok(Date.now() / 1000 < exp, 'the old token had not expired yet when it was replaced')
})

t.test('clientCredentials: a cached token keeps working while its AS is down; an AS that cannot be reached gives 503', async (t) => {
  const token = await tokenFor('/cc-as2')
  const first = await call('/cc-as2', token)
  t.equal(first.status, 200)
  t.not(first.upstream?.bearer, 'invalid', 'a valid as2 token')
  await as2.close()
  const second = await call('/cc-as2', token)
  t.equal(second.status, 200, 'the cached token is still used')
  t.equal(second.upstream?.headers.authorization, first.upstream?.headers.authorization)

  const down = await call('/cc-down', await tokenFor('/cc-down'))
  t.equal(down.status, 503)
  t.equal(down.headers.get('retry-after'), '5')
  t.same(JSON.parse(down.body), { error: 'temporarily_unavailable', error_description: 'The credential for the upstream cannot be obtained; retry later' })
  t.equal(down.upstream, undefined, 'nothing reached the upstream')
  const line = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'upstream credential request failed' && l.route === '/cc-down')
  t.match(line, { grant: 'client_credentials', reason: 'unreachable', endpoint: `http://127.0.0.1:${deadPort}/token` }, 'logged with a reason')
  const health = await fetch(`${gw.url}/healthz`)
  t.equal(health.status, 200, 'the gateway stays up')
  t.equal((await call('/static', await tokenFor('/static'))).status, 200, 'and other routes keep working')
})

t.test('clientCredentials: a token endpoint that hangs is cut at timeoutSeconds (503); a client that leaves meanwhile is never forwarded', async (t) => {
  const started = Date.now()
  const r = await call('/cc-hung', await tokenFor('/cc-hung'))
  const took = Date.now() - started
  t.equal(r.status, 503)
  t.ok(took >= 250 && took < 3000, `answered after the 0.3 s timeout (${took} ms)`)
  t.equal(r.upstream, undefined)
  t.ok(gw.logs.some((l) => l.includes('"route":"/cc-hung"') && l.includes('"reason":"timeout"')), 'logged as a timeout')

  const token = await tokenFor('/cc-hung-long')
  const before = seen.length
  const aborted = fetch(gw.url + '/cc-hung-long', { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY, signal: AbortSignal.timeout(200) })
  await t.rejects(aborted, { name: 'TimeoutError' })
  // Release the held token request: it now fails, after the client is gone.
  for (const release of held.splice(0)) release()
  await sleep(200)
  t.equal(seen.length, before, 'nothing reached the upstream')
  const line = gw.requestLogs().find((l) => l.route === '/cc-hung-long')
  t.match(line, { outcome: 'client_closed' }, 'logged once as client_closed')
  t.equal(gw.requestLogs().filter((l) => l.route === '/cc-hung-long').length, 1)
})

t.test('tokenExchange: the caller\'s token is exchanged for one aimed at the upstream, once per caller token', async (t) => {
  const before = as.grantCount(TOKEN_EXCHANGE_GRANT)
  const alice1 = (await as.userTokens({ resource: gw.url + '/tx', user: 'alice' })).accessToken
  const alice2 = (await as.userTokens({ resource: gw.url + '/tx', user: 'alice' })).accessToken
  const bob = (await as.userTokens({ resource: gw.url + '/tx', user: 'bob' })).accessToken
  const a1 = await call('/tx', alice1)
  const a1again = await call('/tx', alice1)
  const a2 = await call('/tx', alice2)
  const b = await call('/tx', bob)
  for (const r of [a1, a1again, a2, b]) t.equal(r.status, 200)
  const pa = a1.upstream?.bearer
  if (pa === undefined || pa === 'invalid') throw new Error('upstream did not get a valid exchanged token')
  t.equal(pa.sub, 'alice', 'the exchanged token names the caller')
  t.equal(pa.aud, UPSTREAM_API, 'and is aimed at the upstream')
  t.equal(pa.client_id, as.clients.gatewayExchange.id, 'issued to the gateway')
  t.equal(pa.scope, 'up:read')
  t.equal((b.upstream?.bearer as JWTPayload).sub, 'bob')
  t.not(a1.upstream?.headers.authorization, `Bearer ${alice1}`, 'never the client token')
  t.equal(a1again.upstream?.headers.authorization, a1.upstream?.headers.authorization, 'the same caller token reuses its exchange')
  t.not(a2.upstream?.headers.authorization, a1.upstream?.headers.authorization, 'another token of the same user is exchanged on its own')
  t.equal(as.grantCount(TOKEN_EXCHANGE_GRANT) - before, 3, 'three caller tokens, three exchanges')
})

t.test('tokenExchange: refusals and outages map to 401, 403 and 503; nothing reaches the upstream', async (t) => {
  const strangerToken = await stranger.sign(stranger.claims({ aud: gw.url + '/tx', scope: 'mcp:tools' }))
  const cases: Array<{ name: string, route: string, token: () => Promise<string>, status: number, error: string, header: string, value: RegExp }> = [
    { name: 'the AS does not accept the caller\'s token (invalid_grant)', route: '/tx', token: async () => strangerToken, status: 401, error: 'invalid_token', header: 'www-authenticate', value: /^Bearer .*error="invalid_token"/ },
    { name: 'the AS refuses the audience (invalid_target)', route: '/tx-denied', token: async () => await tokenFor('/tx-denied'), status: 403, error: 'insufficient_scope', header: 'www-authenticate', value: /^Bearer .*error="insufficient_scope"/ },
    { name: 'the AS cannot be reached', route: '/tx-down', token: async () => await tokenFor('/tx-down'), status: 503, error: 'temporarily_unavailable', header: 'retry-after', value: /^5$/ }
  ]
  for (const c of cases) {
    const token = await c.token()
    const r = await call(c.route, token)
    t.equal(r.status, c.status, `${c.name}: ${c.status}`)
    t.equal((JSON.parse(r.body) as { error: string }).error, c.error, `${c.name}: ${c.error}`)
    t.match(r.headers.get(c.header), c.value, `${c.name}: ${c.header}`)
    t.equal(r.upstream, undefined, `${c.name}: not forwarded`)
  }
  const before = as.grantCount(TOKEN_EXCHANGE_GRANT)
  const again = await call('/tx', strangerToken)
  t.equal(again.status, 401)
  t.equal(as.grantCount(TOKEN_EXCHANGE_GRANT), before, 'a refused token is remembered: no second call to the AS')
})

t.test('no token, secret or upstream credential appears in any log line', async (t) => {
  const all = gw.logs.join('\n')
  for (const s of secrets()) t.notOk(all.includes(s), `log lines do not contain a credential (${s.slice(0, 6)}…)`)
  t.ok(gw.logs.some((l) => l.includes('upstream credential request failed')), 'failures were logged')
})
