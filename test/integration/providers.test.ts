/**
 * Issue 4 items 1 and 4 end to end: for every provider profile, a static issuer
 * shaped like the provider (issuer string, JWKS key shape, JWS header) signs the
 * provider's example token (test/fixtures/providers), and a real gateway
 * configured with `profile:` in YAML admits it to a real SDK upstream with the
 * mapped identity headers, or refuses each rejected variant with the right
 * WWW-Authenticate error. Then shared-secret (HS256) issuers and the HS/RS
 * confusion attack both ways, and a drupal issuer that accepts tokens without
 * `iss` only when its own keys signed them.
 *
 * The cloud providers cannot run here; the static issuer serving their token
 * and key shapes is the stand-in.
 */
import t from 'tap'
import { InvalidTokenError, type InvalidTokenReason } from '../../src/errors.js'
import type { ProfileName } from '../../src/config/types.js'
import { EXAMPLES, EXAMPLE_RESOURCE, REJECTED, example, withChanges, type ProviderExample } from '../fixtures/providers/providers.js'
import { hs256WithPublicKey, signWithSecret, startStaticIssuer, type StaticIssuer } from '../helpers/static-issuer.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'

const HS_ISSUER = 'https://hs.example.com'
const HS_SECRET = 'hs256-shared-secret-for-tests-0123456789abcdef'

// One static issuer per profile, shaped like the provider's (examples of one profile share it).
const issuers = new Map<ProfileName, StaticIssuer>()
for (const ex of EXAMPLES) {
  if (issuers.has(ex.profile)) continue
  issuers.set(ex.profile, await startStaticIssuer({
    alg: ex.alg,
    issuerPath: ex.issuerShape.path,
    trailingSlash: ex.issuerShape.trailingSlash,
    // Drupal's JWKS: one RSA key with only kty, n, e (no kid, alg or use).
    bareKeys: ex.profile === 'drupal'
  }))
}
const st = (p: ProfileName): StaticIssuer => issuers.get(p)!
// A plain RS256 issuer for the HS/RS confusion rows.
const rs = await startStaticIssuer({ alg: 'RS256', issuerPath: '/rs' })

const up = await startStatelessUpstream({ jsonResponse: true })

/** Issuer settings each provider needs in YAML, besides its profile. */
function issuerYaml (profile: ProfileName): Record<string, unknown> {
  const exs = EXAMPLES.filter((e) => e.profile === profile)
  const out: Record<string, unknown> = { issuer: st(profile).issuer, profile }
  const audience = [...new Set(exs.flatMap((e) => e.config.audience ?? []))]
  if (audience.length > 0) out.audience = audience
  const clients = [...new Set(exs.flatMap((e) => e.config.allowedClientIds ?? []))]
  if (clients.length > 0) out.allowedClientIds = clients
  // The one issuer allowed to vouch for tokens without iss (league/oauth2-server style).
  if (profile === 'drupal') out.requireIssuer = false
  return out
}

const gw = await startGateway(() => ({
  authorizationServers: [
    ...[...issuers.keys()].map(issuerYaml),
    { issuer: rs.issuer },
    { issuer: HS_ISSUER, sharedSecret: { fromEnv: 'HS_SECRET' }, algorithms: ['HS256'] }
  ],
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp` },
    { path: '/kc', upstream: `${up.origin}/mcp`, issuers: [st('keycloak').issuer] }
  ]
}), { env: { HS_SECRET } })

t.teardown(async () => {
  await gw.close()
  await up.close()
  await rs.close()
  for (const s of issuers.values()) await s.close()
})

const RESOURCE = `${gw.url}/mcp`
const PRM = `${gw.url}/.well-known/oauth-protected-resource/mcp`
const now = (): number => Math.floor(Date.now() / 1000)

/** The example payload issued now, by our static issuer, for this gateway's resource. */
function livePayload (ex: ProviderExample, changes: Record<string, unknown> = {}): Record<string, unknown> {
  const p: Record<string, unknown> = { ...ex.payload }
  if (p.iss !== undefined) p.iss = st(ex.profile).issuer
  const swap = (a: unknown): unknown => a === EXAMPLE_RESOURCE ? RESOURCE : a
  if (Array.isArray(p.aud)) p.aud = p.aud.map(swap)
  else if (p.aud !== undefined) p.aud = swap(p.aud)
  for (const k of ['iat', 'nbf', 'auth_time']) if (p[k] !== undefined) p[k] = now() - 5
  p.exp = now() + 300
  return withChanges(p, changes)
}

/** Sign like the provider does: its header shape, plus `header` extras. */
async function providerToken (ex: ProviderExample, changes: Record<string, unknown> = {}, opts: { header?: Record<string, unknown>, key?: 'other' } = {}): Promise<string> {
  return await st(ex.profile).sign(livePayload(ex, changes), {
    typ: ex.headerShape.typ,
    ...(ex.headerShape.kid ? {} : { kid: null }),
    header: { ...ex.headerShape.extra, ...opts.header },
    ...(opts.key !== undefined ? { key: opts.key } : {})
  })
}

let seq = 0
/** POST initialize with the token; returns the response and the upstream's view of the request (if it got there). */
async function call (token: string, path = '/mcp'): Promise<{ status: number, challenge: string | null, seen: Record<string, string | string[] | undefined> | undefined }> {
  const id = `row-${++seq}`
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: mcpHeaders(token, { 'x-test-row': id }), body: INITIALIZE_BODY })
  await res.arrayBuffer()
  const seen = up.requests.find((r) => r.headers['x-test-row'] === id)?.headers
  return { status: res.status, challenge: res.headers.get('www-authenticate'), seen }
}

function challengeFor (reason: InvalidTokenReason, prm = PRM): string {
  return `Bearer error="invalid_token", error_description="${new InvalidTokenError(reason).publicDescription}", resource_metadata="${prm}"`
}

t.test('discovery found each provider-shaped issuer', async (t) => {
  t.ok(gw.gateway.authenticator.ready, 'all issuers ready')
  t.equal(st('auth0').issuer, `${st('auth0').url}/`, 'Auth0-style issuer ends with /')
  t.equal(st('drupal').issuer, `${st('drupal').url}/`, 'Drupal-style issuer ends with /')
  t.match(st('keycloak').issuer, /\/realms\/ochacafe$/)
  t.match(st('entra').issuer, /\/72f988bf-86f1-41af-91ab-2d7cd011db47\/v2\.0$/)
  t.strictSame(Object.keys(st('drupal').jwks().keys[0] ?? {}).sort(), ['e', 'kty', 'n'], 'Drupal JWKS key: kty, n, e only')
})

t.test('each provider\'s example token is accepted with its identity', async (t) => {
  for (const ex of EXAMPLES) {
    t.test(ex.name, async (t) => {
      const r = await call(await providerToken(ex))
      t.equal(r.status, 200, 'status')
      t.equal(r.challenge, null, 'no challenge')
      t.ok(r.seen, 'reached the upstream')
      t.equal(r.seen?.authorization, undefined, 'token not forwarded')
      t.equal(r.seen?.['x-forwarded-user'], ex.expected.subject, 'X-Forwarded-User')
      t.equal(r.seen?.['x-forwarded-client-id'], ex.expected.clientId, 'X-Forwarded-Client-Id')
      t.equal(r.seen?.['x-forwarded-scopes'], ex.expected.scopes.join(' '), 'X-Forwarded-Scopes')
      t.equal(r.seen?.['x-forwarded-roles'], ex.expected.roles.length > 0 ? ex.expected.roles.join(' ') : undefined, 'X-Forwarded-Roles only with roles')
      t.equal(r.seen?.['x-forwarded-issuer'], st(ex.profile).issuer, 'X-Forwarded-Issuer')
    })
  }
})

interface Row {
  name: string
  token: () => Promise<string>
  path?: string
  /** undefined: accepted (200). */
  reason?: InvalidTokenReason
  subject?: string
}

const drupal = example('drupal')
const keycloak = example('keycloak')
const auth0 = example('auth0')
const okta = example('okta')
const entra = example('entra')
const cognito = example('cognito')

const rows: Row[] = [
  // Profile rules and claim mapping (the same table as the unit tests), through the gateway.
  ...REJECTED.map((v): Row => ({
    name: v.name,
    token: async () => await providerToken(example(v.profile), v.payload, { header: v.header }),
    // Without the resource in aud, jose's aud check answers first: the same reason.
    reason: v.reason
  })),
  // Audience binding per rule.
  { name: 'drupal: aud is a client id not in allowedClientIds', token: async () => await providerToken(drupal, { aud: 'content-staging' }), reason: 'wrong_audience' },
  { name: 'drupal: aud is the resource URL (client binding only)', token: async () => await providerToken(drupal, { aud: RESOURCE }), reason: 'wrong_audience' },
  { name: 'keycloak: no aud', token: async () => await providerToken(keycloak, { aud: undefined }), reason: 'missing_claim' },
  { name: 'keycloak: aud is the resource only', token: async () => await providerToken(keycloak, { aud: RESOURCE }), subject: keycloak.expected.subject },
  { name: 'auth0: aud holds only /userinfo', token: async () => await providerToken(auth0, { aud: ['https://my-domain.auth0.com/userinfo'] }), reason: 'wrong_audience' },
  { name: 'okta: aud of another authorization server (api://default)', token: async () => await providerToken(okta, { aud: 'api://default' }), reason: 'wrong_audience' },
  { name: 'entra: aud is another API\'s GUID', token: async () => await providerToken(entra, { aud: '00000003-0000-0000-c000-000000000000' }), reason: 'wrong_audience' },
  { name: 'entra: aud is the gateway URL (profile uses the configured audience)', token: async () => await providerToken(entra, { aud: RESOURCE }), reason: 'wrong_audience' },
  { name: 'cognito: an aud of any value is not checked (client binding)', token: async () => await providerToken(cognito, { aud: 'whatever' }), subject: cognito.expected.subject },
  // Issuer strings are exact.
  { name: 'auth0: iss without the trailing slash', token: async () => await providerToken(auth0, { iss: st('auth0').issuer.slice(0, -1) }), reason: 'unknown_issuer' },
  { name: 'okta: org authorization server issuer (no /oauth2/default)', token: async () => await providerToken(okta, { iss: st('okta').url }), reason: 'unknown_issuer' },
  { name: 'keycloak token on a route that trusts only keycloak', path: '/kc', token: async () => await providerToken(keycloak, { aud: [`${gw.url}/kc`, 'account'] }), subject: keycloak.expected.subject },
  { name: 'keycloak token for /mcp on the /kc route', path: '/kc', token: async () => await providerToken(keycloak), reason: 'wrong_audience' },
  { name: 'okta token on a route that trusts only keycloak', path: '/kc', token: async () => await providerToken(okta, { aud: `${gw.url}/kc` }), reason: 'unknown_issuer' },
  // Keys.
  { name: 'drupal: kid-less token signed by a key not in the JWKS', token: async () => await providerToken(drupal, {}, { key: 'other' }), reason: 'bad_signature' },
  { name: 'keycloak: header typ id_token+jwt', token: async () => await st('keycloak').sign(livePayload(keycloak), { typ: 'id_token+jwt' }), reason: 'wrong_type' },
  // Drupal / league tokens without iss: requireIssuer false on the drupal issuer only.
  { name: 'drupal: no iss, signed by the drupal JWKS', token: async () => await providerToken(drupal, { iss: undefined }), subject: '7' },
  { name: 'drupal: no iss and no sub (client credentials)', token: async () => await providerToken(drupal, { iss: undefined, sub: undefined }), subject: 'mcp-client' },
  { name: 'drupal: no iss, signed by another key', token: async () => await providerToken(drupal, { iss: undefined }, { key: 'other' }), reason: 'bad_signature' },
  { name: 'no iss, signed by another issuer\'s key (keycloak)', token: async () => await st('keycloak').sign(livePayload(keycloak, { iss: undefined }), { typ: 'JWT' }), reason: 'unknown_key' },
  { name: 'drupal: no iss, aud not allowed', token: async () => await providerToken(drupal, { iss: undefined, aud: 'content-staging' }), reason: 'wrong_audience' },
  // Shared-secret issuer and HS/RS confusion, both ways.
  { name: 'HS256 issuer: HS256 token with the secret', token: async () => await signWithSecret({ iss: HS_ISSUER, sub: 'hs-user', aud: RESOURCE, client_id: 'hs-client', scope: 'mcp:tools', iat: now(), exp: now() + 300 }, HS_SECRET), subject: 'hs-user' },
  { name: 'HS256 issuer: HS256 token with another secret', token: async () => await signWithSecret({ iss: HS_ISSUER, sub: 'hs-user', aud: RESOURCE, exp: now() + 300 }, HS_SECRET + '!'), reason: 'bad_signature' },
  { name: 'HS256 issuer: RS256 token claiming its iss', token: async () => await rs.sign(rs.claims({ iss: HS_ISSUER, aud: RESOURCE })), reason: 'alg_not_allowed' },
  { name: 'HS256 issuer: HS256 token keyed with an RS issuer\'s public key', token: async () => await hs256WithPublicKey({ iss: HS_ISSUER, sub: 'x', aud: RESOURCE, exp: now() + 300 }, rs.publicJwk()), reason: 'bad_signature' },
  { name: 'RS256 issuer: RS256 token', token: async () => await rs.sign(rs.claims({ aud: RESOURCE })), subject: 'user-1' },
  { name: 'RS256 issuer: HS256 token keyed with its public key (PEM)', token: async () => await hs256WithPublicKey(rs.claims({ aud: RESOURCE }), rs.publicJwk()), reason: 'alg_not_allowed' },
  { name: 'RS256 issuer: HS256 token keyed with its public JWK JSON', token: async () => await hs256WithPublicKey(rs.claims({ aud: RESOURCE }), rs.publicJwk(), { secret: 'jwk-json' }), reason: 'alg_not_allowed' },
  { name: 'RS256 issuer: HS256 token keyed with the HS issuer\'s secret', token: async () => await signWithSecret(rs.claims({ aud: RESOURCE }), HS_SECRET), reason: 'alg_not_allowed' }
]

t.test('accepted and rejected variants', async (t) => {
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const path = row.path ?? '/mcp'
      const r = await call(await row.token(), path)
      if (row.reason === undefined) {
        t.equal(r.status, 200, 'accepted')
        t.equal(r.seen?.['x-forwarded-user'], row.subject, 'subject')
      } else {
        t.equal(r.status, 401, 'refused')
        t.equal(r.challenge, challengeFor(row.reason, `${gw.url}/.well-known/oauth-protected-resource${path}`), `WWW-Authenticate names ${row.reason}`)
        t.equal(r.seen, undefined, 'never reached the upstream')
      }
    })
  }
})

t.test('logs never hold a token or the shared secret', async (t) => {
  const text = gw.logs.join('\n')
  t.notOk(text.includes(HS_SECRET), 'no secret')
  t.notMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT')
  const outcomes = gw.requestLogs().map((r) => r.outcome)
  t.ok(outcomes.includes('invalid_token:wrong_type'), 'refusals are logged with their reason')
})
