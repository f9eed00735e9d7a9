/**
 * `--check --print` redaction (src/config/print.ts): a config that sets every
 * secret the schema knows, each to a unique marker, is loaded and printed; no
 * marker (nor its base64 or hex) and no private key material may appear. The
 * set of secrets the test config sets must equal the set the schema declares,
 * so a new secret field fails this test until it is covered, and then fails
 * again if the printer does not redact it.
 */
import { randomBytes, generateKeyPairSync } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { z } from 'zod'
import { loadConfigFile } from '../../src/config/load.js'
import { FILE_CONTENTS, printConfig, readConfigSource, redactConfig, redactUrlCredentials, schemaPathsOf, SECRET_REF_PATHS } from '../../src/config/print.js'
import type { GatewayConfig } from '../../src/config/types.js'
import { generateSchema, SECRET_REF_TITLE } from '../../scripts/gen-schema.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'config')
const dir = mkdtempSync(join(tmpdir(), 'gw-print-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

/** A unique, long (HS256 needs 32 bytes) value per secret. */
const marker = (name: string): string => `MARKER-${name}-${randomBytes(20).toString('hex')}`
const ENV = {
  GW_T_SHARED: marker('shared'),
  GW_T_HEADER: `Bearer ${marker('header')}`,
  GW_T_CC: marker('client-credentials'),
  GW_T_REDIS: marker('redis')
}
const FILES = {
  'introspection.secret': marker('introspection'),
  'exchange.secret': marker('token-exchange')
}
for (const [name, value] of Object.entries(FILES)) writeFileSync(join(dir, name), value + '\n', { mode: 0o600 })
copyFileSync(join(FIXTURES, 'tls-cert.pem'), join(dir, 'tls-cert.pem'))
copyFileSync(join(FIXTURES, 'tls-key.pem'), join(dir, 'tls-key.pem'))
copyFileSync(join(FIXTURES, 'signing-ed25519.jwk'), join(dir, 'signing.jwk'))
const { privateKey: pem2 } = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
writeFileSync(join(dir, 'signing-2.pem'), pem2, { mode: 0o600 })

const CONFIG = `
listen:
  tls: { certFile: tls-cert.pem, keyFile: tls-key.pem }
publicUrl: https://mcp.example.com
authorizationServers:
  - issuer: https://hs.example.com
    algorithms: [HS256]
    sharedSecret: { fromEnv: GW_T_SHARED }
  - issuer: https://as.example.com
    tokenType: auto
    introspection:
      endpoint: https://as.example.com/introspect
      clientId: gateway
      clientSecret: { fromFile: introspection.secret }
routes:
  - path: /header
    upstream: http://127.0.0.1:3001
    scopes: [mcp]
    upstreamAuth: { type: header, value: { fromEnv: GW_T_HEADER } }
  - path: /cc
    upstream: http://127.0.0.1:3002
    scopes: [mcp]
    identityAssertion: {}
    upstreamAuth:
      type: clientCredentials
      tokenEndpoint: https://as.example.com/token
      clientId: gateway
      clientSecret: { fromEnv: GW_T_CC }
  - path: /exchange
    upstream: http://127.0.0.1:3003
    scopes: [mcp]
    upstreamAuth:
      type: tokenExchange
      tokenEndpoint: https://as.example.com/token
      clientId: gateway
      clientSecret: { fromFile: exchange.secret }
redis:
  url: redis://127.0.0.1:6379/0
  username: gateway
  password: { fromEnv: GW_T_REDIS }
signingAlgorithm: EdDSA
signingKeys:
  - file: signing.jwk
  - file: signing-2.pem
`
writeFileSync(join(dir, 'gateway.yaml'), CONFIG)

/** Pattern paths (`routes[].upstreamAuth.value`) of the secret references a parsed document sets. */
function refPaths (value: unknown, path: string[] = [], out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => refPaths(v, [...path, '[]'], out))
  else if (value !== null && typeof value === 'object') {
    if ('fromEnv' in value || 'fromFile' in value) out.add(path.join('.'))
    else for (const [k, v] of Object.entries(value)) refPaths(v, [...path, k], out)
  }
  return out
}

/** Secret-reference paths of the generated JSON Schema (an independent derivation). */
function jsonSchemaRefPaths (node: Record<string, unknown>, path: string[] = [], out = new Set<string>()): Set<string> {
  if (node.title === SECRET_REF_TITLE) {
    out.add(path.join('.'))
    return out
  }
  for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) jsonSchemaRefPaths(v, [...path, k], out)
  if (node.items !== undefined) jsonSchemaRefPaths(node.items as Record<string, unknown>, [...path, '[]'], out)
  for (const s of (node.anyOf ?? []) as Array<Record<string, unknown>>) jsonSchemaRefPaths(s, path, out)
  return out
}

const secretValues = [...Object.values(ENV), ...Object.values(FILES)]
const config = loadConfigFile(join(dir, 'gateway.yaml'), ENV)
const source = readConfigSource(join(dir, 'gateway.yaml'))
const printed = printConfig(config, source)
const doc = parse(printed) as Record<string, any>

/** Every string in the normalised config, Uint8Arrays decoded: proves the secrets are there before printing. */
function allStrings (v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v)
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'))
  else if (Array.isArray(v)) v.forEach((e) => allStrings(e, out))
  else if (v instanceof Map) [...v.values()].forEach((e) => allStrings(e, out))
  else if (v !== null && typeof v === 'object') Object.values(v).forEach((e) => allStrings(e, out))
  return out
}

t.test('the test config sets every secret the schema declares', async (t) => {
  const declared = new Set(SECRET_REF_PATHS.map((p) => p.join('.')))
  t.ok(declared.size >= 5, `the schema declares ${declared.size} secret references`)
  t.strictSame([...refPaths(parse(CONFIG))].sort(), [...declared].sort(), 'add a new secret field to CONFIG above (and it must then be redacted)')
  t.strictSame([...jsonSchemaRefPaths(generateSchema())].sort(), [...declared].sort(), 'the JSON Schema marks the same fields as secret references')
  const strings = allStrings(config)
  for (const v of secretValues) t.ok(strings.includes(v), `the loader resolved ${v.slice(0, 20)}… into the config`)
  t.ok(config.signing.keys.length === 2 && config.listen.tls !== undefined, 'key material is loaded')
})

t.test('no secret value, encoded or not, appears in the printed config', async (t) => {
  for (const v of secretValues) {
    const forms = [v, Buffer.from(v).toString('base64'), Buffer.from(v).toString('base64url'), Buffer.from(v).toString('hex'), v.replace(/^Bearer /, '')]
    for (const f of forms) t.notOk(printed.includes(f), `${v.slice(0, 24)}… does not appear (as ${f.slice(0, 12)}…)`)
  }
  t.notOk(printed.includes('MARKER-'), 'no marker at all')
})

t.test('no private key material appears', async (t) => {
  const jwk = JSON.parse(readFileSync(join(dir, 'signing.jwk'), 'utf8')) as { d: string }
  t.notOk(printed.includes(jwk.d), 'the JWK private scalar d')
  for (const pem of [readFileSync(join(dir, 'tls-key.pem'), 'utf8'), pem2]) {
    const body = pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'))
    for (const line of body) t.notOk(printed.includes(line), `PEM line ${line.slice(0, 12)}…`)
  }
  t.notOk(/PRIVATE KEY/.test(printed), 'no PEM armour')
})

t.test('each secret is replaced by a label naming its reference, never its value', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['authorizationServers[0].sharedSecret', doc.authorizationServers[0].sharedSecret, '<redacted: fromEnv GW_T_SHARED>'],
    ['authorizationServers[1].introspection.clientSecret', doc.authorizationServers[1].introspection.clientSecret, '<redacted: fromFile introspection.secret>'],
    ['routes[0].upstreamAuth.value', doc.routes[0].upstreamAuth.value, '<redacted: fromEnv GW_T_HEADER>'],
    ['routes[1].upstreamAuth.clientSecret', doc.routes[1].upstreamAuth.clientSecret, '<redacted: fromEnv GW_T_CC>'],
    ['routes[2].upstreamAuth.clientSecret', doc.routes[2].upstreamAuth.clientSecret, '<redacted: fromFile exchange.secret>'],
    ['redis.password', doc.redis.password, '<redacted: fromEnv GW_T_REDIS>'],
    ['listen.tls.key', doc.listen.tls.key, '<redacted: private key from listen.tls.keyFile tls-key.pem>'],
    ['listen.tls.cert', doc.listen.tls.cert, '<certificate from listen.tls.certFile tls-cert.pem>'],
    ['signing.keys[0].privateKey', doc.signing.keys[0].privateKey, '<redacted: private key from signingKeys[0].file signing.jwk>'],
    ['signing.keys[1].privateKey', doc.signing.keys[1].privateKey, '<redacted: private key from signingKeys[1].file signing-2.pem>']
  ]
  for (const [where, got, want] of cases) t.equal(got, want, where)
})

t.test('the printed document is the normalised config: defaults applied, profiles resolved', async (t) => {
  t.equal(doc.listen.host, '127.0.0.1', 'default host')
  t.equal(doc.listen.port, 8080, 'default port')
  t.equal(doc.limits.maxBodyBytes, 4194304, 'default body limit')
  t.equal(doc.routes[0].timeouts.connectMs, 10000, 'seconds normalised to ms')
  t.equal(doc.routes[0].resource, 'https://mcp.example.com/header', 'derived resource')
  t.strictSame(doc.authorizationServers[1].claims.subject, [['sub'], ['client_id']], 'generic profile claim mapping')
  t.equal(doc.authorizationServers[1].introspection.cacheTtlMs, 60000, 'introspection defaults')
  t.equal(doc.redis.username, 'gateway', 'non-secret redis settings are shown')
  t.equal(doc.redis.url, 'redis://127.0.0.1:6379/0')
  t.equal(doc.signing.keys[0].kid, 'ed-1', 'kid is shown')
  t.ok(Array.isArray(doc.warnings), 'warnings are part of the document')
  t.equal(doc.authorizationServers[0].jwksUri, null, 'unset values print as null')
})

t.test('without the source document the labels still redact', async (t) => {
  const bare = printConfig(config)
  for (const v of secretValues) t.notOk(bare.includes(v), `${v.slice(0, 20)}…`)
  const d = parse(bare) as Record<string, any>
  t.equal(d.redis.password, '<redacted>')
  t.equal(d.listen.tls.key, '<redacted: private key>')
})

t.test('fail closed on values that are not plain data, URL credentials and copies of secrets', async (t) => {
  const { privateKey } = generateKeyPairSync('ed25519')
  const secret = ENV.GW_T_CC
  const extended = {
    ...config,
    futureKey: privateKey,
    futureBuffer: Buffer.from('binary secret'),
    futureBytes: new Uint8Array([1, 2, 3]),
    futureUrl: 'https://user:pa55word@example.com/x',
    futureCopy: `Basic ${secret}`
  } as unknown as GatewayConfig
  const out = redactConfig(extended, source) as Record<string, unknown>
  const cases: Array<[string, unknown]> = [
    ['futureKey', '<redacted>'],
    ['futureBuffer', '<redacted>'],
    ['futureBytes', '<redacted>'],
    ['futureUrl', 'https://<redacted>@example.com/x'],
    ['futureCopy', '<redacted: contains a secret>']
  ]
  for (const [key, want] of cases) t.equal(out[key], want, key)
  t.notOk(printConfig(extended).includes('pa55word'), 'no URL password in the YAML')
})

t.test('redactUrlCredentials', async (t) => {
  const cases: Array<[string, string]> = [
    ['redis://:pw@host:6379/0', 'redis://<redacted>@host:6379/0'],
    ['rediss://user:pw@host', 'rediss://<redacted>@host'],
    ['https://example.com/a@b', 'https://example.com/a@b'],
    ['see http://u:p@a and ftp://x:y@b', 'see http://<redacted>@a and ftp://<redacted>@b'],
    ['mailto:someone@example.com', 'mailto:someone@example.com'],
    ['plain text', 'plain text']
  ]
  for (const [input, want] of cases) t.equal(redactUrlCredentials(input), want, input)
})

t.test('schemaPathsOf finds a schema through optional, array, record and union', async (t) => {
  const leaf = z.strictObject({ fromEnv: z.string() })
  const s = z.strictObject({
    a: leaf,
    b: leaf.optional(),
    c: z.array(z.strictObject({ d: leaf })),
    e: z.record(z.string(), leaf),
    f: z.union([z.string(), leaf]),
    g: z.string()
  })
  t.strictSame(schemaPathsOf(s, leaf), [['a'], ['b'], ['c', '[]', 'd'], ['e', '*'], ['f']])
  t.ok(FILE_CONTENTS.every((f) => f.path.length > 0), 'file-content paths are set')
})
