/**
 * Issue 4 item 2: RFC 7662 introspection of opaque access tokens against the
 * real oidc-provider AS (test/helpers/as.ts): client_secret_basic and
 * client_secret_post, active / revoked / garbage / refresh / JWT tokens, the
 * negative cache, single flight, wrong gateway credentials, and an endpoint
 * that is down, hangs or answers nonsense (fail closed, 503, one log line).
 * Then the same through a real gateway (tokenType opaque and auto issuers,
 * real SDK upstream): 200 with identity headers, 401s, 503 + Retry-After,
 * and the positive-result cache. No log line ever carries a token or a secret.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Introspector } from '../../src/auth/introspection.js'
import type { IntrospectionConfig } from '../../src/config/types.js'
import { InvalidTokenError, TemporarilyUnavailableError } from '../../src/errors.js'
import { startAuthServer } from '../helpers/as.js'
import { freePort } from '../helpers/net.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { startStatelessUpstream } from '../helpers/upstream.js'

type Test = Parameters<NonNullable<Parameters<typeof t.test>[0]>>[0]

const as = await startAuthServer()
t.teardown(async () => { await as.close() })
const OPAQUE = 'https://mcp.example.test/opaque'
const JWT_RESOURCE = 'https://mcp.example.test/jwt'
as.registerResource({ url: OPAQUE, scope: 'mcp:tools mcp:resources', format: 'opaque' })
as.registerResource({ url: JWT_RESOURCE, scope: 'mcp:tools' })
const ENDPOINT = `${as.issuer}/token/introspection`
const introspections = (): number => as.requestCount('/token/introspection')

type Method = IntrospectionConfig['authMethod']
const CLIENTS: Record<Method, { id: string, secret: string }> = {
  client_secret_basic: as.clients.gatewayBasic,
  client_secret_post: as.clients.gatewayPost
}

function config (method: Method = 'client_secret_basic', over: Partial<IntrospectionConfig> = {}): IntrospectionConfig {
  return {
    endpoint: ENDPOINT,
    clientId: CLIENTS[method].id,
    clientSecret: CLIENTS[method].secret,
    authMethod: method,
    cacheTtlMs: 60_000,
    negativeCacheTtlMs: 10_000,
    timeoutMs: 2_000,
    ...over
  }
}

interface LogLine { level: string, obj: Record<string, unknown>, msg: string }

/** Every secret any test uses: no log line may contain one. */
const SECRETS = [as.clients.gatewayBasic.secret, as.clients.gatewayPost.secret, as.clients.m2m.secret, 'wrong-secret-value']

/** An in-memory VerifierLogger, and a check that its lines carry none of `tokens` nor any secret. */
function memoryLog (t: Test): { log: { info: (o: object, m: string) => void, warn: (o: object, m: string) => void, error: (o: object, m: string) => void }, lines: LogLine[], assertClean: (tokens: string[]) => void } {
  const lines: LogLine[] = []
  const at = (level: string) => (obj: object, msg: string): void => { lines.push({ level, obj: obj as Record<string, unknown>, msg }) }
  return {
    log: { info: at('info'), warn: at('warn'), error: at('error') },
    lines,
    assertClean: (tokens) => {
      const text = JSON.stringify(lines)
      for (const s of [...tokens, ...SECRETS]) {
        t.notOk(text.includes(s), 'no token or secret in the logs')
        t.notOk(text.includes(encodeURIComponent(s)), 'not even form-encoded')
      }
    }
  }
}

function introspector (t: Test, cfg: IntrospectionConfig, opts?: { now?: () => number }): { intro: Introspector } & ReturnType<typeof memoryLog> {
  const m = memoryLog(t)
  const intro = new Introspector(as.issuer, cfg, m.log, opts)
  t.teardown(() => { intro.stop() })
  return { intro, ...m }
}

/** The error a rejected promise carries (fails the test if it resolves). */
async function failure (t: Test, p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  t.fail('expected a rejection')
  return undefined
}

async function expectInvalid (t: Test, p: Promise<unknown>, reason: string): Promise<void> {
  const err = await failure(t, p)
  t.ok(err instanceof InvalidTokenError, `InvalidTokenError (${String(err)})`)
  t.equal((err as InvalidTokenError).reason, reason)
}

async function expectUnavailable (t: Test, p: Promise<unknown>): Promise<TemporarilyUnavailableError> {
  const err = await failure(t, p)
  t.ok(err instanceof TemporarilyUnavailableError, `TemporarilyUnavailableError (${String(err)})`)
  t.equal((err as TemporarilyUnavailableError).retryAfterSeconds, 5, 'Retry-After from UNAVAILABLE_RETRY_AFTER_SECONDS')
  return err as TemporarilyUnavailableError
}

for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
  t.test(`active opaque tokens → their claims (${method})`, async (t) => {
    const { intro, lines, assertClean } = introspector(t, config(method))
    const m2mToken = await as.clientCredentialsToken({ resource: OPAQUE })
    t.equal(m2mToken.split('.').length, 1, 'opaque, not a JWT')
    const before = introspections()
    const claims = await intro.introspect(m2mToken)
    t.equal(introspections(), before + 1, 'one request to the AS')
    t.equal(intro.stats.calls, 1)
    t.match(claims, { active: true, iss: as.issuer, aud: OPAQUE, scope: 'mcp:tools mcp:resources', client_id: as.clients.m2m.id, token_type: 'Bearer' })
    t.type(claims.exp, 'number')
    t.ok((claims.exp as number) > Date.now() / 1000, 'exp in the future')
    t.type(claims.iat, 'number')
    t.ok(Object.isFrozen(claims), 'shared result is frozen')

    const user = await as.userTokens({ resource: OPAQUE, user: 'bob' })
    t.match(await intro.introspect(user.accessToken), { active: true, sub: 'bob', aud: OPAQUE, client_id: 'user-app', scope: 'mcp:tools mcp:resources' })
    t.same(lines, [], 'nothing logged on success')
    assertClean([m2mToken, user.accessToken])
  })
}

t.test('tokens refused by the AS: InvalidTokenError with a stable reason', async (t) => {
  const { intro, lines, assertClean } = introspector(t, config())
  const revoked = await as.clientCredentialsToken({ resource: OPAQUE })
  t.ok(await intro.introspect(revoked), 'active before revocation')
  await as.revokeToken(revoked)
  const user = await as.userTokens({ resource: OPAQUE })
  const jwt = await as.clientCredentialsToken({ resource: JWT_RESOURCE })
  const cases: Array<[name: string, token: string, reason: string]> = [
    ['revoked (RFC 7009)', revoked, 'inactive'],
    ['garbage', 'not-a-token-at-all', 'inactive'],
    ['well-formed but unknown', 'A'.repeat(43), 'inactive'],
    // oidc-provider sends no token_type for refresh tokens: a response that does not say "Bearer" is refused.
    ['refresh token', user.refreshToken, 'wrong_type'],
    // oidc-provider answers 400 unsupported_token_type for JWTs (lib/shared/reject_structured_tokens.js).
    ['JWT access token', jwt, 'malformed']
  ]
  for (const [name, token, reason] of cases) {
    const before = introspections()
    await expectInvalid(t, intro.introspect(token), reason)
    t.equal(introspections(), before + 1, `${name}: asked the AS`)
  }
  t.same(lines, [], 'refusals are not endpoint failures: nothing logged here (the caller logs the request outcome)')
  assertClean([revoked, user.refreshToken, user.accessToken, jwt])
})

t.test('negative cache: a refused token costs one call per TTL', async (t) => {
  let now = 1_000_000
  const { intro } = introspector(t, config('client_secret_basic', { negativeCacheTtlMs: 10_000 }), { now: () => now })
  const user = await as.userTokens({ resource: OPAQUE })
  const cases: Array<[string, string]> = [['not-a-token', 'inactive'], [user.refreshToken, 'wrong_type']]
  for (const [token, reason] of cases) {
    const before = introspections()
    const calls = intro.stats.calls
    const hits = intro.stats.negativeHits
    await expectInvalid(t, intro.introspect(token), reason)
    for (let i = 0; i < 5; i++) await expectInvalid(t, intro.introspect(token), reason)
    t.equal(introspections(), before + 1, 'the AS saw one request')
    t.equal(intro.stats.calls, calls + 1, 'one lookup')
    t.equal(intro.stats.negativeHits, hits + 5, 'five remembered refusals')
  }
  now += 10_001
  const before = introspections()
  await expectInvalid(t, intro.introspect('not-a-token'), 'inactive')
  t.equal(introspections(), before + 1, 'asked again once the TTL is over')

  const revokedLater = await as.clientCredentialsToken({ resource: OPAQUE })
  t.ok(await intro.introspect(revokedLater), 'active results are not remembered here (the caller caches principals)')
  await as.revokeToken(revokedLater)
  await expectInvalid(t, intro.introspect(revokedLater), 'inactive')
})

t.test('negativeCacheTtlMs 0 remembers nothing', async (t) => {
  const { intro } = introspector(t, config('client_secret_basic', { negativeCacheTtlMs: 0 }))
  for (let i = 0; i < 3; i++) await expectInvalid(t, intro.introspect('garbage-0'), 'inactive')
  t.equal(intro.stats.calls, 3)
  t.equal(intro.stats.negativeHits, 0)
})

t.test('single flight: 20 concurrent lookups of one token make one request', async (t) => {
  const { intro } = introspector(t, config())
  const token = await as.clientCredentialsToken({ resource: OPAQUE })
  const before = introspections()
  const results = await Promise.all(Array.from({ length: 20 }, async () => await intro.introspect(token)))
  t.equal(introspections(), before + 1, 'the AS saw one request')
  t.equal(intro.stats.calls, 1)
  t.ok(results.every((r) => r === results[0]), 'every caller got the same result')
  t.equal(results[0]?.aud, OPAQUE)

  const bad = await Promise.allSettled(Array.from({ length: 20 }, async () => await intro.introspect('garbage-flight')))
  t.ok(bad.every((r) => r.status === 'rejected' && r.reason instanceof InvalidTokenError && r.reason.reason === 'inactive'), 'all 20 refused')
  t.equal(intro.stats.calls, 2, 'one request for the 20 refusals')

  const second = await intro.introspect(token)
  t.equal(intro.stats.calls, 3, 'once settled, the next lookup is a new request (positive results are cached by the caller)')
  t.equal(second.aud, OPAQUE)
})

for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
  t.test(`wrong gateway secret (${method}) → 503, an error log line without the secret, nothing cached`, async (t) => {
    const { intro, lines, assertClean } = introspector(t, config(method, { clientSecret: 'wrong-secret-value' }))
    const token = await as.clientCredentialsToken({ resource: OPAQUE })
    await expectUnavailable(t, intro.introspect(token))
    t.equal(lines.length, 1, 'one log line')
    t.match(lines[0], { level: 'error', msg: 'token introspection failed', obj: { issuer: as.issuer, endpoint: ENDPOINT, reason: 'client_auth_failed' } })
    await expectUnavailable(t, intro.introspect(token))
    t.equal(intro.stats.calls, 2, 'failures are not cached')
    t.equal(intro.stats.negativeHits, 0)
    assertClean([token])
  })
}

t.test('wrong client id → 503 client_auth_failed', async (t) => {
  const { intro, lines } = introspector(t, config('client_secret_basic', { clientId: 'nobody' }))
  await expectUnavailable(t, intro.introspect('whatever-token'))
  t.match(lines, [{ level: 'error', obj: { reason: 'client_auth_failed' } }])
})

t.test('endpoint down (closed port) → 503 quickly, one warning', async (t) => {
  const port = await freePort()
  const { intro, lines, assertClean } = introspector(t, config('client_secret_basic', { endpoint: `http://127.0.0.1:${port}/token/introspection?x=1` }))
  const started = Date.now()
  await expectUnavailable(t, intro.introspect('token-while-down'))
  t.ok(Date.now() - started < 2_000, `failed fast (${Date.now() - started} ms)`)
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 'warn', obj: { issuer: as.issuer, endpoint: `http://127.0.0.1:${port}/token/introspection`, reason: 'unreachable', detail: 'ECONNREFUSED' } })
  assertClean(['token-while-down'])
})

/** A TCP listener that accepts and never answers: a hung authorization server (oidc-provider cannot be made to hang). */
async function startBlackHole (t: Test): Promise<string> {
  const sockets = new Set<Socket>()
  const srv = createTcpServer((s) => { sockets.add(s); s.on('error', () => {}) })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => srv.close(resolve))
  })
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/introspect`
}

t.test('endpoint hanging past the timeout → 503 after timeoutMs', async (t) => {
  const endpoint = await startBlackHole(t)
  const { intro, lines } = introspector(t, config('client_secret_basic', { endpoint, timeoutMs: 300 }))
  const started = Date.now()
  const results = await Promise.allSettled([intro.introspect('hung-token'), intro.introspect('hung-token')])
  const elapsed = Date.now() - started
  t.ok(elapsed >= 250 && elapsed < 3_000, `gave up after about timeoutMs (${elapsed} ms)`)
  t.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof TemporarilyUnavailableError), 'both callers get 503')
  t.equal(intro.stats.calls, 1, 'the two callers shared one request')
  t.match(lines, [{ level: 'warn', obj: { reason: 'timeout' } }], 'one log line for the shared failure')
})

t.test('stop() aborts a lookup in flight (503, no log) and refuses new ones', async (t) => {
  const endpoint = await startBlackHole(t)
  const { intro, lines } = introspector(t, config('client_secret_basic', { endpoint, timeoutMs: 10_000 }))
  const pending = intro.introspect('token-at-shutdown')
  await new Promise((resolve) => setTimeout(resolve, 50))
  const started = Date.now()
  intro.stop()
  await expectUnavailable(t, pending)
  t.ok(Date.now() - started < 3_000, 'did not wait for the 10 s timeout')
  await expectUnavailable(t, intro.introspect('after-stop'))
  t.equal(intro.stats.calls, 1, 'no request after stop')
  t.same(lines, [], 'shutting down is not an endpoint failure')
})

/**
 * A broken introspection endpoint (oidc-provider never answers like this):
 * each request gets the answer registered for its path. Records what it received.
 */
async function startBrokenEndpoint (t: Test): Promise<{ url: (path: string) => string, seen: Array<{ method?: string, headers: IncomingMessage['headers'], body: string }> }> {
  const seen: Array<{ method?: string, headers: IncomingMessage['headers'], body: string }> = []
  const answers: Record<string, (res: ServerResponse) => void> = {
    '/500': (res) => { res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}') },
    '/502-html': (res) => { res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>') },
    '/not-json': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":tru') },
    '/html': (res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>') },
    '/array': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('[{"active":true}]') },
    '/active-string': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":"true","token_type":"Bearer"}') },
    '/no-active': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"token_type":"Bearer"}') },
    '/huge': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: true, token_type: 'Bearer', pad: 'x'.repeat(200_000) })) },
    '/redirect': (res) => { res.writeHead(307, { location: ENDPOINT }).end() },
    '/404': (res) => { res.writeHead(404).end() },
    '/400-invalid-request': (res) => { res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_request","error_description":"secret-looking text"}') },
    '/400-invalid-client': (res) => { res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}') },
    '/403': (res) => { res.writeHead(403).end() },
    '/active': (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"active":true,"token_type":"bearer","aud":"x"}') }
  }
  const srv: Server = createHttpServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      seen.push({ method: req.method, headers: req.headers, body })
      const answer = answers[(req.url ?? '').split('?')[0] ?? '']
      if (answer === undefined) res.writeHead(599).end()
      else answer(res)
    })
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    srv.closeAllConnections()
    await new Promise((resolve) => srv.close(resolve))
  })
  const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`
  return { url: (path) => origin + path, seen }
}

t.test('endpoint answers that are not a verdict → 503, one log line, not cached', async (t) => {
  const broken = await startBrokenEndpoint(t)
  const cases: Array<[path: string, reason: string, level: string]> = [
    ['/500', 'server_error', 'warn'],
    ['/502-html', 'server_error', 'warn'],
    ['/not-json', 'invalid_json', 'warn'],
    ['/html', 'invalid_json', 'warn'],
    ['/array', 'invalid_response', 'warn'],
    ['/active-string', 'invalid_response', 'warn'],
    ['/no-active', 'invalid_response', 'warn'],
    ['/huge', 'response_too_large', 'warn'],
    ['/redirect', 'unexpected_status', 'error'],
    ['/404', 'unexpected_status', 'error'],
    ['/400-invalid-request', 'rejected_request', 'error'],
    ['/400-invalid-client', 'client_auth_failed', 'error'],
    ['/403', 'client_auth_failed', 'error']
  ]
  for (const [path, reason, level] of cases) {
    await t.test(path, async (t) => {
      const { intro, lines, assertClean } = introspector(t, config('client_secret_basic', { endpoint: broken.url(path) }))
      const before = introspections()
      await expectUnavailable(t, intro.introspect('some-opaque-token'))
      await expectUnavailable(t, intro.introspect('some-opaque-token'))
      t.equal(intro.stats.calls, 2, 'not cached')
      t.equal(lines.length, 2, 'one line per failed lookup')
      t.match(lines[0], { level, msg: 'token introspection failed', obj: { issuer: as.issuer, endpoint: broken.url(path), reason } })
      t.equal(introspections(), before, 'a redirect is not followed')
      t.notOk(JSON.stringify(lines).includes('secret-looking'), 'no response text in the logs')
      assertClean(['some-opaque-token'])
    })
  }
})

t.test('the request: POST form with the hint, Accept JSON, RFC 6749 §2.3.1 client auth', async (t) => {
  const broken = await startBrokenEndpoint(t)
  const id = 'gw id:ü'
  const secret = 's3cr+t /%&=:'
  for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
    const { intro } = introspector(t, config(method, { endpoint: broken.url('/active'), clientId: id, clientSecret: secret }))
    const token = 'tok+en/with=odd&chars'
    t.match(await intro.introspect(token), { active: true, aud: 'x' }, 'lower-case bearer accepted')
    const req = broken.seen.at(-1)
    t.equal(req?.method, 'POST')
    t.equal(req?.headers['content-type'], 'application/x-www-form-urlencoded')
    t.equal(req?.headers.accept, 'application/json')
    const form = new URLSearchParams(req?.body)
    t.equal(form.get('token'), token)
    t.equal(form.get('token_type_hint'), 'access_token')
    if (method === 'client_secret_basic') {
      const auth = req?.headers.authorization ?? ''
      t.match(auth, /^Basic [A-Za-z0-9+/]+=*$/)
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8')
      const [encId = '', encSecret = ''] = decoded.split(':')
      t.equal(decoded.split(':').length, 2, 'the colons inside id and secret are encoded')
      const decode = (s: string): string => decodeURIComponent(s.replace(/\+/g, '%20'))
      t.equal(decode(encId), id)
      t.equal(decode(encSecret), secret)
      t.notOk(form.has('client_secret'), 'secret only in the header')
    } else {
      t.equal(req?.headers.authorization, undefined)
      t.equal(form.get('client_id'), id)
      t.equal(form.get('client_secret'), secret)
    }
  }
})

/*
 * Gateway level: real gateway (YAML through the real loader), real SDK
 * upstream, real oidc-provider ASes. /opaque trusts an opaque-only issuer
 * (client_secret_basic), /auto an `auto` issuer (JWTs locally, other tokens
 * introspected; client_secret_post), /down an opaque issuer whose AS is gone.
 */
t.test('gateway: opaque and auto issuers end to end', async (t) => {
  const as2 = await startAuthServer()
  const as3 = await startAuthServer()
  const as4 = await startAuthServer()
  const up = await startStatelessUpstream({ jsonResponse: true })
  const env = {
    AS1_SECRET: as.clients.gatewayBasic.secret,
    AS2_SECRET: as2.clients.gatewayPost.secret,
    AS3_SECRET: as3.clients.gatewayBasic.secret,
    AS4_SECRET: as4.clients.gatewayBasic.secret
  }
  const introspection = (a: typeof as, method: Method, secretEnv: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    endpoint: `${a.issuer}/token/introspection`,
    clientId: method === 'client_secret_basic' ? a.clients.gatewayBasic.id : a.clients.gatewayPost.id,
    clientSecret: { fromEnv: secretEnv },
    authMethod: method,
    ...extra
  })
  const gw = await startGateway((origin) => ({
    authorizationServers: [
      { issuer: as.issuer, tokenType: 'opaque', introspection: introspection(as, 'client_secret_basic', 'AS1_SECRET') },
      // Both token formats of as2 are for /auto: the JWT one has the route's resource as aud, the opaque one a second audience.
      // oidc-provider's introspection of a client_credentials token has no `sub` (RFC 7662 §2.2: optional):
      // the generic profile then takes client_id as the subject (RFC 9068 §2.2).
      {
        issuer: as2.issuer,
        tokenType: 'auto',
        audience: [`${origin}/auto`, `${origin}/auto-opaque`],
        introspection: introspection(as2, 'client_secret_post', 'AS2_SECRET')
      },
      { issuer: as3.issuer, tokenType: 'opaque', introspection: introspection(as3, 'client_secret_basic', 'AS3_SECRET') },
      { issuer: as4.issuer, tokenType: 'opaque', introspection: introspection(as4, 'client_secret_basic', 'AS4_SECRET', { cacheTtlSeconds: 1 }) }
    ],
    routes: [
      { path: '/opaque', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], issuers: [as.issuer] },
      { path: '/auto', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], issuers: [as2.issuer] },
      { path: '/down', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], issuers: [as3.issuer] },
      { path: '/short', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], issuers: [as4.issuer] }
    ]
  }), { env })
  t.teardown(async () => { await gw.close(); await up.close(); await as2.close(); await as3.close(); await as4.close() })

  as.registerResource({ url: `${gw.url}/opaque`, scope: 'mcp:tools', format: 'opaque' })
  as.registerResource({ url: `${gw.url}/elsewhere`, scope: 'mcp:tools', format: 'opaque' })
  as.registerResource({ url: `${gw.url}/opaque-jwt`, scope: 'mcp:tools' })
  as2.registerResource({ url: `${gw.url}/auto`, scope: 'mcp:tools' })
  as2.registerResource({ url: `${gw.url}/auto-opaque`, scope: 'mcp:tools', format: 'opaque' })
  as3.registerResource({ url: `${gw.url}/down`, scope: 'mcp:tools', format: 'opaque' })
  as4.registerResource({ url: `${gw.url}/short`, scope: 'mcp:tools', format: 'opaque' })

  const call = async (path: string, token: string): Promise<Response> =>
    await fetch(`${gw.url}${path}`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
  const tokens: string[] = []
  const keep = (...ts: string[]): void => { tokens.push(...ts) }

  await t.test('opaque token → 200, identity headers upstream, one introspection within the TTL', async (t) => {
    const user = await as.userTokens({ resource: `${gw.url}/opaque`, user: 'carol' })
    keep(user.accessToken, user.refreshToken)
    const before = introspections()
    const res = await call('/opaque', user.accessToken)
    t.equal(res.status, 200)
    t.match(await res.json(), { jsonrpc: '2.0', id: 1, result: { protocolVersion: '2025-06-18' } })
    const seen = up.requests.at(-1)
    t.equal(seen?.headers['x-forwarded-user'], 'carol')
    t.equal(seen?.headers['x-forwarded-client-id'], 'user-app')
    t.equal(seen?.headers['x-forwarded-scopes'], 'mcp:tools')
    t.equal(seen?.headers['x-forwarded-issuer'], as.issuer)
    t.equal(seen?.headers.authorization, undefined, 'the token is not forwarded')
    for (let i = 0; i < 3; i++) t.equal((await call('/opaque', user.accessToken)).status, 200)
    t.equal(introspections(), before + 1, 'the positive result is reused within its TTL (default 60 s)')
  })

  await t.test('a cached result ages out after cacheTtlSeconds: revocation then shows', async (t) => {
    const user = await as4.userTokens({ resource: `${gw.url}/short` })
    keep(user.accessToken, user.refreshToken)
    const before = as4.requestCount('/token/introspection')
    t.equal((await call('/short', user.accessToken)).status, 200)
    await as4.revokeToken(user.accessToken)
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    const after = await call('/short', user.accessToken)
    t.equal(after.status, 401, 'revoked, asked again after the 1 s TTL')
    t.match(after.headers.get('www-authenticate'), /error="invalid_token", error_description="The access token is not active"/)
    t.equal(as4.requestCount('/token/introspection'), before + 2)
  })

  const refusals: Array<[name: string, path: string, token: () => Promise<string>, description: string]> = [
    ['revoked opaque token', '/opaque', async () => { const tk = await as.clientCredentialsToken({ resource: `${gw.url}/opaque` }); await as.revokeToken(tk); return tk }, 'The access token is not active'],
    ['garbage', '/opaque', async () => 'not-a-real-token', 'The access token is not active'],
    ['opaque token for another resource (aud mismatch)', '/opaque', async () => await as.clientCredentialsToken({ resource: `${gw.url}/elsewhere` }), 'The access token was not issued for this resource'],
    ['refresh token', '/opaque', async () => (await as.userTokens({ resource: `${gw.url}/opaque` })).refreshToken, 'The token is not an access token'],
    ['JWT at an opaque-only issuer (introspection refuses JWTs)', '/opaque', async () => await as.clientCredentialsToken({ resource: `${gw.url}/opaque-jwt` }), 'The access token is malformed'],
    ['auto issuer: revoked opaque token', '/auto', async () => { const tk = await as2.clientCredentialsToken({ resource: `${gw.url}/auto-opaque` }); await as2.revokeToken(tk); return tk }, 'The access token is not active'],
    ['opaque token of another issuer\'s AS', '/auto', async () => await as.clientCredentialsToken({ resource: `${gw.url}/opaque` }), 'The access token is not active']
  ]
  for (const [name, path, make, description] of refusals) {
    await t.test(`${name} → 401 invalid_token`, async (t) => {
      const token = await make()
      keep(token)
      const res = await call(path, token)
      t.equal(res.status, 401)
      t.match(res.headers.get('www-authenticate'), `error="invalid_token", error_description="${description}"`)
      t.same(await res.json(), { error: 'invalid_token', error_description: description })
    })
  }

  await t.test('auto issuer: JWTs verified locally, opaque tokens introspected (client_secret_post)', async (t) => {
    const jwt = await as2.clientCredentialsToken({ resource: `${gw.url}/auto` })
    const opaque = await as2.clientCredentialsToken({ resource: `${gw.url}/auto-opaque` })
    keep(jwt, opaque)
    t.equal(jwt.split('.').length, 3)
    const before = as2.requestCount('/token/introspection')
    t.equal((await call('/auto', jwt)).status, 200)
    t.equal(as2.requestCount('/token/introspection'), before, 'no introspection for a JWT')
    t.equal((await call('/auto', opaque)).status, 200)
    t.equal(up.requests.at(-1)?.headers['x-forwarded-client-id'], as2.clients.m2m.id)
    t.equal(as2.requestCount('/token/introspection'), before + 1, 'one introspection for the opaque token')
    t.equal((await call('/auto', opaque)).status, 200)
    t.equal(as2.requestCount('/token/introspection'), before + 1, 'then cached')
  })

  await t.test('introspection endpoint down → 503 with Retry-After, the gateway keeps serving', async (t) => {
    const token = await as3.clientCredentialsToken({ resource: `${gw.url}/down` })
    keep(token)
    await as3.close()
    const started = Date.now()
    const res = await call('/down', token)
    t.ok(Date.now() - started < 3_000, 'fails fast')
    t.equal(res.status, 503)
    t.equal(res.headers.get('retry-after'), '5')
    t.same(await res.json(), { error: 'temporarily_unavailable', error_description: 'The authorization server cannot be reached to validate the token; retry later' })
    t.equal((await call('/down', token)).status, 503, 'not cached: asked again, still down')
    const lines = gw.logs.filter((l) => l.includes('token introspection failed') && l.includes(as3.issuer))
    t.equal(lines.length, 2, 'one log line per failed lookup')
    t.match(JSON.parse(lines[0] ?? '{}'), { level: 40, issuer: as3.issuer, endpoint: `${as3.issuer}/token/introspection`, reason: 'unreachable' })
    t.equal((await fetch(`${gw.url}/healthz`)).status, 200, 'alive')
    const other = await as.userTokens({ resource: `${gw.url}/opaque` })
    keep(other.accessToken, other.refreshToken)
    t.equal((await call('/opaque', other.accessToken)).status, 200, 'other routes unaffected')
  })

  await t.test('no token or secret in the gateway logs', async (t) => {
    t.ok(tokens.length > 10, `${tokens.length} tokens used`)
    const text = gw.logs.join('\n')
    for (const s of [...tokens, ...Object.values(env)]) t.notOk(text.includes(s), 'not logged')
  })
})
