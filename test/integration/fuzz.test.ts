/**
 * Issue 5 item 9, fuzzing: property-based tests (fast-check) over the
 * Authorization header and over JSON-RPC bodies on a policy route. The
 * upstream always answers 200, so any 5xx is the gateway's own: none may
 * occur, the gateway must keep answering /healthz, and it must log no error.
 * Runs are bounded (a fixed count per property and a time cap) so the file
 * stays well under 20 s. A failure prints fast-check's seed and the shrunk
 * counterexample; replay with `{ seed, path }` in the property's parameters.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t from 'tap'
import fc from 'fast-check'
import { base64url } from 'jose'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startGateway } from '../helpers/gateway.js'

/** A real HTTP upstream that answers every request 200: a tools/list-shaped JSON result, or SSE when only SSE is accepted. */
async function startAlways200 (): Promise<{ origin: string, count: () => number, server: Server }> {
  let n = 0
  const server = createServer((req: IncomingMessage, res) => {
    req.resume()
    req.on('end', () => {
      n++
      const result = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"admin_drop"},{"name":"search_x"}]}}'
      if (req.headers.accept === 'text/event-stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end(`event: message\ndata: ${result}\n\n`)
      } else {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(result)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => n, server }
}

const st = await startStaticIssuer({ alg: 'ES256' })
const up = await startAlways200()
const gw = await startGateway((origin) => ({
  authorizationServers: [{ issuer: st.issuer }],
  routes: [
    { path: '/plain', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    {
      path: '/mcp',
      upstream: `${up.origin}/mcp`,
      resource: `${origin}/mcp`,
      scopes: ['mcp:tools'],
      policy: {
        default: [],
        methods: { 'tools/call': ['mcp:tools'], 'resources/read': ['mcp:read'] },
        tools: { 'admin_*': ['mcp:admin'], echo: [] },
        resources: { 'file:///*': ['mcp:read'] },
        prompts: { '*': ['mcp:prompts'] }
      }
    }
  ],
  limits: { maxBodyBytes: 64 * 1024 }
}), { verifier: { jwksCooldownMs: 30_000 } })
const agent = new Agent({ keepAlive: true, maxSockets: 8 })
t.teardown(async () => {
  agent.destroy()
  await gw.close()
  await st.close()
  up.server.closeAllConnections()
  up.server.close()
})

const port = Number(new URL(gw.url).port)
const RUNS = 400
/** Each property stops after this long even if runs remain (the file must stay well under 20 s). */
const TIME_LIMIT_MS = 5000

function call (method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<{ status: number, body: string }> {
  // Node's client sends a GET or DELETE body unframed unless Content-Length is set.
  if (body !== undefined) headers = { ...headers, 'content-length': String(Buffer.byteLength(body)) }
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const statuses = new Map<number, number>()
let current = new Map<number, number>()
function record (status: number): void {
  statuses.set(status, (statuses.get(status) ?? 0) + 1)
  current.set(status, (current.get(status) ?? 0) + 1)
}
/** Status counts since the last call (one property's distribution, for the log). */
function distribution (): string {
  const out = JSON.stringify(Object.fromEntries(current))
  current = new Map()
  return out
}

/** The gateway still serves: /healthz answers 200. */
async function healthy (): Promise<boolean> {
  return (await call('GET', '/healthz', {})).status === 200
}

/** Header-safe text (what an HTTP client will send): tab, printable ASCII and Latin-1. */
const headerChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.constant(0x09),
  fc.integer({ min: 0x80, max: 0xff })
).map((c) => String.fromCharCode(c))
const headerText = fc.string({ unit: headerChar, maxLength: 300 })
const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), maxLength: 200 })
const b64json = fc.jsonValue({ maxDepth: 3 }).map((v) => base64url.encode(JSON.stringify(v)))

/** Claims with each member either right, missing, or an arbitrary JSON value. */
const now = Math.floor(Date.now() / 1000)
/** Mostly the right value, sometimes any JSON value: most inputs get past the early checks to the later ones. */
const maybe = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) })
/** Usually absent (undefined), sometimes the given value. */
const rarely = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb })
const claimsArb = fc.record({
  iss: maybe(fc.constant(st.issuer)),
  aud: maybe(fc.constantFrom(`${gw.url}/plain`, `${gw.url}/mcp`, [`${gw.url}/plain`, `${gw.url}/mcp`, 'x'])),
  sub: maybe(fc.string({ maxLength: 40 })),
  scope: maybe(fc.constantFrom('mcp:tools', 'mcp:tools mcp:admin', 'mcp:read mcp:tools', '', ['mcp:tools'])),
  exp: maybe(fc.integer({ min: now - 100, max: now + 100_000 })),
  nbf: rarely(maybe(fc.integer({ min: now - 1000, max: now + 100 }))),
  iat: rarely(maybe(fc.integer({ min: now - 1000, max: now + 100 }))),
  client_id: rarely(maybe(fc.string({ maxLength: 40 }))),
  roles: rarely(fc.jsonValue({ maxDepth: 2 })),
  extra: rarely(fc.jsonValue({ maxDepth: 4 }))
})
const headerExtras = fc.record({
  kid: maybe(fc.constant(st.publicJwk().kid)),
  typ: maybe(fc.constantFrom('at+jwt', 'JWT', 'application/at+jwt')),
  crit: rarely(fc.jsonValue({ maxDepth: 1 })),
  jku: rarely(fc.webUrl()),
  jwk: rarely(fc.jsonValue({ maxDepth: 2 }))
})
/** Drop the members the generators left undefined (JSON would drop them anyway; jose's header checks would not). */
const defined = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))

/** Authorization values: free text, Bearer + text, JWT-shaped junk, and tokens really signed by the trusted issuer. */
const authorization = fc.oneof(
  headerText,
  headerText.map((s) => `Bearer ${s}`),
  fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'DPoP', ''), fc.constantFrom(' ', '  ', '\t', ''), b64url).map(([s, sp, tok]) => `${s}${sp}${tok}`),
  fc.tuple(b64json, b64json, b64url).map(([h, p, s]) => `Bearer ${h}.${p}.${s}`),
  { weight: 3, arbitrary: fc.tuple(claimsArb, headerExtras, fc.constantFrom<'current' | 'other'>('current', 'current', 'current', 'other')).map(([claims, header, key]) => ({ claims: defined(claims), header: defined(header), key })) }
)

t.test('Authorization header: never a 5xx, never a crash', async (t) => {
  const before = up.count()
  const result = await fc.check(fc.asyncProperty(authorization, fc.constantFrom('/plain', '/mcp'), async (auth, path) => {
    let value: string
    if (typeof auth === 'string') value = auth
    else {
      const token = await st.sign(auth.claims, { key: auth.key, header: auth.header }).catch(() => undefined)
      if (token === undefined) return true // jose refused to sign that header (e.g. crit): nothing to send
      value = `Bearer ${token}`
    }
    const res = await call('POST', path, { authorization: value, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    record(res.status)
    return res.status < 500
  }), {
    numRuns: RUNS,
    interruptAfterTimeLimit: TIME_LIMIT_MS,
    // Run first: a valid token, so the success path is always part of the run.
    examples: [[{ claims: st.claims({ aud: `${gw.url}/plain`, scope: 'mcp:tools' }), header: {}, key: 'current' as const }, '/plain']]
  })
  t.notOk(result.failed, result.failed ? fc.defaultReportMessage(result) ?? 'property failed' : 'no 5xx')
  t.ok(result.numRuns >= 50, `${result.numRuns} runs`)
  t.ok(await healthy(), '/healthz still answers')
  t.comment(`upstream reached ${up.count() - before} times; statuses ${distribution()}`)
  t.ok(up.count() > before, 'some generated tokens were valid and reached the upstream')
})

t.test('Authorization header bytes on a raw socket (CR, LF, NUL, any byte): never a 5xx', async (t) => {
  const token = await st.sign(st.claims({ aud: `${gw.url}/plain`, scope: 'mcp:tools' }))
  const result = await fc.check(fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.boolean(), async (bytes, withToken) => {
    const head = Buffer.from(`GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${withToken ? token : ''}`, 'latin1')
    const raw = Buffer.concat([head, Buffer.from(bytes), Buffer.from('\r\n\r\n')])
    const data = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.write(raw) })
      let d = ''
      const timer = setTimeout(() => { s.destroy(); resolve(d) }, 2000)
      s.on('data', (c: Buffer) => { d += c.toString('latin1') })
      s.on('close', () => { clearTimeout(timer); resolve(d) })
      s.on('error', () => { /* a reset after the answer is fine; the answer is what counts */ })
    })
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(data)?.[1])
    record(status)
    return Number.isInteger(status) && status < 500
  }), { numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS })
  t.notOk(result.failed, result.failed ? fc.defaultReportMessage(result) ?? 'property failed' : 'every request got a non-5xx answer')
  t.comment(`statuses ${distribution()}`)
  t.ok(result.numRuns >= 50, `${result.numRuns} runs`)
  t.ok(await healthy(), '/healthz still answers')
})

// JSON-RPC bodies on the policy route, with a valid token whose scopes vary.
const methodArb = fc.oneof(
  fc.constantFrom('initialize', 'tools/list', 'tools/call', 'resources/read', 'resources/subscribe', 'resources/unsubscribe', 'prompts/get', 'notifications/initialized', 'ping'),
  fc.string({ maxLength: 30 }),
  fc.jsonValue({ maxDepth: 1 })
)
const paramsArb = fc.oneof(
  fc.record({ name: maybe(fc.constantFrom('echo', 'admin_drop', 'search_x', '', '*')), uri: maybe(fc.constantFrom('file:///etc/passwd', 'https://x', '')), arguments: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 })
)
const wellFormedArb = fc.record({
  jsonrpc: fc.constant('2.0'),
  id: fc.oneof(fc.integer(), fc.string({ maxLength: 10 })),
  method: fc.constantFrom('tools/list', 'tools/call', 'resources/read', 'prompts/get', 'ping', 'initialize'),
  params: fc.record({ name: fc.constantFrom('echo', 'admin_drop', 'search_x', 'other'), uri: fc.constantFrom('file:///etc/passwd', 'https://x'), arguments: fc.jsonValue({ maxDepth: 3 }) })
})
const fuzzyArb = fc.record({
  jsonrpc: maybe(fc.constant('2.0')),
  id: fc.oneof(fc.integer(), fc.string({ maxLength: 10 }), fc.constant(null), fc.double(), fc.jsonValue({ maxDepth: 1 })),
  method: methodArb,
  params: paramsArb,
  result: fc.jsonValue({ maxDepth: 2 }),
  error: fc.jsonValue({ maxDepth: 2 })
}, { requiredKeys: [] })
const messageArb = fc.oneof(wellFormedArb, fuzzyArb)
const bodyArb = fc.oneof(
  { weight: 4, arbitrary: messageArb.map((m) => JSON.stringify(m)) },
  { weight: 2, arbitrary: fc.array(messageArb, { maxLength: 5 }).map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  // Deep nesting and huge numbers: parser edge cases.
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5000 }).map((d) => `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":${'['.repeat(d)}${']'.repeat(d)}}}`) },
  { weight: 1, arbitrary: fc.constant('{"jsonrpc":"2.0","id":1e400,"method":"tools/list"}') }
)
/** Mcp-Method / Mcp-Name: usually absent (a present one rarely matches the body, so it is a 400). */
const headerValueArb = fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: headerText.filter((s) => s.trim() === s && s !== '') })

t.test('JSON-RPC bodies on a policy route: never a 5xx, never a crash', async (t) => {
  const tokens = new Map<string, string>()
  for (const scope of ['mcp:tools', 'mcp:tools mcp:admin', 'mcp:tools mcp:read mcp:prompts mcp:admin']) {
    tokens.set(scope, await st.sign(st.claims({ aud: `${gw.url}/mcp`, scope })))
  }
  const before = up.count()
  const result = await fc.check(fc.asyncProperty(
    bodyArb,
    fc.constantFrom(...tokens.keys()),
    fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded'),
    fc.constantFrom('application/json, text/event-stream', 'text/event-stream', 'application/json'),
    fc.constantFrom('POST', 'POST', 'POST', 'GET', 'DELETE'),
    headerValueArb,
    headerValueArb,
    async (body, scope, contentType, accept, method, mcpMethod, mcpName) => {
      const headers: Record<string, string> = { authorization: `Bearer ${tokens.get(scope)!}`, 'content-type': contentType, accept }
      if (mcpMethod !== undefined) headers['mcp-method'] = mcpMethod
      if (mcpName !== undefined) headers['mcp-name'] = mcpName
      const seen = up.count()
      const res = await call(method, '/mcp', headers, body)
      record(res.status)
      // Refused bodies are never forwarded; authorised ones are forwarded exactly once.
      return res.status < 500 && up.count() - seen === (res.status === 200 ? 1 : 0)
    }
  ), {
    numRuns: RUNS,
    interruptAfterTimeLimit: TIME_LIMIT_MS,
    examples: [['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}', 'mcp:tools', 'application/json', 'application/json, text/event-stream', 'POST', undefined, undefined]]
  })
  t.notOk(result.failed, result.failed ? fc.defaultReportMessage(result) ?? 'property failed' : 'no 5xx')
  t.ok(result.numRuns >= 50, `${result.numRuns} runs`)
  t.comment(`upstream reached ${up.count() - before} times; statuses ${distribution()}`)
  t.ok(up.count() > before, 'some bodies were authorised and forwarded (the property reached the upstream)')
  t.ok(await healthy(), '/healthz still answers')
})

t.test('no error was logged and every status seen is a deliberate one', async (t) => {
  const errors = gw.logs.map((l) => JSON.parse(l) as { level: number, msg: string }).filter((l) => l.level >= 50)
  t.same(errors.map((e) => e.msg), [], 'no error-level log line')
  const seen = [...statuses.keys()].sort((a, b) => a - b)
  t.comment(`statuses over all properties: ${JSON.stringify(Object.fromEntries(statuses))}`)
  for (const s of seen) t.ok([200, 202, 204, 400, 401, 403, 404, 413, 415, 431].includes(s), `status ${s} is a documented answer`)
  t.ok(statuses.has(200) && statuses.has(401) && statuses.has(400), 'the fuzz reached success, auth failure and bad-request paths')
})
