/**
 * Issue 5 item 2, the signed identity assertion, end to end: a real gateway
 * signs, a plain node:http upstream verifies every assertion it receives with
 * jose's createRemoteJWKSet pointed at the gateway's published JWKS (real
 * HTTP), and answers with what it found. Tokens come from the real
 * oidc-provider AS. Covers the claims, jti, reuse, key rotation, the generated
 * key, and client-sent assertion headers.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose'
import { startAuthServer } from '../helpers/as.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY, type RunningGateway } from '../helpers/gateway.js'
import { ASSERTION_JWT_TYPE } from '../../src/config/defaults.js'
import { thumbprint } from '../../src/config/signing-key.js'

/** What the upstream saw and concluded about one request. */
interface Seen {
  url: string
  headers: IncomingHttpHeaders
  /** Verification outcome of the assertion header named by the route, or undefined when there was none. */
  verified?: { ok: true, payload: JWTPayload, header: { alg: string, kid?: string, typ?: string } } | { ok: false, code: string }
}

/**
 * An upstream that trusts nothing but the assertion: each request's assertion (the header
 * `x-gateway-assertion`, or `x-identity` under /b) is verified with the JWKS of the gateway
 * set by {@link trustGateway}, the way a real upstream would do it.
 */
async function startVerifyingUpstream (): Promise<{ origin: string, seen: Seen[], trustGateway: (url: string) => void, close: () => Promise<void> }> {
  const seen: Seen[] = []
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined
  let issuer = ''
  let origin = ''
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const entry: Seen = { url: req.url ?? '', headers: req.headers }
      seen.push(entry)
      const b = entry.url.startsWith('/b')
      const jwt = req.headers[b ? 'x-identity' : 'x-gateway-assertion']
      const done = (): void => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }))
      }
      if (typeof jwt !== 'string' || jwks === undefined) { done(); return }
      jwtVerify(jwt, jwks, { issuer, audience: b ? 'urn:upstream:b' : origin, typ: ASSERTION_JWT_TYPE, algorithms: ['ES256'] }).then(
        ({ payload, protectedHeader }) => { entry.verified = { ok: true, payload, header: protectedHeader as { alg: string } }; done() },
        (err: { code?: string }) => { entry.verified = { ok: false, code: err.code ?? 'error' }; done() }
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    origin,
    seen,
    trustGateway: (url) => { issuer = url; jwks = createRemoteJWKSet(new URL(`${url}/.well-known/jwks.json`)) },
    close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'gw-assertion-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
/** Two P-256 keys: A as PKCS#8 PEM, B as a private JWK with its own kid. */
const keyA = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const keyB = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const fileA = join(dir, 'a.pem')
const fileB = join(dir, 'b.jwk')
writeFileSync(fileA, keyA.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
writeFileSync(fileB, JSON.stringify({ ...keyB.export({ format: 'jwk' }), kid: 'key-b' }), { mode: 0o600 })
const kidA = thumbprint(keyA)

const as = await startAuthServer()
const up = await startVerifyingUpstream()
t.teardown(async () => { await up.close(); await as.close() })

const routes = (origin: string): Array<Record<string, unknown>> => [
  { path: '/a', upstream: `${up.origin}/a`, scopes: ['mcp:tools'], identityAssertion: { reuse: true } },
  { path: '/b', upstream: `${up.origin}/b`, scopes: ['mcp:tools'], identityAssertion: { audience: 'urn:upstream:b', ttlSeconds: 60, header: 'X-Identity', reuse: false } },
  { path: '/plain', upstream: `${up.origin}/plain`, scopes: ['mcp:tools'] },
  { path: '/other', upstream: `${origin.replace(/:\d+$/, ':1')}/never`, scopes: ['mcp:tools'] }
]

async function gatewayWith (signingKeys: Array<Record<string, unknown>> | undefined): Promise<RunningGateway> {
  const gw = await startGateway((origin) => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: routes(origin).slice(0, 3),
    ...(signingKeys !== undefined ? { signingKeys } : {})
  }), { env: {} })
  for (const p of ['/a', '/b', '/plain']) as.registerResource({ url: gw.url + p, scope: 'mcp:tools' })
  return gw
}

/** POST through the gateway and return what the upstream saw for it. */
async function call (gw: RunningGateway, path: string, token: string, extra: Record<string, string> = {}): Promise<Seen> {
  const before = up.seen.length
  const res = await fetch(gw.url + path, { method: 'POST', headers: mcpHeaders(token, extra), body: INITIALIZE_BODY })
  t.equal(res.status, 200, `POST ${path} reached the upstream`)
  await res.arrayBuffer()
  t.equal(up.seen.length, before + 1)
  return up.seen[up.seen.length - 1]!
}

const gw = await gatewayWith([{ file: fileA }, { file: fileB }])
t.teardown(async () => { await gw.close() })
up.trustGateway(gw.url)

t.test('the upstream verifies the assertion against the published JWKS, with every claim', async (t) => {
  const { accessToken } = await as.userTokens({ resource: gw.url + '/a', user: 'alice' })
  const before = Math.floor(Date.now() / 1000)
  const seen = await call(gw, '/a', accessToken)
  const v = seen.verified
  if (v === undefined || !v.ok) throw new Error(`not verified: ${JSON.stringify(v)}`)
  t.same(v.header, { alg: 'ES256', kid: kidA, typ: ASSERTION_JWT_TYPE }, 'signed by the first key, explicitly typed')
  const p = v.payload
  t.equal(p.iss, gw.url, 'iss is the publicUrl')
  t.equal(p.aud, up.origin, 'aud defaults to the upstream origin')
  t.equal(p.sub, 'alice')
  t.equal(p.client_id, 'user-app')
  t.equal(p.scope, 'mcp:tools')
  t.equal(p.idp, as.issuer, 'idp is the issuer of the caller\'s token')
  t.ok(p.iat! >= before - 1 && p.iat! <= before + 2, 'iat is now')
  t.equal(p.exp! - p.iat!, 30, 'default lifetime 30 s')
  t.match(p.jti, /^[0-9a-f-]{36}$/, 'random jti')
  t.equal(seen.headers.authorization, undefined, 'the client token is not forwarded')
  t.equal(seen.headers['x-forwarded-user'], 'alice', 'identity headers are still sent beside it')
})

t.test('jti: a fresh assertion per request with reuse false; one per principal within half its life with reuse', async (t) => {
  const m2m = await as.clientCredentialsToken({ resource: gw.url + '/b', scope: 'mcp:tools' })
  const b: Seen[] = []
  for (let i = 0; i < 3; i++) b.push(await call(gw, '/b', m2m))
  const bJtis = b.map((s) => (s.verified as { payload: JWTPayload }).payload.jti)
  t.equal(new Set(bJtis).size, 3, 'reuse: false: three requests, three jti')
  for (const s of b) {
    const p = (s.verified as { ok: true, payload: JWTPayload }).payload
    t.equal(p.aud, 'urn:upstream:b', 'configured audience')
    t.equal(p.exp! - p.iat!, 60, 'configured lifetime, the maximum')
    t.equal(s.headers['x-gateway-assertion'], undefined, 'only the configured header carries it')
  }

  const t1 = await as.clientCredentialsToken({ resource: gw.url + '/a', scope: 'mcp:tools' })
  const t2 = await as.clientCredentialsToken({ resource: gw.url + '/a', scope: 'mcp:tools' })
  const a1 = await call(gw, '/a', t1)
  const a2 = await call(gw, '/a', t1)
  const a3 = await call(gw, '/a', t2)
  const jti = (s: Seen): unknown => (s.verified as { payload: JWTPayload }).payload.jti
  t.equal(a1.headers['x-gateway-assertion'], a2.headers['x-gateway-assertion'], 'the same token reuses its assertion')
  t.not(jti(a3), jti(a1), 'another token (even of the same client) gets its own assertion')
  const user = await as.userTokens({ resource: gw.url + '/a', user: 'bob' })
  const a4 = await call(gw, '/a', user.accessToken)
  t.equal((a4.verified as { payload: JWTPayload }).payload.sub, 'bob', 'different principals never share one')
  t.not(jti(a4), jti(a1))
})

t.test('/.well-known/jwks.json publishes every key: kid, alg, use, CORS, cache, no private members', async (t) => {
  const res = await fetch(`${gw.url}/.well-known/jwks.json`)
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/jwk-set+json')
  t.equal(res.headers.get('access-control-allow-origin'), '*')
  t.equal(res.headers.get('cache-control'), 'public, max-age=300')
  const { keys } = await res.json() as { keys: Array<Record<string, string>> }
  t.same(keys.map((k) => k.kid), [kidA, 'key-b'], 'both keys, in order; the JWK file\'s own kid is kept')
  for (const k of keys) {
    t.match(k, { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
    t.same(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'], 'public members only')
  }
  const pre = await fetch(`${gw.url}/.well-known/jwks.json`, { method: 'OPTIONS' })
  t.equal(pre.status, 204)
  t.equal(pre.headers.get('access-control-allow-origin'), '*')
  const post = await fetch(`${gw.url}/.well-known/jwks.json`, { method: 'POST' })
  t.equal(post.status, 405)
})

t.test('a client-sent assertion header never reaches the upstream', async (t) => {
  const token = await as.clientCredentialsToken({ resource: gw.url + '/plain', scope: 'mcp:tools' })
  const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'
  const cases: Array<{ name: string, path: string, headers: Record<string, string>, expect: { [h: string]: 'absent' | 'gateway' } }> = [
    { name: 'route without assertion', path: '/plain', headers: { 'X-Gateway-Assertion': forged }, expect: { 'x-gateway-assertion': 'absent' } },
    { name: 'default header, lower case', path: '/a', headers: { 'x-gateway-assertion': forged }, expect: { 'x-gateway-assertion': 'gateway' } },
    { name: 'renamed header route: both names', path: '/b', headers: { 'X-Gateway-Assertion': forged, 'X-Identity': forged }, expect: { 'x-gateway-assertion': 'absent', 'x-identity': 'gateway' } }
  ]
  for (const c of cases) {
    const tok = c.path === '/plain' ? token : await as.clientCredentialsToken({ resource: gw.url + c.path, scope: 'mcp:tools' })
    const seen = await call(gw, c.path, tok, c.headers)
    for (const [h, want] of Object.entries(c.expect)) {
      if (want === 'absent') t.equal(seen.headers[h], undefined, `${c.name}: ${h} stripped`)
      else {
        t.not(seen.headers[h], forged, `${c.name}: ${h} is not the client's`)
        t.equal(seen.verified?.ok, true, `${c.name}: ${h} is the gateway's, and verifies`)
      }
    }
  }
  // Two header lines at once, written on a raw socket (fetch would join them).
  const tok = await as.clientCredentialsToken({ resource: gw.url + '/a', scope: 'mcp:tools' })
  const before = up.seen.length
  const status = await new Promise<number>((resolve, reject) => {
    const sock = connect(Number(new URL(gw.url).port), '127.0.0.1', () => {
      sock.write(`POST /a HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
        `Authorization: Bearer ${tok}\r\nX-Gateway-Assertion: ${forged}\r\nx-gateway-assertion: ${forged}\r\nContent-Length: ${Buffer.byteLength(INITIALIZE_BODY)}\r\nConnection: close\r\n\r\n${INITIALIZE_BODY}`)
    })
    let head = ''
    sock.on('data', (c: Buffer) => { head += c.toString('latin1') })
    sock.on('end', () => { resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)) })
    sock.on('error', reject)
  })
  t.equal(status, 200)
  const seen = up.seen[before]!
  t.equal(typeof seen.headers['x-gateway-assertion'], 'string', 'one header value, not a list')
  t.equal(seen.verified?.ok, true, 'and it is the gateway\'s')
})

t.test('key rotation: the first key signs, every key is published, old assertions verify after a swap', async (t) => {
  const token = await as.clientCredentialsToken({ resource: gw.url + '/a', scope: 'mcp:tools' })
  const old = (await call(gw, '/a', token)).headers['x-gateway-assertion'] as string
  t.equal(decodeProtectedHeader(old).kid, kidA)

  // A restart with the keys swapped: B signs now, A is still published.
  const swapped = await gatewayWith([{ file: fileB }, { file: fileA }])
  t.teardown(async () => { await swapped.close() })
  const token2 = await as.clientCredentialsToken({ resource: swapped.url + '/a', scope: 'mcp:tools' })
  const res = await fetch(swapped.url + '/a', { method: 'POST', headers: mcpHeaders(token2), body: INITIALIZE_BODY })
  t.equal(res.status, 200)
  await res.arrayBuffer()
  const fresh = up.seen[up.seen.length - 1]!.headers['x-gateway-assertion'] as string
  t.equal(decodeProtectedHeader(fresh).kid, 'key-b', 'the new first key signs')
  const jwks = createRemoteJWKSet(new URL(`${swapped.url}/.well-known/jwks.json`))
  // The old gateway's publicUrl is its own origin, so iss differs here by construction; the key is what is checked.
  const verified = await jwtVerify(old, jwks, { issuer: gw.url, audience: up.origin, typ: ASSERTION_JWT_TYPE })
  t.equal(verified.payload.sub, as.clients.m2m.id, 'an assertion signed before the swap verifies against the new JWKS')
  await jwtVerify(fresh, jwks, { issuer: swapped.url, audience: up.origin, typ: ASSERTION_JWT_TYPE })

  // Once A is retired (no longer listed), its assertions stop verifying.
  const retired = await gatewayWith([{ file: fileB }])
  t.teardown(async () => { await retired.close() })
  await t.rejects(jwtVerify(old, createRemoteJWKSet(new URL(`${retired.url}/.well-known/jwks.json`)), { issuer: gw.url, audience: up.origin }), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
})

t.test('without signingKeys: a generated ES256 key, a startup warning, and replicas that disagree', async (t) => {
  const one = await gatewayWith(undefined)
  const two = await gatewayWith(undefined)
  t.teardown(async () => { await one.close(); await two.close() })
  const warning = one.config.warnings.find((w) => w.startsWith('signingKeys is not set'))
  t.ok(warning, 'config.warnings names the generated key')
  t.match(warning, /replicas will disagree/)
  t.ok(one.logs.some((l) => l.includes('risky configuration') && l.includes('signingKeys is not set')), 'printed at startup')
  const { keys } = await (await fetch(`${one.url}/.well-known/jwks.json`)).json() as { keys: Array<Record<string, string>> }
  t.equal(keys.length, 1)
  t.match(keys[0], { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })

  const token = await as.clientCredentialsToken({ resource: one.url + '/a', scope: 'mcp:tools' })
  const res = await fetch(one.url + '/a', { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
  await res.arrayBuffer()
  const jwt = up.seen[up.seen.length - 1]!.headers['x-gateway-assertion'] as string
  t.equal(decodeProtectedHeader(jwt).kid, keys[0]!.kid)
  await jwtVerify(jwt, createRemoteJWKSet(new URL(`${one.url}/.well-known/jwks.json`)), { issuer: one.url, audience: up.origin })
  await t.rejects(jwtVerify(jwt, createRemoteJWKSet(new URL(`${two.url}/.well-known/jwks.json`)), { issuer: one.url, audience: up.origin }), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'another replica cannot vouch for it')
  t.equal(decodeJwt(jwt).iss, one.url)
})

t.test('no route signs and no keys are configured: no JWKS is served', async (t) => {
  const plain = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/plain', upstream: `${up.origin}/plain`, scopes: ['mcp:tools'] }]
  }))
  t.teardown(async () => { await plain.close() })
  t.equal((await fetch(`${plain.url}/.well-known/jwks.json`)).status, 404)
  t.notOk(plain.config.warnings.some((w) => w.startsWith('signingKeys')), 'and no warning')
})
