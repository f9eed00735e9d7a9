/**
 * Issue 5 item 9: the security battery. Every row is a named attack with the
 * status it must get, the WWW-Authenticate error where one applies, and
 * whether the request may reach the upstream. A real gateway sits in front of
 * a real HTTP upstream that records every request it receives; valid tokens
 * come from the real oidc-provider AS, hand-shaped hostile ones from the
 * static issuer (test keys) and from attacker keys made here. Attacks that
 * need bytes no HTTP client will send (smuggling) are written on raw sockets.
 * docs/security.md ("Security battery") lists these rows.
 */
import { createHmac, KeyObject, sign as cryptoSign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t from 'tap'
import { base64url, CompactSign, exportJWK, generateKeyPair, importPKCS8, type CryptoKey, type JWK } from 'jose'
import { startAuthServer } from '../helpers/as.js'
import { hs256WithPublicKey, startStaticIssuer, unsignedJwt } from '../helpers/static-issuer.js'
import { startGateway, INITIALIZE_BODY } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/net.js'

/** One request as the upstream received it. */
interface Seen { method: string, url: string, rawHeaders: string[], body: string }

/** A real HTTP upstream that records everything and always answers 200 with a JSON-RPC result. */
async function startRecordingUpstream (): Promise<{ origin: string, seen: Seen[], server: Server }> {
  const seen: Seen[] = []
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"jsonrpc":"2.0","id":1,"result":{}}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

/** The attacker's key server: serves a JWKS and a certificate, and counts every hit (the gateway must make none). */
async function startAttackerServer (jwks: { keys: JWK[] }, certPem: string): Promise<{ url: string, hits: string[], server: Server }> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url ?? '')
    if (req.url === '/jwks.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks))
    else res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(certPem)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, server }
}

const as = await startAuthServer()
const st = await startStaticIssuer({ alg: 'RS256' })
const up = await startRecordingUpstream()

// The attacker's own keys: an RSA pair (published on the attacker's server) and the EC key of a real X.509 certificate.
const attacker = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
const attackerJwk: JWK = { ...await exportJWK(attacker.publicKey), kid: 'attacker-1', alg: 'RS256', use: 'sig' }
const certPem = readFileSync(new URL('../fixtures/config/tls-cert.pem', import.meta.url), 'utf8')
const certKey = await importPKCS8(readFileSync(new URL('../fixtures/config/tls-key.pem', import.meta.url), 'utf8'), 'ES256')
const certDer = certPem.replace(/-----[A-Z ]+-----|\s/g, '')
const evil = await startAttackerServer({ keys: [attackerJwk] }, certPem)

// A trusted issuer whose private key this test holds, for tokens jose will not sign (crit
// extensions): their signatures are valid, so only the header can make them fail.
const own = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
const ownJwk: JWK = { ...await exportJWK(own.publicKey), kid: 'own-1', alg: 'RS256', use: 'sig' }
const ownServer = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [ownJwk] })) })
await new Promise<void>((resolve) => ownServer.listen(0, '127.0.0.1', resolve))
const ownOrigin = `http://127.0.0.1:${(ownServer.address() as AddressInfo).port}`
const OWN_ISSUER = `${ownOrigin}/own`

const MAX_BODY = 64 * 1024
const gw = await startGateway((origin) => ({
  authorizationServers: [{ issuer: as.issuer }, { issuer: st.issuer }, { issuer: OWN_ISSUER, jwksUri: `${ownOrigin}/own/jwks` }],
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], claims: { 'X-Forwarded-Email': 'email' } },
    { path: '/other', upstream: `${up.origin}/other`, scopes: ['mcp:tools'] },
    { path: '/policy', upstream: `${up.origin}/policy`, resource: `${origin}/mcp`, scopes: ['mcp:tools'], policy: { default: [], methods: { 'tools/call': ['mcp:tools'] }, tools: { 'admin_*': ['mcp:admin'] } } }
  ],
  limits: { maxBodyBytes: MAX_BODY }
}))
t.teardown(async () => {
  await gw.close()
  await Promise.all([st.close(), as.close()])
  for (const s of [up.server, evil.server, ownServer]) { s.closeAllConnections(); s.close() }
})

const RESOURCE = `${gw.url}/mcp`
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
const valid = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const now = Math.floor(Date.now() / 1000)
/** Claims the static issuer's tokens carry: right issuer, audience and scope, so only the attack is wrong. */
const claims = (o: Record<string, unknown> = {}): Record<string, unknown> => st.claims({ aud: RESOURCE, scope: 'mcp:tools', ...o })

/** A compact JWS over `payload` with any protected header, signed by the attacker's RSA key (or another key). */
async function attackerToken (header: Record<string, unknown>, payload: Record<string, unknown> = claims(), key: CryptoKey | Uint8Array = attacker.privateKey): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...header } as { alg: string }).sign(key)
}

/** RS256 by the trusted `own` issuer over any header: the signature is valid whatever the header says. */
function ownToken (header: Record<string, unknown>, payload: Record<string, unknown> = claims({ iss: OWN_ISSUER })): string {
  const input = `${base64url.encode(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'own-1', ...header }))}.${base64url.encode(JSON.stringify(payload))}`
  return `${input}.${base64url.encode(cryptoSign('sha256', Buffer.from(input), KeyObject.from(own.privateKey)))}`
}

/** HS256 over header.payload with a raw HMAC key (jose refuses some keys, e.g. an empty one). */
function hmacToken (header: Record<string, unknown>, payload: Record<string, unknown>, key: string): string {
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}`
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}

/** `token` with its protected header changed and its signature kept (for headers jose will not sign). */
function reheader (token: string, header: Record<string, unknown>): string {
  const [h, p, sig] = token.split('.') as [string, string, string]
  const old = JSON.parse(new TextDecoder().decode(base64url.decode(h))) as Record<string, unknown>
  return `${base64url.encode(JSON.stringify({ ...old, ...header }))}.${p}.${sig}`
}

/** A JSON value nested `depth` levels deep. */
function nested (depth: number): unknown {
  let v: unknown = 'bottom'
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v }
  return v
}

/** Values of one header as the upstream received it (every line, in order). */
function upstreamHeader (seen: Seen, name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < seen.rawHeaders.length; i += 2) if (seen.rawHeaders[i]!.toLowerCase() === name) out.push(seen.rawHeaders[i + 1]!)
  return out
}

type Test = Parameters<NonNullable<Parameters<typeof t.test>[0]>>[0]

interface Response { status: number, headers: Record<string, string | string[] | undefined>, body: string }


/** Repeated headers go out as separate lines; the path is sent as written (a URL string would be normalised first). */
async function send (method: string, path: string, headers: Record<string, string | string[]>, body?: string): Promise<Response> {
  return await rawRequest(gw.url, method, path, headers, body)
}

/** Writes `raw` on a fresh socket; resolves with everything the gateway wrote and whether it closed the connection. */
function exchange (raw: string | Buffer, waitMs = 1500): Promise<{ data: string, closed: boolean }> {
  return new Promise((resolve, reject) => {
    const url = new URL(gw.url)
    const socket = connect(Number(url.port), url.hostname, () => { socket.write(raw) })
    let data = ''
    // A connection the gateway keeps open would hang here: give up after waitMs and report it open.
    const timer = setTimeout(() => { socket.destroy(); resolve({ data, closed: false }) }, waitMs)
    socket.on('data', (c: Buffer) => { data += c.toString('latin1') })
    socket.on('close', () => { clearTimeout(timer); resolve({ data, closed: true }) })
    socket.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'ECONNRESET') reject(err) })
  })
}

interface Row {
  /** The attack. */
  name: string
  method?: string
  path?: string
  /** Header lines; an array sends the header once per value. Default: MCP POST headers without credentials. */
  headers?: Record<string, string | string[]>
  body?: string
  status: number
  /** The `error` member of the JSON body. */
  error?: string
  /** The `error` parameter of WWW-Authenticate; null: no WWW-Authenticate at all; undefined: not checked. */
  challenge?: string | null
  description?: string
  /** Whether the upstream may see the request. */
  reached: boolean
  /** What the upstream received, for rows that reach it. */
  check?: (t: Test, seen: Seen) => void
}


const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const denied = (name: string, token: string, description: string, extra: Partial<Row> = {}): Row =>
  ({ name, headers: bearer(token), status: 401, error: 'invalid_token', challenge: 'invalid_token', description, reached: false, ...extra })

const ALG = 'The access token signing algorithm is not allowed'
const UNKNOWN_KEY = 'The access token was signed with an unknown key'
const BAD_SIG = 'The access token signature is invalid'
const MALFORMED = 'The access token is malformed'

const asRsaKey = as.publicJwks.find((k) => k.alg === 'RS256')!
const longKid = 'k'.repeat(4000)

const jwtRows: Row[] = [
  // alg: none in every spelling, with and without a signature part
  denied('alg none', unsignedJwt(claims()), ALG),
  denied('alg None (case variant)', unsignedJwt(claims(), { alg: 'None' }), ALG),
  denied('alg NONE with a kid of a trusted key', unsignedJwt(claims(), { alg: 'NONE', kid: st.publicJwk().kid }), ALG),
  denied('alg none with a garbage signature', `${unsignedJwt(claims())}c2lnbmF0dXJl`, ALG),
  // HS/RS key confusion: HMAC keyed with the issuer's public key
  denied('HS256 keyed with the RS public key (PEM)', await hs256WithPublicKey(claims(), st.publicJwk()), ALG),
  denied('HS256 keyed with the RS public key (JWK JSON)', await hs256WithPublicKey(claims(), st.publicJwk(), { secret: 'jwk-json' }), ALG),
  denied('HS256 keyed with the real AS public key (PEM)', await hs256WithPublicKey(claims({ iss: as.issuer }), asRsaKey), ALG),
  denied('HS512 keyed with the RS public key, alg in lower case', hmacToken({ alg: 'hs512', typ: 'at+jwt', kid: st.publicJwk().kid }, claims(), JSON.stringify(st.publicJwk())), ALG),
  denied('alg RS256 with a trailing space', reheader(await st.sign(claims()), { alg: 'RS256 ' }), ALG),
  // kid injection: the token is signed by the trusted key; only the kid is hostile
  denied('kid path traversal ../../etc/passwd', await st.sign(claims(), { kid: '../../etc/passwd' }), UNKNOWN_KEY),
  denied('kid /dev/null with HS256 and an empty key', hmacToken({ alg: 'HS256', typ: 'at+jwt', kid: '../../../../../../dev/null' }, claims(), ''), ALG),
  denied('kid with SQL injection text', await st.sign(claims(), { kid: "x' UNION SELECT 'secret' --" }), UNKNOWN_KEY),
  denied('kid of 4000 characters', await st.sign(claims(), { kid: longKid }), UNKNOWN_KEY),
  denied('kid that is an object (NoSQL injection)', await st.sign(claims(), { header: { kid: { $ne: null } } }), UNKNOWN_KEY),
  denied('kid that is a number', await st.sign(claims(), { header: { kid: 1 } }), UNKNOWN_KEY),
  denied('kid with a URL', await st.sign(claims(), { kid: `${evil.url}/jwks.json` }), UNKNOWN_KEY),
  // keys named or embedded by the token are never used, never fetched
  denied('jku to the attacker JWKS (attacker kid)', await attackerToken({ kid: 'attacker-1', jku: `${evil.url}/jwks.json` }), UNKNOWN_KEY),
  denied('jku to the attacker JWKS (trusted kid)', await attackerToken({ kid: st.publicJwk().kid, jku: `${evil.url}/jwks.json` }), BAD_SIG),
  denied('x5u to the attacker certificate', await attackerToken({ kid: 'attacker-1', x5u: `${evil.url}/cert.pem` }), UNKNOWN_KEY),
  denied('jwk: the attacker public key embedded, no kid', await attackerToken({ jwk: { kty: attackerJwk.kty, n: attackerJwk.n, e: attackerJwk.e } }), BAD_SIG),
  denied('jwk: the attacker public key embedded, trusted kid', await attackerToken({ kid: st.publicJwk().kid, jwk: attackerJwk }), BAD_SIG),
  denied('x5c: a real certificate embedded, signed by its key', await attackerToken({ alg: 'ES256', x5c: [certDer] }, claims(), certKey), UNKNOWN_KEY),
  // crit: unknown critical extensions must be refused (RFC 7515 §4.1.11)
  { name: 'control: the same issuer\'s token without crit is accepted', headers: bearer(ownToken({})), status: 200, reached: true },
  denied('crit naming an unknown extension', ownToken({ crit: ['x-evil'], 'x-evil': true }), MALFORMED),
  denied('crit naming a header that is absent', ownToken({ crit: ['exp'] }), MALFORMED),
  denied('crit b64:false (unencoded payload)', ownToken({ crit: ['b64'], b64: false }), MALFORMED),
  denied('crit that is not a list', ownToken({ crit: 'x-evil' }), MALFORMED),
  // unknown keys and time claims
  denied('exp in the year 9999, unknown key and kid', await attackerToken({ kid: 'attacker-1' }, claims({ exp: 253402300799 })), UNKNOWN_KEY),
  denied('exp in the year 9999, unknown key claiming the trusted kid', await st.sign(claims({ exp: 253402300799 }), { key: 'other' }), BAD_SIG),
  denied('iat one hour in the future', await st.sign(claims({ iat: now + 3600 })), 'The access token was issued in the future'),
  denied('nbf one hour in the future', await st.sign(claims({ nbf: now + 3600 })), 'The access token is not yet valid'),
  denied('exp as a string', await st.sign(claims({ exp: String(now + 300) })), 'The access token has an invalid claim'),
  // structure
  denied('typ that is an object', await st.sign(claims(), { typ: null, header: { typ: { a: 1 } } }), 'The token is not an access token'),
  denied('four segments', `${valid}.AAAA`, MALFORMED),
  denied('JWE-shaped (five segments)', 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aaaa.bbbb.cccc', MALFORMED),
  denied('payload that is a JSON array', await st.sign([] as unknown as Record<string, unknown>), MALFORMED),
  denied('header that is not JSON', `${base64url.encode('{alg:RS256')}.${base64url.encode(JSON.stringify(claims()))}.AAAA`, MALFORMED),
  denied('sub that is a nested object', await st.sign(claims({ sub: nested(50) })), 'The access token has an invalid claim'),
  denied('email claim with a CRLF header injection (sub also hostile)', await st.sign(claims({ sub: 'a\r\nX-Admin: 1', email: 'a@b\r\nX-Admin: 1' })), 'The access token has an invalid claim'),
  // huge and deeply nested claims: a valid signature is honoured, the claim is not sent upstream
  {
    name: 'valid token with a claim nested 1000 levels deep',
    headers: bearer(await st.sign(claims({ deep: nested(1000) }))),
    status: 200,
    reached: true,
    check: (t, seen) => {
      t.same(upstreamHeader(seen, 'x-forwarded-user'), ['user-1'], 'identity from the token')
      t.notOk(seen.rawHeaders.join('\n').includes('bottom'), 'the nested claim is not sent upstream')
    }
  },
  {
    name: 'valid token with a 7 KiB claim (under maxTokenBytes)',
    headers: bearer(await st.sign(claims({ blob: 'x'.repeat(5000) }))),
    status: 200,
    reached: true,
    check: (t, seen) => { t.notOk(seen.rawHeaders.join('\n').includes('xxxxxxxx'), 'the big claim is not sent upstream') }
  },
  denied('token over maxTokenBytes (9 KiB claim)', await st.sign(claims({ blob: 'x'.repeat(7000) })), 'The access token is too large'),
  denied('token of 12 KiB of garbage (over maxTokenBytes, under the header limit)', 'a'.repeat(12 * 1024), 'The access token is too large'),
  {
    name: 'claim-mapped header value with CRLF is dropped, not injected',
    headers: bearer(await st.sign(claims({ email: 'a@b\r\nX-Admin: 1' }))),
    status: 200,
    reached: true,
    check: (t, seen) => {
      t.same(upstreamHeader(seen, 'x-forwarded-email'), [], 'unrepresentable claim header dropped')
      t.same(upstreamHeader(seen, 'x-admin'), [], 'no injected header')
    }
  }
]

const credentialRows: Row[] = [
  { name: 'two Authorization headers (both valid)', headers: { authorization: [`Bearer ${valid}`, `Bearer ${valid}`] }, status: 400, error: 'invalid_request', challenge: 'invalid_request', description: 'More than one Authorization header was sent', reached: false },
  { name: 'two Authorization headers (valid, then Basic)', headers: { authorization: [`Bearer ${valid}`, 'Basic YTpi'] }, status: 400, error: 'invalid_request', challenge: 'invalid_request', reached: false },
  { name: 'two bearer tokens in one header', headers: { authorization: `Bearer ${valid}, Bearer ${valid}` }, status: 400, error: 'invalid_request', challenge: 'invalid_request', description: 'More than one Bearer token was sent', reached: false },
  { name: 'token in a form body (access_token=…)', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${valid}`, status: 401, error: 'unauthorized', challenge: null, reached: false },
  { name: 'token in the query', path: `/mcp?access_token=${valid}`, status: 400, error: 'invalid_request', challenge: 'invalid_request', reached: false },
  { name: 'token in the query under an encoded name', path: `/mcp?access%5Ftoken=${valid}`, status: 400, error: 'invalid_request', challenge: 'invalid_request', reached: false },
  { name: 'token in the query and the header', path: `/mcp?access_token=${valid}`, headers: bearer(valid), status: 400, error: 'invalid_request', challenge: 'invalid_request', reached: false },
  { name: 'token in a cookie', headers: { cookie: `access_token=${valid}` }, status: 401, error: 'unauthorized', challenge: null, reached: false },
  { name: 'token in Proxy-Authorization', headers: { 'proxy-authorization': `Bearer ${valid}` }, status: 401, error: 'unauthorized', challenge: null, reached: false },
  { name: 'token under another scheme (Basic)', headers: { authorization: `Basic ${Buffer.from(`x:${valid}`).toString('base64')}` }, status: 401, error: 'unauthorized', challenge: null, reached: false }
]

/** The identity the gateway must send for `valid`, whatever the client claimed. */
const realIdentity = (t: Test, seen: Seen): void => {
  t.same(upstreamHeader(seen, 'x-forwarded-user'), [as.clients.m2m.id], 'X-Forwarded-User is the token subject, once')
  t.same(upstreamHeader(seen, 'x-forwarded-client-id'), [as.clients.m2m.id], 'X-Forwarded-Client-Id from the token, once')
  t.same(upstreamHeader(seen, 'x-forwarded-scopes'), ['mcp:tools'], 'X-Forwarded-Scopes from the token, once')
  t.same(upstreamHeader(seen, 'x-forwarded-issuer'), [as.issuer], 'X-Forwarded-Issuer is the verified issuer, once')
  t.same(upstreamHeader(seen, 'x-forwarded-roles'), [], 'no roles: the token has none')
  t.same(upstreamHeader(seen, 'x-forwarded-email'), [], 'no claim header: the token has no email')
  t.same(upstreamHeader(seen, 'authorization'), [], 'the token never reaches the upstream')
}
const gwHost = new URL(gw.url).host

const headerRows: Row[] = [
  {
    name: 'spoofed identity headers (every default name, case variants, repeated)',
    headers: {
      ...bearer(valid),
      'X-Forwarded-User': ['mallory', 'admin'],
      'x-forwarded-client-id': 'evil-client',
      'X-FORWARDED-SCOPES': 'mcp:admin',
      'X-Forwarded-Issuer': 'https://evil.example.com',
      'X-Forwarded-Roles': 'admin',
      'X-Forwarded-Email': 'ceo@example.com'
    },
    status: 200,
    reached: true,
    check: (t, seen) => {
      realIdentity(t, seen)
      for (const v of ['mallory', 'evil-client', 'mcp:admin', 'evil.example.com', 'ceo@example.com']) t.notOk(seen.rawHeaders.join('\n').includes(v), `spoofed ${v} never arrives`)
    }
  },
  {
    name: 'Connection: naming the identity headers (hop-by-hop stripping trick)',
    headers: { ...bearer(valid), connection: 'X-Forwarded-User, X-Forwarded-Scopes, X-Forwarded-For' },
    status: 200,
    reached: true,
    check: realIdentity
  },
  {
    name: 'spoofed X-Gateway-Assertion (route without assertions)',
    headers: { ...bearer(valid), 'X-Gateway-Assertion': 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.' },
    status: 200,
    reached: true,
    check: (t, seen) => { t.same(upstreamHeader(seen, 'x-gateway-assertion'), [], 'a client-sent assertion is never forwarded') }
  },
  {
    name: 'spoofed X-Forwarded-For, -Host, -Proto, Forwarded, X-Real-IP',
    headers: {
      ...bearer(valid),
      'X-Forwarded-For': ['10.0.0.1', '1.2.3.4'],
      'X-Forwarded-Host': 'evil.example.com',
      'X-Forwarded-Proto': 'https',
      Forwarded: 'for=1.2.3.4;host=evil.example.com;proto=https',
      'X-Real-IP': '1.2.3.4'
    },
    status: 200,
    reached: true,
    check: (t, seen) => {
      t.same(upstreamHeader(seen, 'x-forwarded-for'), ['127.0.0.1'], 'X-Forwarded-For is the client socket address only')
      t.same(upstreamHeader(seen, 'x-forwarded-host'), [gwHost], 'X-Forwarded-Host from publicUrl')
      t.same(upstreamHeader(seen, 'x-forwarded-proto'), ['http'], 'X-Forwarded-Proto from publicUrl')
      t.same(upstreamHeader(seen, 'forwarded'), [], 'client Forwarded dropped')
      t.same(upstreamHeader(seen, 'x-real-ip'), [], 'client X-Real-IP dropped')
      realIdentity(t, seen)
    }
  },
  {
    name: 'spoofed Host is not passed on (upstream Host is the upstream\'s)',
    headers: { ...bearer(valid), host: 'evil.example.com' },
    status: 200,
    reached: true,
    check: (t, seen) => {
      t.same(upstreamHeader(seen, 'host'), [new URL(up.origin).host], 'Host is the upstream\'s')
      t.same(upstreamHeader(seen, 'x-forwarded-host'), [gwHost], 'X-Forwarded-Host from publicUrl, not from Host')
    }
  },
  {
    name: 'Proxy-Authorization next to a valid token is not forwarded',
    headers: { ...bearer(valid), 'proxy-authorization': 'Basic c2VjcmV0OnNlY3JldA==' },
    status: 200,
    reached: true,
    check: (t, seen) => { t.same(upstreamHeader(seen, 'proxy-authorization'), [], 'Proxy-Authorization dropped') }
  },
  {
    name: 'underscore twin of an identity header (X_Forwarded_User; CGI/WSGI servers fold _ and -)',
    headers: { ...bearer(valid), X_Forwarded_User: 'mallory' },
    status: 200,
    reached: true,
    check: (t, seen) => {
      t.same(upstreamHeader(seen, 'x_forwarded_user'), [], 'underscore twin dropped')
      t.notOk(seen.rawHeaders.join('\n').includes('mallory'), 'spoofed value never arrives')
    },
  }
]

const pathRows: Row[] = [
  ...[
    '/mcp/../admin', '/mcp/../other', '/mcp/./x', '/mcp/%2e%2e/admin', '/mcp/%2E%2E/%2E%2E/etc/passwd', '/mcp/.%2e/x', '/mcp/%252e%252e/x',
    '/mcp/a%2fb', '/mcp/..%2fother', '/mcp/a%5cb', '/mcp/..%5cother', '/mcp/a\\..\\other', '/mcp/%00', '/mcp/..;/other', '/mcp/.;x=1/other',
    '//mcp', '///mcp', '//mcp/x', '/mcp//../other', '/mcp/x//../../other', '//127.0.0.1/mcp', '/MCP', '/Mcp/x', '/mcpx', '/other/../mcp', '/'
  ].map((path): Row => ({ name: `path ${path}`, method: 'GET', path, headers: bearer(valid), status: 404, error: 'not_found', reached: false })),
  { name: 'path /mcp/%zz (undecodable)', method: 'GET', path: '/mcp/%zz', headers: bearer(valid), status: 400, error: 'invalid_request', reached: false },
  { name: 'path /mcp/%c0%ae%c0%ae/ (overlong UTF-8 dots)', method: 'GET', path: '/mcp/%c0%ae%c0%ae/other', headers: bearer(valid), status: 400, error: 'invalid_request', reached: false },
  {
    name: 'path /mcp//x (a double slash inside the route stays inside it)',
    method: 'GET',
    path: '/mcp//x',
    headers: bearer(valid),
    status: 200,
    reached: true,
    check: (t, seen) => { t.equal(seen.url, '/mcp//x', 'upstream path stays under the route\'s upstream path') }
  }
]

const sizeRows: Row[] = [
  { name: `body over maxBodyBytes (${MAX_BODY + 1} bytes)`, headers: { ...bearer(valid), 'content-type': 'application/json' }, body: `"${'x'.repeat(MAX_BODY - 1)}"`, status: 413, error: 'payload_too_large', reached: false },
  { name: 'oversized body without a token is refused before it is read', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(MAX_BODY * 4), status: 401, error: 'unauthorized', reached: false },
  { name: 'body exactly at maxBodyBytes passes', headers: { ...bearer(valid), 'content-type': 'application/json' }, body: `"${'x'.repeat(MAX_BODY - 2)}"`, status: 200, reached: true }
]

/** A tools/call body on the policy route (the token has mcp:tools, not mcp:admin). */
const call = (params: string): string => `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":${params}}`
const policyRow = (name: string, body: string, status: number, extra: Partial<Row> = {}): Row =>
  ({ name, path: '/policy', headers: { ...bearer(valid), 'content-type': 'application/json' }, body, status, reached: status === 200, ...extra })
const bodyRows: Row[] = [
  policyRow('control: an allowed tool call is forwarded', call('{"name":"echo"}'), 200),
  policyRow('a tool the token may not call', call('{"name":"admin_drop"}'), 403, { challenge: 'insufficient_scope' }),
  policyRow('duplicate "name" keys, forbidden one last', call('{"name":"echo","name":"admin_drop"}'), 403, { challenge: 'insufficient_scope' }),
  policyRow('duplicate "name" keys, allowed one last: the upstream gets only what was authorised', call('{"name":"admin_drop","name":"echo"}'), 200, {
    check: (t, seen) => { t.same(JSON.parse(seen.body), { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo' } }, 'the re-serialised body names only the authorised tool') }
  }),
  policyRow('tool name hidden in a \\u escape', call('{"name":"admin\\u005fdrop"}'), 403, { challenge: 'insufficient_scope' }),
  policyRow('tool name under __proto__', call('{"__proto__":{"name":"admin_drop"}}'), 400),
  policyRow('a batch hiding a forbidden call behind an allowed one', `[${call('{"name":"echo"}')},${call('{"name":"admin_drop"}').replace('"id":7', '"id":8')}]`, 403, { challenge: 'insufficient_scope' }),
  policyRow('body nested 5000 levels deep (stack overflow when re-serialised)', call(`{"name":"echo","arguments":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`), 400),
  policyRow('body with a byte-order mark', `\ufeff${call('{"name":"echo"}')}`, 400),
  policyRow('body that is not UTF-8 JSON', '\u00ff\u00fe{"jsonrpc"', 400),
  policyRow('JSON-RPC body sent as text/plain', call('{"name":"admin_drop"}'), 415, { headers: { ...bearer(valid), 'content-type': 'text/plain' } }),
  policyRow('Mcp-Name header disagreeing with the body', call('{"name":"admin_drop"}'), 400, { headers: { ...bearer(valid), 'content-type': 'application/json', 'mcp-name': 'echo' } })
]

const groups: Array<[string, Row[]]> = [['JWT attacks', jwtRows], ['credential placement', credentialRows], ['header abuse', headerRows], ['path abuse', pathRows], ['JSON-RPC body abuse (policy route)', bodyRows], ['oversized input', sizeRows]]
for (const [group, rows] of groups) {
  t.test(group, async (t) => {
    for (const row of rows) {
      t.test(row.name, async (t) => {
        const method = row.method ?? 'POST'
        const before = up.seen.length
        const defaults: Record<string, string> = method === 'POST' ? { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } : {}
        const res = await send(method, row.path ?? '/mcp', { ...defaults, ...(row.headers ?? {}) }, row.body ?? (method === 'POST' ? INITIALIZE_BODY : undefined))
        t.equal(res.status, row.status, 'status')
        const reached = up.seen.slice(before)
        if (row.reached) {
          t.equal(reached.length, 1, 'reached the upstream once')
          if (reached[0] !== undefined) row.check?.(t, reached[0])
          return
        }
        t.equal(reached.length, 0, 'never reached the upstream')
        const body = JSON.parse(res.body) as Record<string, unknown>
        if (row.path === '/policy' && row.status !== 415) {
          const errors = Array.isArray(body) ? body as Array<Record<string, unknown>> : [body]
          t.ok(errors.length > 0 && errors.every((e) => e.jsonrpc === '2.0' && typeof e.error === 'object'), 'JSON-RPC error bodies')
        }
        if (row.error !== undefined) t.equal(body.error, row.error, 'error code')
        if (row.description !== undefined) t.equal(body.error_description, row.description, 'error description')
        const www = res.headers['www-authenticate']
        if (row.challenge === null) t.notMatch(String(www), /error=/, 'challenge without an error parameter (or none)')
        else if (row.challenge !== undefined) t.match(String(www), new RegExp(`^Bearer error="${row.challenge}"`), 'WWW-Authenticate error')
        for (const part of JSON.stringify(row.headers ?? {}).match(/[A-Za-z0-9_-]{24,}/g) ?? []) t.notOk(res.body.includes(part), 'no token material echoed')
      })
    }
  })
}

t.test('keys named by tokens were never fetched (jku, x5u, kid URL)', async (t) => {
  t.same(evil.hits, [], 'the attacker server saw no request')
})

// Smuggling and malformed framing, on raw sockets. Each request carries a valid token, so
// only the framing can stop it; each hides a second request that must never reach the upstream.
const auth = `Authorization: Bearer ${valid}\r\n`
const smuggled = 'GET /mcp/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
const chunkedSmuggle = `0\r\n\r\n${smuggled}`
const smugglingRows: Array<{ name: string, raw: string }> = [
  { name: 'CL.TE: Content-Length and Transfer-Encoding: chunked together', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${chunkedSmuggle.length}\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedSmuggle}` },
  { name: 'TE.CL: Transfer-Encoding before Content-Length', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${smuggled}\r\n0\r\n\r\n` },
  { name: 'duplicate Content-Length, different values', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2\r\nContent-Length: ${2 + smuggled.length}\r\n\r\n{}${smuggled}` },
  { name: 'duplicate Content-Length, same value', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}${smuggled}` },
  { name: 'Content-Length list (2, 2)', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2, 2\r\n\r\n{}${smuggled}` },
  { name: 'Content-Length with a sign (+2)', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: +2\r\n\r\n{}${smuggled}` },
  { name: 'Transfer-Encoding: xchunked', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: xchunked\r\n\r\n${chunkedSmuggle}` },
  { name: 'Transfer-Encoding: chunked, identity (chunked not last)', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked, identity\r\n\r\n${chunkedSmuggle}` },
  { name: 'Transfer-Encoding twice (chunked, then x)', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n${chunkedSmuggle}` },
  { name: 'Transfer-Encoding with a space before the colon', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}` },
  { name: 'Transfer-Encoding folded onto a continuation line (obs-fold)', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}` },
  { name: 'Transfer-Encoding with a vertical tab', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding:\u000bchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}` },
  { name: 'chunk size with an invalid character', raw: `POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n2;\u0000\r\n{}\r\n0\r\n\r\n${smuggled}` },
  { name: 'bare LF line endings', raw: `POST /mcp HTTP/1.1\nHost: x\n${auth.replace('\r\n', '\n')}Content-Length: 2\n\n{}${smuggled}` },
  { name: 'header name with a space before the colon (X-Forwarded-User : mallory)', raw: `GET /mcp HTTP/1.1\r\nHost: x\r\nX-Forwarded-User : mallory\r\n${auth}\r\n` },
  { name: 'NUL in a header value', raw: `GET /mcp HTTP/1.1\r\nHost: x\r\n${auth}X-A: a\u0000b\r\n\r\n` },
  { name: 'HTTP/1.1 without Host', raw: `GET /mcp HTTP/1.1\r\n${auth}\r\n` },
  { name: 'absolute-form target (GET http://evil.example.com/mcp)', raw: `GET http://evil.example.com/mcp HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n` },
  { name: 'absolute-form target whose scheme length eats the route prefix', raw: `GET https://a@b/mcp/x HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n` },
  { name: 'asterisk-form target (GET *)', raw: `GET * HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n` },
  { name: 'CONNECT to another host (no tunnel: closed without an answer)', raw: `CONNECT evil.example.com:443 HTTP/1.1\r\nHost: evil.example.com:443\r\n${auth}\r\n` }
]

t.test('smuggling and malformed framing', async (t) => {
  for (const row of smugglingRows) {
    t.test(row.name, async (t) => {
      const before = up.seen.length
      const { data, closed } = await exchange(row.raw)
      t.equal(up.seen.length, before, 'nothing reached the upstream')
      t.notOk(up.seen.some((s) => s.url.includes('smuggled')), 'the hidden request never reached the upstream')
      if (row.name.startsWith('CONNECT')) {
        t.equal(data, '', 'no answer')
        t.ok(closed, 'the connection is closed')
        return
      }
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1])
      t.ok(status === 400 || status === 404, `refused with 400 or 404 (got ${status}: ${data.split('\r\n')[0]})`)
      t.equal((data.match(/^HTTP\/1\.1 /gm) ?? []).length, 1, 'exactly one response: the hidden request was not processed')
      if (status === 400) t.ok(closed, 'the connection is closed after a framing error')
    })
  }
})

t.test('a malformed request pipelined after a valid one does not take its response', async (t) => {
  const before = up.seen.length
  const { data } = await exchange(`POST /mcp HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}NOT HTTP AT ALL\r\n\r\n`)
  t.equal(up.seen.length, before + 1, 'the valid POST was forwarded')
  t.match(data, /^HTTP\/1\.1 200 /, 'so its own 200 is the first response on the connection')
})

t.test('two Host headers: neither reaches the upstream', async (t) => {
  const before = up.seen.length
  const { data } = await exchange(`POST /mcp HTTP/1.1\r\nHost: evil.example.com\r\nHost: other.example.com\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)
  t.match(data, /^HTTP\/1\.1 200 /)
  t.equal(up.seen.length, before + 1, 'proxied once')
  const seen = up.seen[before]!
  t.same(upstreamHeader(seen, 'host'), [new URL(up.origin).host], 'Host is the upstream\'s')
  t.same(upstreamHeader(seen, 'x-forwarded-host'), [gwHost], 'X-Forwarded-Host from publicUrl')
  t.notOk(seen.rawHeaders.join('\n').includes('example.com'), 'neither client Host value arrives')
})

t.test('oversized headers: 431 and the connection is closed', async (t) => {
  const before = up.seen.length
  const { data, closed } = await exchange(`GET /mcp HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(data, /^HTTP\/1\.1 431 /)
  t.match(data, /"error":"invalid_request"/)
  t.ok(closed, 'closed')
  const many = await exchange(`GET /mcp HTTP/1.1\r\nHost: x\r\n${auth}${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`)
  t.match(many.data, /^HTTP\/1\.1 431 /, '3000 small headers: 431')
  t.equal(up.seen.length, before, 'nothing reached the upstream')
})

t.test('the gateway kept serving through the battery', async (t) => {
  const health = await fetch(`${gw.url}/healthz`)
  t.equal(health.status, 200)
  const ok = await send('POST', '/mcp', { ...bearer(valid), 'content-type': 'application/json' }, INITIALIZE_BODY)
  t.equal(ok.status, 200, 'a valid request still succeeds')
  const errors = gw.logs.map((l) => JSON.parse(l) as { level: number, msg: string }).filter((l) => l.level >= 50)
  t.same(errors.map((e) => e.msg), [], 'no error-level log line')
  t.notOk(gw.logs.join('\n').includes(valid.split('.')[2]!), 'no token signature in the logs')
  t.notOk(gw.logs.join('\n').includes(longKid), 'the hostile kid is not logged whole')
})
