/**
 * The pure parts of the edge settings: allowed-origin normalisation and
 * matching, the preflight's allowed headers, the stream limiter, and the
 * config normalisation (defaults and startup warnings).
 */
import t from 'tap'

import { allowHeadersFor, compileOriginPolicy, MAX_ECHOED_PARAM_HEADERS } from '../../src/policy/origin.js'
import { normaliseOrigin } from '../../src/config/values.js'
import { StreamLimiter } from '../../src/proxy/stream-limits.js'
import { parseConfig } from '../../src/config/load.js'

t.test('normaliseOrigin: configured origins in the serialised form browsers send', async (t) => {
  const table: Array<[string, string | RegExp]> = [
    ['https://app.example.com', 'https://app.example.com'],
    ['https://app.example.com/', 'https://app.example.com'],
    ['HTTPS://App.Example.COM:443', 'https://app.example.com'],
    ['http://localhost:8080', 'http://localhost:8080'],
    ['http://127.0.0.1:80', 'http://127.0.0.1'],
    ['http://[::1]:3000', 'http://[::1]:3000'],
    ['https://bücher.example', 'https://xn--bcher-kva.example'],
    ['chrome-extension://ABCDEFGHIJKLMNOP', 'chrome-extension://abcdefghijklmnop'],
    ['*', '*'],
    ['null', /opaque origin/],
    ['https://app.example.com/path', /not an origin/],
    ['https://app.example.com?x=1', /not an origin/],
    ['https://app.example.com#x', /not an origin/],
    ['https://u:p@app.example.com', /credentials/],
    ['app.example.com', /not an origin/],
    ['https://', /no host|not an origin/],
    ['https://app.example.com:99999', /not an origin/],
    ['', /not an origin/]
  ]
  for (const [input, want] of table) {
    const got = normaliseOrigin(input)
    if (typeof want === 'string') t.strictSame(got, { origin: want }, `${input} → ${want}`)
    else t.match('problem' in got ? got.problem : '', want, `${input} refused`)
  }
})

t.test('compileOriginPolicy: exact match of the serialised origin; * only when configured', async (t) => {
  const p = compileOriginPolicy(['https://app.example.com', 'http://localhost:8080'])
  const rows: Array<[string, boolean]> = [
    ['https://app.example.com', true],
    ['http://localhost:8080', true],
    ['https://app.example.com:443', false],
    ['http://app.example.com', false],
    ['https://evil.example.com', false],
    ['https://app.example.com.evil.example', false],
    ['null', false],
    ['', false],
    ['https://APP.example.com', false]
  ]
  t.equal(p.any, false)
  for (const [origin, ok] of rows) t.equal(p.allows(origin), ok, `${JSON.stringify(origin)} ${ok ? 'allowed' : 'refused'}`)
  const none = compileOriginPolicy([])
  t.equal(none.allows('https://app.example.com'), false, 'an empty list refuses every Origin')
  const any = compileOriginPolicy(['*'])
  t.equal(any.any, true)
  t.equal(any.allows('null'), true, '* allows even the opaque origin')
})

t.test('allowHeadersFor: the fixed list, plus each requested Mcp-Param-* name (no wildcard inside names)', async (t) => {
  const fixed = 'Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name'
  t.equal(allowHeadersFor(undefined), fixed)
  t.equal(allowHeadersFor('authorization, content-type'), fixed, 'no Mcp-Param names: the fixed list')
  t.equal(allowHeadersFor('authorization,mcp-param-region, Mcp-Param-Tenant'), `${fixed}, mcp-param-region, mcp-param-tenant`)
  t.equal(allowHeadersFor('mcp-param-a, mcp-param-a'), `${fixed}, mcp-param-a`, 'duplicates once')
  t.equal(allowHeadersFor('mcp-param-, mcp-param-b(c), x-other, mcp-param-ok'), `${fixed}, mcp-param-ok`, 'only valid, non-empty Mcp-Param names; others are not granted')
  t.notMatch(allowHeadersFor('mcp-param-x'), /\*/, 'never a * (Fetch: not a wildcard inside a name, and never for Authorization)')
  const many = Array.from({ length: MAX_ECHOED_PARAM_HEADERS + 10 }, (_v, i) => `mcp-param-h${i}`).join(', ')
  t.equal(allowHeadersFor(many).split(',').filter((h) => h.trim().startsWith('mcp-param-')).length, MAX_ECHOED_PARAM_HEADERS, 'bounded')
})

t.test('StreamLimiter: per caller, then in total; release gives the slot back', async (t) => {
  const l = new StreamLimiter(3, 2)
  t.equal(l.acquire('alice'), undefined)
  t.equal(l.acquire('alice'), undefined)
  t.equal(l.acquire('alice'), 'principal', 'third stream of one caller refused')
  t.equal(l.acquire('bob'), undefined)
  t.equal(l.acquire('carol'), 'total', 'gateway total reached')
  t.equal(l.total, 3)
  l.release('alice')
  t.equal(l.openFor('alice'), 1)
  t.equal(l.acquire('carol'), undefined, 'a released slot is reusable')
  l.release('nobody')
  t.equal(l.total, 3, 'releasing an unknown key changes nothing')
  l.release('alice'); l.release('bob'); l.release('carol')
  t.equal(l.total, 0)
  t.equal(l.openFor('alice'), 0)
})

t.test('StreamLimiter: check takes nothing; track counts a stream over the limits; release gives it back', async (t) => {
  const l = new StreamLimiter(3, 2)
  t.equal(l.check('alice'), undefined, 'under both limits')
  t.equal(l.total, 0, 'check takes no slot')
  l.track('alice'); l.track('alice')
  t.equal(l.check('alice'), 'principal', 'alice at her limit')
  t.equal(l.acquire('alice'), 'principal', 'tracked streams count against acquire')
  l.track('alice')
  t.equal(l.openFor('alice'), 3, 'track is never refused (the upstream already answered)')
  t.equal(l.check('bob'), 'total', 'the total counts tracked streams')
  l.release('alice')
  t.equal(l.check('bob'), undefined, 'a released tracked slot is free again')
  l.release('alice'); l.release('alice')
  t.equal(l.total, 0)
})

const BASE = `publicUrl: https://mcp.example.com
authorizationServers: [{ issuer: https://as.example.com }]
routes:
  - { path: /a, upstream: 'http://127.0.0.1:3001', scopes: [s] }
  - { path: /b, upstream: 'http://127.0.0.1:3002', scopes: [s], allowedOrigins: ['https://other.example.com', 'HTTPS://OTHER.example.com:443/'] }
`

t.test('config: origins normalised, route lists replace the top-level one, * warns', async (t) => {
  const c = parseConfig(BASE + 'allowedOrigins: [https://App.example.com/, http://localhost:5173]\n', { env: {} })
  t.strictSame(c.routes[0]!.allowedOrigins, ['https://app.example.com', 'http://localhost:5173'])
  t.strictSame(c.routes[1]!.allowedOrigins, ['https://other.example.com'], 'route list replaces the top-level one, de-duplicated')
  const star = parseConfig(BASE + 'allowedOrigins: ["*"]\n', { env: {} })
  t.ok(star.warnings.some((w) => w.startsWith('allowedOrigins contains "*"')), 'top-level * warns')
  const routeStar = parseConfig(BASE.replace("allowedOrigins: ['https://other.example.com', 'HTTPS://OTHER.example.com:443/']", "allowedOrigins: ['*']"), { env: {} })
  t.ok(routeStar.warnings.some((w) => w.startsWith('routes[1].allowedOrigins contains "*"')), 'route * warns')
  const empty = parseConfig(BASE + 'allowedOrigins: []\n', { env: {} })
  t.strictSame(empty.routes[0]!.allowedOrigins, [], 'an explicit empty list refuses every browser Origin')
})

t.test('config: trustProxy, rateLimits and limits normalised with defaults and warnings', async (t) => {
  const c = parseConfig(BASE + `trustProxy: [10.0.0.0/8]
rateLimits:
  perIp: { max: 100, windowSeconds: 1.5 }
  perPrincipal: { max: 10, windowSeconds: 60 }
  perTool: { max: 2, windowSeconds: 60 }
limits: { maxHeaderBytes: 32768, headersTimeoutSeconds: 5, requestTimeoutSeconds: 30, maxStreams: 50, maxStreamsPerPrincipal: 5 }
`, { env: {} })
  t.strictSame(c.trustProxy, ['10.0.0.0/8'])
  t.strictSame(c.rateLimits, {
    store: 'memory',
    onStoreError: 'deny',
    perIp: { max: 100, windowMs: 1500 },
    perPrincipal: { max: 10, windowMs: 60_000, key: 'subject' },
    perTool: { max: 2, windowMs: 60_000 }
  })
  t.strictSame(c.limits, { maxBodyBytes: 4 * 1024 * 1024, maxBatchMessages: null, maxTokenBytes: 8192, maxHeaderBytes: 32768, headersTimeoutMs: 5000, requestTimeoutMs: 30_000, maxStreams: 50, maxStreamsPerPrincipal: 5 })
  t.ok(c.warnings.some((w) => w.startsWith('rateLimits.perTool applies only to routes with a policy') && w.endsWith('/a, /b')), 'perTool without a policy route warns, naming the routes')
  const trustAll = parseConfig(BASE + 'trustProxy: true\n', { env: {} })
  t.ok(trustAll.warnings.some((w) => w.startsWith('trustProxy is true')), 'trustProxy: true warns')
  const few = parseConfig(BASE + 'limits: { maxStreams: 10 }\n', { env: {} })
  t.equal(few.limits.maxStreamsPerPrincipal, 10, 'the per-caller default never exceeds the total')
})
