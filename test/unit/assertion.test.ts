/**
 * The identity assertion's parts without sockets: key parsing and checks,
 * thumbprints, the public JWKS, the claims, signing and verifying with jose
 * for every supported algorithm, assertion reuse, the config normalisation of
 * identityAssertion / upstreamAuth / signingKeys, header stripping, and the
 * upstream-credential helpers (stale times, combining with the assertion).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK } from 'jose'
import type { Principal } from '../../src/auth/principal.js'
import type { IdentityAssertionConfig, RouteConfig } from '../../src/config/types.js'
import { parseConfig } from '../../src/config/load.js'
import { ASSERTION_JWT_TYPE } from '../../src/config/defaults.js'
import { generateSigningKey, signingKeysFrom } from '../../src/identity/keys.js'
import { parsePrivateKey, thumbprint } from '../../src/config/signing-key.js'
import { assertionClaims, createAssertionIssuer, signAssertion } from '../../src/identity/assertion.js'
import { compileRequestHeaders } from '../../src/proxy/headers.js'
import { compileUpstreamExtras, createUpstreamCredential, staleAt } from '../../src/proxy/upstream-auth.js'

function principal (over: Partial<Principal> = {}): Principal {
  return {
    subject: 'alice',
    clientId: 'app-1',
    issuer: 'https://as.example.com',
    scopes: new Set(['mcp:tools', 'mcp:read']),
    scopeString: 'mcp:tools mcp:read',
    roles: new Set(),
    roleString: '',
    claims: {},
    expiresAtMs: Date.now() + 3_600_000,
    ...over
  }
}

const CFG: IdentityAssertionConfig = { audience: 'https://upstream.example.com', ttlSeconds: 30, header: 'x-gateway-assertion', reuse: true }
const pem = (k: KeyObject, type: 'pkcs8' | 'sec1' | 'pkcs1'): Buffer => Buffer.from(k.export({ format: 'pem', type }) as string)
const jwk = (k: KeyObject, extra: Record<string, unknown> = {}): Buffer => Buffer.from(JSON.stringify({ ...k.export({ format: 'jwk' }), ...extra }))

const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 })
const ed = generateKeyPairSync('ed25519')

t.test('key files: what is accepted for which algorithm, and why not', async (t) => {
  const encrypted = Buffer.from(ec256.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string)
  const rows: Array<{ name: string, bytes: Buffer, alg: string, ok?: true, kid?: string, problem?: RegExp }> = [
    { name: 'P-256 PKCS#8 PEM for ES256', bytes: pem(ec256.privateKey, 'pkcs8'), alg: 'ES256', ok: true },
    { name: 'P-256 SEC1 PEM for ES256', bytes: pem(ec256.privateKey, 'sec1'), alg: 'ES256', ok: true },
    { name: 'P-256 JWK with kid for ES256', bytes: jwk(ec256.privateKey, { kid: 'mine', alg: 'ES256', use: 'sig' }), alg: 'ES256', ok: true, kid: 'mine' },
    { name: 'P-384 for ES384', bytes: pem(ec384.privateKey, 'pkcs8'), alg: 'ES384', ok: true },
    { name: 'RSA 2048 PKCS#1 for RS256', bytes: pem(rsa2048.privateKey, 'pkcs1'), alg: 'RS256', ok: true },
    { name: 'RSA 2048 for PS256', bytes: pem(rsa2048.privateKey, 'pkcs8'), alg: 'PS256', ok: true },
    { name: 'Ed25519 for EdDSA', bytes: pem(ed.privateKey, 'pkcs8'), alg: 'EdDSA', ok: true },
    { name: 'P-384 for ES256', bytes: pem(ec384.privateKey, 'pkcs8'), alg: 'ES256', problem: /ES256 needs an EC P-256 key, this is an EC P-384 key/ },
    { name: 'RSA for ES256', bytes: pem(rsa2048.privateKey, 'pkcs8'), alg: 'ES256', problem: /this is an RSA key/ },
    { name: 'RSA 1024 for RS256', bytes: pem(rsa1024.privateKey, 'pkcs8'), alg: 'RS256', problem: /1024 bits, at least 2048/ },
    { name: 'EC for EdDSA', bytes: pem(ec256.privateKey, 'pkcs8'), alg: 'EdDSA', problem: /EdDSA needs an Ed25519 key/ },
    { name: 'a public key PEM', bytes: Buffer.from(ec256.publicKey.export({ format: 'pem', type: 'spki' }) as string), alg: 'ES256', problem: /certificate or public key/ },
    { name: 'an encrypted PEM', bytes: encrypted, alg: 'ES256', problem: /encrypted private key/ },
    { name: 'garbage', bytes: Buffer.from('hello'), alg: 'ES256', problem: /not a private key/ },
    { name: 'a public JWK', bytes: Buffer.from(JSON.stringify(ec256.publicKey.export({ format: 'jwk' }))), alg: 'ES256', problem: /public JWK/ },
    { name: 'a JWK whose alg differs', bytes: jwk(ec256.privateKey, { alg: 'ES384' }), alg: 'ES256', problem: /must match signingAlgorithm ES256/ },
    { name: 'a JWK for encryption', bytes: jwk(ec256.privateKey, { use: 'enc' }), alg: 'ES256', problem: /signing key/ },
    { name: 'a JWK Set', bytes: Buffer.from('{"keys":[]}'), alg: 'ES256', problem: /public JWK|JWK object/ },
    { name: 'broken JSON', bytes: Buffer.from('{"kty":'), alg: 'ES256', problem: /not valid JSON/ }
  ]
  for (const r of rows) {
    const got = parsePrivateKey(r.bytes, r.alg)
    if (r.ok === true) {
      t.notOk('problem' in got, `${r.name}: accepted`)
      if (!('problem' in got)) t.equal(got.kid, r.kid, `${r.name}: kid ${r.kid ?? 'from config or thumbprint'}`)
    } else {
      t.match('problem' in got ? got.problem : '', r.problem!, `${r.name}: refused`)
      t.notOk(JSON.stringify(got).includes('"d"'), `${r.name}: the message carries no key material`)
    }
  }
})

t.test('thumbprint is RFC 7638 (the same as jose computes), and the JWKS is public only', async (t) => {
  for (const k of [ec256.privateKey, rsa2048.privateKey, ed.privateKey]) {
    t.equal(thumbprint(k), await calculateJwkThumbprint(k.export({ format: 'jwk' }) as JWK), `${k.asymmetricKeyType ?? ''} thumbprint`)
  }
  const keys = signingKeysFrom('ES256', [{ kid: 'a', privateKey: ec256.privateKey }, generateSigningKey('ES256')], false)
  const set = JSON.parse(keys.jwksJson) as { keys: Array<Record<string, string>> }
  t.equal(set.keys.length, 2)
  t.equal(keys.current.kid, 'a', 'the first key signs')
  for (const k of set.keys) {
    t.same(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    t.equal(k.use, 'sig')
  }
  const generated = generateSigningKey('ES256')
  t.equal(generated.kid, thumbprint(generated.privateKey), 'a generated key is named by its thumbprint')
  t.throws(() => signingKeysFrom('ES256', [], false))
})

t.test('claims: every field, exp capped at the caller token\'s expiry, client_id only when known', async (t) => {
  const now = 1_700_000_000_500
  const c = assertionClaims(principal(), CFG, 'https://gw.example.com', now)
  t.match(c, { iss: 'https://gw.example.com', aud: 'https://upstream.example.com', sub: 'alice', client_id: 'app-1', scope: 'mcp:tools mcp:read', idp: 'https://as.example.com', iat: 1_700_000_000, exp: 1_700_000_030 })
  t.match(c.jti, /^[0-9a-f-]{36}$/)
  t.not(assertionClaims(principal(), CFG, 'x', now).jti, c.jti, 'a fresh jti each time')
  const soon = assertionClaims(principal({ expiresAtMs: now + 10_000 }), CFG, 'x', now)
  t.equal(soon.exp, 1_700_000_010, 'never outlives the caller\'s token')
  const noClient = assertionClaims(principal({ clientId: undefined, scopeString: '' }), CFG, 'x', now)
  t.notOk('client_id' in noClient, 'no client_id claim when the token names no client')
  t.equal(noClient.scope, '')
})

t.test('signing: every supported algorithm verifies with jose against the published JWKS', async (t) => {
  for (const alg of ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA']) {
    const keys = signingKeysFrom(alg, [generateSigningKey(alg)], true)
    const jwt = await signAssertion(assertionClaims(principal(), CFG, 'https://gw.example.com', Date.now()), keys)
    const set = createLocalJWKSet(JSON.parse(keys.jwksJson) as { keys: JWK[] })
    const { payload, protectedHeader } = await jwtVerify(jwt, set, { issuer: 'https://gw.example.com', audience: CFG.audience, typ: ASSERTION_JWT_TYPE, algorithms: [alg] })
    t.same(protectedHeader, { alg, kid: keys.current.kid, typ: ASSERTION_JWT_TYPE }, `${alg}: header`)
    t.equal(payload.sub, 'alice', `${alg}: verifies`)
  }
})

t.test('reuse: one assertion per principal object for half its life; never shared; off means per request', async (t) => {
  const keys = signingKeysFrom('ES256', [generateSigningKey('ES256')], true)
  const issuer = createAssertionIssuer(CFG, keys, 'https://gw.example.com')
  const p = principal()
  const now = Date.now()
  const first = await issuer.get(p, now)
  const again = issuer.get(p, now + 14_000)
  t.type(again, 'string', 'a reused assertion is returned synchronously (no promise)')
  t.equal(again, first, 'reused within half its 30 s life')
  const later = await issuer.get(p, now + 15_500)
  t.not(decodeJwt(later).jti, decodeJwt(first).jti, 'a new one after half its life')
  const twin = principal()
  t.not(decodeJwt(await issuer.get(twin, now)).jti, decodeJwt(first).jti, 'another principal object (another token) never shares it')
  const pending = [issuer.get(principal({ subject: 'carol' }), now)]
  const c = principal({ subject: 'dave' })
  const a1 = issuer.get(c, now)
  const a2 = issuer.get(c, now)
  t.equal(a1, a2, 'concurrent misses of one principal share one signing')
  await Promise.all([...pending, a1])

  const fresh = createAssertionIssuer({ ...CFG, reuse: false }, keys, 'https://gw.example.com')
  const jtis = new Set<unknown>()
  for (let i = 0; i < 5; i++) {
    const v = fresh.get(p, now)
    t.type(v, Promise, 'reuse false: signed per request')
    jtis.add(decodeJwt(await v).jti)
  }
  t.equal(jtis.size, 5, 'five requests, five jti')
})

t.test('config: defaults, normalisation and the generated-key warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-unit-assert-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'k.pem'), pem(ec256.privateKey, 'pkcs8'), { mode: 0o600 })
  writeFileSync(join(dir, 'open.pem'), pem(ec256.privateKey, 'pkcs8'))
  chmodSync(join(dir, 'open.pem'), 0o644)
  const base = `publicUrl: https://gw.example.com
authorizationServers:
  - issuer: https://as.example.com
routes:
  - path: /a
    upstream: https://up.example.com:8443/base
    scopes: [mcp]
    identityAssertion: {}
  - path: /b
    upstream: http://127.0.0.1:3001
    scopes: [mcp]
    identityAssertion: { audience: urn:b, ttlSeconds: 60, header: X-Identity, reuse: false }
    upstreamAuth: { type: clientCredentials, name: X-Upstream-Token, tokenEndpoint: https://as.example.com/token, clientId: gw, clientSecret: { fromEnv: S }, scope: [up:read, up:write, up:read], audience: api }
  - path: /c
    upstream: http://127.0.0.1:3001
    scopes: [mcp]
    upstreamAuth: { type: header, value: { fromEnv: KEY } }
`
  const generated = parseConfig(base, { env: { S: 'secret', KEY: 'ApiKey abc' }, baseDir: dir })
  const [a, b, c] = generated.routes as [RouteConfig, RouteConfig, RouteConfig]
  t.same(a.identityAssertion, { audience: 'https://up.example.com:8443', ttlSeconds: 30, header: 'x-gateway-assertion', reuse: false }, 'defaults: aud is the upstream origin, one assertion per request')
  t.same(a.upstreamAuth, { type: 'none' }, 'upstreamAuth defaults to none')
  t.same(b.identityAssertion, { audience: 'urn:b', ttlSeconds: 60, header: 'x-identity', reuse: false })
  t.same(b.upstreamAuth, { type: 'clientCredentials', header: 'x-upstream-token', tokenEndpoint: 'https://as.example.com/token', clientId: 'gw', clientSecret: 'secret', authMethod: 'client_secret_basic', scope: 'up:read up:write', resource: undefined, audience: 'api', timeoutMs: 5000 })
  t.same(c.upstreamAuth, { type: 'header', header: 'authorization', value: 'ApiKey abc' })
  t.same(generated.signing, { algorithm: 'ES256', keys: [] }, 'no keys configured')
  t.ok(generated.warnings.some((w) => /^signingKeys is not set: routes \/a, \/b sign identity assertions with a ES256 key generated at start: replicas will disagree/.test(w)), 'warned')

  const withKeys = parseConfig(`${base}signingKeys: [{ file: k.pem, kid: one }, { file: open.pem }]\n`, { env: { S: 'secret', KEY: 'k' }, baseDir: dir })
  t.same(withKeys.signing.keys.map((k) => k.kid), ['one', thumbprint(ec256.privateKey)], 'kid from config, else the thumbprint')
  t.notOk(withKeys.warnings.some((w) => w.startsWith('signingKeys is not set')), 'no generated-key warning')
  t.ok(withKeys.warnings.some((w) => w.includes('open.pem is readable by group or others')), 'a key file readable by others is warned about')
  const plain = parseConfig(`publicUrl: https://gw.example.com\nauthorizationServers: [{ issuer: https://as.example.com }]\nroutes: [{ path: /p, upstream: http://127.0.0.1:1, scopes: [x] }]\n`, { env: {} })
  t.same(plain.signing, { algorithm: 'ES256', keys: [] })
  t.equal(plain.routes[0]!.identityAssertion, undefined)
})

t.test('client-sent copies of the headers the gateway sets are stripped', async (t) => {
  const route = (over: Partial<RouteConfig>): RouteConfig => ({
    ...parseConfig('publicUrl: https://gw.example.com\nauthorizationServers: [{ issuer: https://as.example.com }]\nroutes: [{ path: /p, upstream: http://127.0.0.1:1, scopes: [x] }]\n', { env: {} }).routes[0]!,
    ...over
  })
  const sent = ['Host', 'gw', 'X-Gateway-Assertion', 'forged', 'x-identity', 'forged', 'X-Api-Key', 'forged', 'Authorization', 'Bearer client', 'X-Kept', 'yes']
  const rows: Array<{ name: string, over: Partial<RouteConfig>, absent: string[] }> = [
    { name: 'no assertion, no upstream auth', over: {}, absent: ['x-gateway-assertion', 'authorization'] },
    { name: 'renamed assertion header', over: { identityAssertion: { ...CFG, header: 'x-identity' } }, absent: ['x-gateway-assertion', 'x-identity', 'authorization'] },
    { name: 'upstream credential header', over: { upstreamAuth: { type: 'header', header: 'x-api-key', value: 'v' } }, absent: ['x-gateway-assertion', 'x-api-key', 'authorization'] }
  ]
  for (const r of rows) {
    const out = compileRequestHeaders(route(r.over), 'https://gw.example.com').raw(sent, principal(), '10.0.0.1')
    const names = out.filter((_v, i) => i % 2 === 0)
    for (const h of r.absent) t.notOk(names.includes(h), `${r.name}: ${h} removed`)
    t.ok(names.includes('x-kept'), `${r.name}: other headers pass`)
  }
})

t.test('upstream credentials: stale times, and the per-request step combining them with the assertion', async (t) => {
  const rows: Array<[lifetimeMs: number, staleAfterMs: number]> = [
    [3_600_000, 3_570_000], // margin 30 s
    [60_000, 30_000], // half of 60 s = margin
    [4_000, 2_000], // half its life
    [1_000, 500]
  ]
  for (const [life, after] of rows) t.equal(staleAt(1000, life) - 1000, after, `a ${life} ms token is replaced after ${after} ms`)

  const log = { warn: () => {}, error: () => {} }
  t.equal(compileUpstreamExtras(undefined, undefined), undefined, 'no assertion, no credential: no per-request step at all')
  t.equal(createUpstreamCredential({ type: 'none' }, '/r', log), undefined)
  const header = createUpstreamCredential({ type: 'header', header: 'x-api-key', value: 'k' }, '/r', log)!
  const onlyHeader = compileUpstreamExtras(undefined, header)!
  t.same(onlyHeader(principal(), [], Date.now()), ['x-api-key', 'k'], 'a static header is added synchronously')

  const keys = signingKeysFrom('ES256', [generateSigningKey('ES256')], true)
  const both = compileUpstreamExtras(createAssertionIssuer(CFG, keys, 'https://gw.example.com'), header)!
  const p = principal()
  const first = both(p, [], Date.now())
  t.type(first, Promise, 'a first assertion is signed asynchronously')
  const got = await first
  t.same([got[0], got[2], got[3]], ['x-gateway-assertion', 'x-api-key', 'k'])
  t.equal(decodeProtectedHeader(got[1]!).typ, ASSERTION_JWT_TYPE)
  t.same(both(p, [], Date.now()), got, 'then both come synchronously')
})
