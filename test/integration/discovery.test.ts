/**
 * Section 5 of the core issue: discovery with retries (503 until ready, never
 * a 500), RFC 8414 / OIDC discovery for issuers with a path, the issuer
 * identity check, JWKS refetch on an unknown kid with a cooldown, key outages,
 * keys without kid, and the verified-token cache bounded by exp.
 */
import t from 'tap'
import { startStaticIssuer, type StaticIssuer } from '../helpers/static-issuer.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY, type RunningGateway } from '../helpers/gateway.js'

const up = await startStatelessUpstream({ jsonResponse: true })
t.teardown(async () => { await up.close() })

async function gatewayFor (st: StaticIssuer, opts: { verifier?: NonNullable<Parameters<typeof startGateway>[1]>['verifier'], waitReady?: boolean, as?: Record<string, unknown> } = {}): Promise<RunningGateway> {
  return await startGateway(() => ({
    authorizationServers: [{ issuer: st.issuer, clockToleranceSeconds: 0, ...opts.as }],
    routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }]
  }), { verifier: { retryInitialMs: 50, retryMaxMs: 100, ...opts.verifier }, waitReady: opts.waitReady })
}

async function call (gw: RunningGateway, token?: string): Promise<Response> {
  return await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
}

const tokenFor = async (st: StaticIssuer, gw: RunningGateway, extra: Record<string, unknown> = {}, opts?: Parameters<StaticIssuer['sign']>[1]): Promise<string> =>
  await st.sign(st.claims({ aud: `${gw.url}/mcp`, scope: 'mcp:tools', ...extra }), opts)

t.test('until discovery succeeds: 503 with Retry-After for tokens, 401 without; then 200', async (t) => {
  const st = await startStaticIssuer({ failFirst: 1000 })
  const gw = await gatewayFor(st, { waitReady: false })
  t.teardown(async () => { await gw.close(); await st.close() })
  const token = await tokenFor(st, gw)

  const res = await call(gw, token)
  t.equal(res.status, 503)
  t.equal(res.headers.get('retry-after'), '5')
  t.same(await res.json(), { error: 'temporarily_unavailable', error_description: 'The authorization server cannot be reached to validate the token; retry later' })
  t.equal((await call(gw)).status, 401, 'no token: the challenge needs no AS')
  const ready = await fetch(`${gw.url}/readyz`)
  t.equal(ready.status, 503)
  t.same(await ready.json(), { status: 'starting', pendingIssuers: [st.issuer] })
  t.equal((await fetch(`${gw.url}/healthz`)).status, 200, 'alive while not ready')
  const deadline = Date.now() + 2000
  while (st.metadataFetches < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(st.metadataFetches >= 3, `discovery retried (${st.metadataFetches} attempts so far)`)

  st.failMetadata = 0
  await gw.gateway.authenticator.whenReady()
  t.equal((await call(gw, token)).status, 200, 'accepted once discovery succeeded')
  t.equal((await fetch(`${gw.url}/readyz`)).status, 200)
  t.ok(gw.logs.some((l) => l.includes('authorization server discovery failed; retrying')), 'failures logged')
})

for (const wellKnown of [{ oauth: true, oidc: false }, { oauth: false, oidc: true }]) {
  t.test(`issuer with a path, discovered via ${wellKnown.oauth ? 'RFC 8414 path insertion' : 'OIDC discovery'}`, async (t) => {
    const st = await startStaticIssuer({ issuerPath: '/realms/mcp', wellKnown })
    const gw = await gatewayFor(st)
    t.teardown(async () => { await gw.close(); await st.close() })
    t.equal(gw.gateway.authenticator.verifiers.get(st.issuer)?.jwksUri, `${st.issuer}/jwks`)
    t.equal((await call(gw, await tokenFor(st, gw))).status, 200)
  })
}

t.test('metadata whose issuer differs from the configured one is refused (fail closed)', async (t) => {
  const st = await startStaticIssuer()
  st.metadataOverrides = { issuer: `${st.issuer}/` }
  const gw = await gatewayFor(st, { waitReady: false })
  t.teardown(async () => { await gw.close(); await st.close() })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal((await call(gw, await tokenFor(st, gw))).status, 503, 'never accepted')
  t.ok(gw.logs.some((l) => l.includes('is not identical to the configured issuer') && l.includes('"level":50')), 'logged as an error')
})

t.test('explicit jwksUri: no metadata fetch', async (t) => {
  const st = await startStaticIssuer()
  const gw = await gatewayFor(st, { as: { jwksUri: st.jwksUri } })
  t.teardown(async () => { await gw.close(); await st.close() })
  t.equal(st.metadataFetches, 0)
  t.equal((await call(gw, await tokenFor(st, gw))).status, 200)
})

t.test('key rotation: an unknown kid refetches the JWKS, at most once per cooldown', async (t) => {
  // ES256 keys: generating them is instant, so the timing below is not at the mercy of RSA key generation.
  const st = await startStaticIssuer({ alg: 'ES256' })
  const gw = await gatewayFor(st, { verifier: { jwksCooldownMs: 1500 } })
  t.teardown(async () => { await gw.close(); await st.close() })
  const fetchesAtStart = st.jwksFetches
  t.equal((await call(gw, await tokenFor(st, gw))).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 1600))
  await st.rotate()
  t.equal((await call(gw, await tokenFor(st, gw))).status, 200, 'rotated key picked up on first sight of its kid')
  t.equal(st.jwksFetches, fetchesAtStart + 1, 'one refetch')
  await st.rotate()
  // Within the cooldown a new kid is not fetched for: key-miss floods cannot hammer the AS.
  for (let i = 0; i < 5; i++) t.equal((await call(gw, await tokenFor(st, gw, { jti: `j${i}` }))).status, 401, 'unknown kid during cooldown')
  t.equal(st.jwksFetches, fetchesAtStart + 1, 'no refetch during the cooldown')
  await new Promise((resolve) => setTimeout(resolve, 1600))
  t.equal((await call(gw, await tokenFor(st, gw, { jti: 'later' }))).status, 200, 'new key picked up after the cooldown')
  t.equal(st.jwksFetches, fetchesAtStart + 2, 'exactly one more refetch')
})

t.test('JWKS outage on refetch: the keys fetched before keep verifying (never a 5xx); an unknown key is 401', async (t) => {
  const st = await startStaticIssuer()
  const gw = await gatewayFor(st, { verifier: { jwksMaxAgeMs: 100, jwksCooldownMs: 0 } })
  t.teardown(async () => { await gw.close(); await st.close() })
  const cached = await tokenFor(st, gw)
  t.equal((await call(gw, cached)).status, 200)
  st.failJwks = 1000
  await new Promise((resolve) => setTimeout(resolve, 150))
  const fetches = st.jwksFetches
  const res = await call(gw, await tokenFor(st, gw, { jti: 'fresh' }))
  t.equal(res.status, 200, 'a new token signed by a known key: verified with the stale key set (503 from the JWKS, stale-if-error)')
  t.equal(st.jwksFetches, fetches + 1, 'the stale set was refetched first, and that failed')
  t.equal((await call(gw, cached)).status, 200, 'an already verified token is still served from the cache')
  await st.rotate()
  const rotated = await call(gw, await tokenFor(st, gw, { jti: 'rotated' }))
  t.equal(rotated.status, 401, 'a key the gateway could not fetch: 401, not 503')
  t.match(rotated.headers.get('www-authenticate'), /The access token was signed with an unknown key/)
  st.failJwks = 0
  t.equal((await call(gw, await tokenFor(st, gw, { jti: 'after' }))).status, 200, 'recovers when the JWKS is back: the rotated key is fetched')
})

t.test('keys without kid (Drupal-style JWKS): one key, and several keys tried in turn', async (t) => {
  const st = await startStaticIssuer({ omitKid: true, omitAlg: true })
  const gw = await gatewayFor(st, { verifier: { jwksCooldownMs: 0 } })
  t.teardown(async () => { await gw.close(); await st.close() })
  t.equal((await call(gw, await tokenFor(st, gw, {}, { kid: null }))).status, 200, 'single key without kid')
  await st.setKeys([{ kid: null, publishAlg: false }, { kid: null, publishAlg: false }])
  t.equal((await call(gw, await tokenFor(st, gw, { jti: 'second' }, { kid: null }))).status, 200, 'signed by the second of two kid-less keys')
  t.equal((await call(gw, await tokenFor(st, gw, { jti: 'third' }, { kid: null, key: 'other' }))).status, 401, 'a key not in the set is still refused')
})

t.test('the token cache never outlives exp', async (t) => {
  const st = await startStaticIssuer()
  const gw = await gatewayFor(st)
  t.teardown(async () => { await gw.close(); await st.close() })
  const now = Math.floor(Date.now() / 1000)
  const token = await tokenFor(st, gw, { iat: now, exp: now + 2 })
  t.equal((await call(gw, token)).status, 200)
  t.equal((await call(gw, token)).status, 200, 'cached')
  t.ok(gw.gateway.authenticator.cacheStats.hits >= 1, 'served from the cache')
  await new Promise((resolve) => setTimeout(resolve, (now + 2) * 1000 - Date.now() + 50))
  const res = await call(gw, token)
  t.equal(res.status, 401, 'expired token refused even though it was cached')
  t.match(res.headers.get('www-authenticate'), /error="invalid_token", error_description="The access token has expired"/)
})

t.test('concurrent first requests with the same new token share one verification', async (t) => {
  const st = await startStaticIssuer({ alg: 'ES256' })
  const gw = await gatewayFor(st)
  t.teardown(async () => { await gw.close(); await st.close() })
  const token = await tokenFor(st, gw, { jti: 'burst' })
  // Count signature verifications by wrapping the real verifier (it still does the work).
  const verifier = gw.gateway.authenticator.verifiers.get(st.issuer)!
  const original = verifier.verify.bind(verifier)
  let verifications = 0
  verifier.verify = async (...args) => { verifications++; return await original(...args) }
  const before = gw.gateway.authenticator.cacheStats
  const statuses = await Promise.all(Array.from({ length: 20 }, async () => (await call(gw, token)).status))
  t.ok(statuses.every((s) => s === 200), 'all 20 accepted')
  const after = gw.gateway.authenticator.cacheStats
  t.equal(after.size - before.size, 1, 'one cache entry')
  t.equal(verifications, 1, 'one verification for 20 concurrent requests')
  t.equal(st.jwksFetches, 1, 'no JWKS fetch beyond the one at startup')
})
