/**
 * Rate limits (issue 5, item 5) through a real gateway, the real oidc-provider
 * AS, a real SDK upstream and a real redis-server: per IP before any token
 * work (honouring trustProxy), per caller after authentication, per caller
 * and tool on policy routes; 429 with Retry-After and the X-RateLimit headers;
 * health and metadata never limited; one limit shared by two gateways through
 * Redis; and the store's fail mode when Redis is down, on Fastify's route and
 * on the lane (plugins/lane.ts) alike.
 */
import { connect } from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { eventually } from '../helpers/cli.js'
import { startAuthServer } from '../helpers/as.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, type RunningGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'

const as = await startAuthServer()
const up = await startStatelessUpstream({ jsonResponse: true })
const redis = await startRedis()
const RESOURCE = 'https://mcp.ratelimit.test/mcp'
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
t.teardown(async () => { await up.close(); await as.close(); await redis.close() })

const gateways: RunningGateway[] = []
t.teardown(async () => { for (const g of gateways) await g.close() })

/** A gateway whose /mcp route (resource pinned, so one token serves every gateway) forwards to the SDK upstream. */
async function gateway (extra: Record<string, unknown>, route: Record<string, unknown> = {}): Promise<RunningGateway> {
  const gw = await startGateway((origin) => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [
      { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], resource: RESOURCE, ...route },
      { path: '/h', upstream: up.origin, scopes: ['mcp:tools'], resource: RESOURCE }
    ],
    allowedOrigins: [origin, 'https://app.example.com'],
    ...extra
  }))
  gateways.push(gw)
  return gw
}

const m2m = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const m2mAgain = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const other = await as.clientCredentialsToken({ clientId: as.clients.gatewayExchange.id, clientSecret: as.clients.gatewayExchange.secret, resource: RESOURCE, scope: 'mcp:tools' })

let nextId = 1
const call = (name: string): Record<string, unknown> => ({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: name === 'echo' ? { text: 'hi' } : {} } })
const LIST = (): Record<string, unknown> => ({ jsonrpc: '2.0', id: nextId++, method: 'tools/list' })

interface Answer { status: number, headers: Headers, body: string }
async function post (gw: RunningGateway, token: string | undefined, body: unknown = LIST(), headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { ...mcpHeaders(token, { 'mcp-protocol-version': '2025-06-18' }), ...headers }, body: JSON.stringify(body) })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

/** The refusal every limit shares: status, Retry-After and the @fastify/rate-limit headers. */
function assertLimited (t: Test, a: Answer, max: number, name: string): void {
  t.equal(a.status, 429, `${name}: 429`)
  const after = Number(a.headers.get('retry-after'))
  t.ok(Number.isInteger(after) && after >= 1, `${name}: Retry-After ${a.headers.get('retry-after')}`)
  t.equal(a.headers.get('x-ratelimit-limit'), String(max), `${name}: X-RateLimit-Limit`)
  t.equal(a.headers.get('x-ratelimit-remaining'), '0', `${name}: X-RateLimit-Remaining`)
  t.equal(a.headers.get('x-ratelimit-reset'), a.headers.get('retry-after'), `${name}: X-RateLimit-Reset`)
}
const GATEWAY_BODY = { error: 'rate_limited', error_description: 'Too many requests; retry later' }

t.test('perIp: counted before any token work; health and metadata never limited', async (t) => {
  const gw = await gateway({ rateLimits: { perIp: { max: 3, windowSeconds: 60 } } })
  const before = up.requests.length
  for (let i = 0; i < 3; i++) t.equal((await post(gw, 'not-a-jwt')).status, 401, `request ${i + 1}: under the limit, the bad token is refused (401)`)
  const limited = await post(gw, m2m, LIST(), { origin: 'https://app.example.com' })
  assertLimited(t, limited, 3, 'perIp')
  t.strictSame(JSON.parse(limited.body), GATEWAY_BODY, 'the gateway\'s JSON error body')
  t.equal(limited.headers.get('access-control-allow-origin'), 'https://app.example.com', 'readable by an allowed browser origin')
  const bad = await post(gw, 'not-a-jwt')
  t.equal(bad.status, 429, 'over the limit a bad token is not even looked at (429, not 401)')
  t.equal(up.requests.length, before, 'nothing reached the upstream')
  const preflight = await fetch(`${gw.url}/mcp`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } })
  t.equal(preflight.status, 429, 'preflights count against perIp too')
  for (const path of ['/healthz', '/readyz', '/.well-known/oauth-protected-resource/mcp']) {
    t.equal((await fetch(gw.url + path)).status, 200, `${path} is not limited`)
  }
  const lines = gw.requestLogs().filter((l) => l.outcome === 'rate_limited')
  t.equal(lines.length, 3, 'refusals logged with outcome rate_limited')
  t.ok(lines.every((l) => l.status === 429 && l.route === '/mcp'), 'with status and route')
})

t.test('perIp honours trustProxy: the client named by the trusted hop, and the chain forwarded upstream', async (t) => {
  const trusted = await gateway({ trustProxy: ['127.0.0.0/8'], rateLimits: { perIp: { max: 2, windowSeconds: 60 } } })
  const from = (ip: string): Record<string, string> => ({ 'x-forwarded-for': `203.0.113.66, ${ip}` })
  t.equal((await post(trusted, m2m, LIST(), from('198.51.100.1'))).status, 200)
  t.equal((await post(trusted, m2m, LIST(), from('198.51.100.1'))).status, 200)
  assertLimited(t, await post(trusted, m2m, LIST(), from('198.51.100.1')), 2, 'same client behind the proxy')
  t.equal((await post(trusted, m2m, LIST(), from('198.51.100.2'))).status, 200, 'another client behind the same proxy has its own bucket')
  const seen = await (await fetch(`${trusted.url}/h/headers`, { headers: { authorization: `Bearer ${m2m}`, 'x-forwarded-for': '203.0.113.66, 198.51.100.3' } })).json() as Record<string, string>
  t.equal(seen['x-forwarded-for'], '198.51.100.3, 127.0.0.1', 'upstream X-Forwarded-For: the client, then the trusted proxy; the forged entry is dropped')

  const untrusting = await gateway({ rateLimits: { perIp: { max: 2, windowSeconds: 60 } } })
  t.equal((await post(untrusting, m2m, LIST(), from('198.51.100.1'))).status, 200)
  t.equal((await post(untrusting, m2m, LIST(), from('198.51.100.2'))).status, 200)
  t.equal((await post(untrusting, m2m, LIST(), from('198.51.100.3'))).status, 429, 'trustProxy false: X-Forwarded-For cannot buy a new bucket')
})

t.test('perPrincipal: after authentication, per issuer and subject, across tokens', async (t) => {
  const gw = await gateway({ rateLimits: { perPrincipal: { max: 2, windowSeconds: 60 } } })
  for (let i = 0; i < 3; i++) t.equal((await post(gw, 'not-a-jwt')).status, 401, 'rejected tokens do not count against anyone')
  t.equal((await post(gw, m2m)).status, 200)
  t.equal((await post(gw, m2mAgain)).status, 200, 'another token of the same caller counts too')
  const limited = await post(gw, m2m)
  assertLimited(t, limited, 2, 'perPrincipal')
  t.strictSame(JSON.parse(limited.body), GATEWAY_BODY)
  t.equal((await post(gw, m2mAgain)).status, 429, 'a fresh token does not reset the caller\'s limit')
  t.equal((await post(gw, other)).status, 200, 'another caller is not affected')
  t.ok(gw.requestLogs().some((l) => l.outcome === 'rate_limited' && typeof l.subject === 'string'), 'the refusal is logged with the caller')
})

t.test('perPrincipal key clientId: every user of one client shares the limit', async (t) => {
  const alice = (await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'alice' })).accessToken
  const bob = (await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'bob' })).accessToken
  const byClient = await gateway({ rateLimits: { perPrincipal: { key: 'clientId', max: 2, windowSeconds: 60 } } })
  t.equal((await post(byClient, alice)).status, 200)
  t.equal((await post(byClient, alice)).status, 200)
  t.equal((await post(byClient, bob)).status, 429, 'bob uses the same client: limited')
  const bySubject = await gateway({ rateLimits: { perPrincipal: { key: 'subject', max: 2, windowSeconds: 60 } } })
  t.equal((await post(bySubject, alice)).status, 200)
  t.equal((await post(bySubject, alice)).status, 200)
  t.equal((await post(bySubject, bob)).status, 200, 'key subject: bob has his own limit')
})

t.test('perTool: per caller and tools/call name on a policy route, refused with a JSON-RPC error', async (t) => {
  const gw = await gateway({ rateLimits: { perTool: { max: 2, windowSeconds: 60 } } }, { policy: { default: ['mcp:tools'] } })
  for (let i = 0; i < 4; i++) t.equal((await post(gw, m2m, LIST())).status, 200, 'tools/list is not a tool call: never counted')
  for (let i = 0; i < 2; i++) t.equal((await post(gw, m2m, call('echo'))).status, 200, `echo ${i + 1}`)
  const before = up.requests.length
  const req = call('echo')
  const limited = await post(gw, m2m, req)
  assertLimited(t, limited, 2, 'perTool')
  t.strictSame(JSON.parse(limited.body), { jsonrpc: '2.0', id: req.id, error: { code: -31429, message: 'Rate limit exceeded for this tool; retry later' } }, 'JSON-RPC error with the request id')
  t.equal(up.requests.length, before, 'the refused call never reached the upstream')
  t.equal((await post(gw, m2m, call('whoami'))).status, 200, 'another tool has its own limit')
  t.equal((await post(gw, other, call('echo'))).status, 200, 'another caller has its own limit')
  const batch = await post(gw, other, [call('echo'), call('echo')])
  t.equal(batch.status, 429, 'every call in a batch counts: the second echo of this batch is the caller\'s third')
  t.equal(JSON.parse(batch.body).id, null, 'a batch has no single id')
})

t.test('a window ends: requests are allowed again', async (t) => {
  const gw = await gateway({ rateLimits: { perIp: { max: 1, windowSeconds: 0.5 } } })
  t.equal((await post(gw, m2m)).status, 200)
  const limited = await post(gw, m2m)
  assertLimited(t, limited, 1, 'short window')
  t.equal(limited.headers.get('retry-after'), '1', 'Retry-After rounds up to whole seconds')
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal((await post(gw, m2m)).status, 200, 'allowed again after the window')
})

const redisSection = (prefix: string): Record<string, unknown> => ({ redis: { url: redis.url, keyPrefix: prefix, commandTimeoutSeconds: 0.5, connectTimeoutSeconds: 1 } })

/** Poll until the gateway's Redis client is connected (it connects on listen). */
async function redisReady (gw: RunningGateway): Promise<void> {
  const deadline = Date.now() + 5000
  while (gw.gateway.redis?.status !== 'ready' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

t.test('store redis: two gateways share one limit', async (t) => {
  const limits = { rateLimits: { store: 'redis', perIp: { max: 4, windowSeconds: 60 }, perPrincipal: { max: 100, windowSeconds: 60 } }, ...redisSection('shared-test:') }
  const a = await gateway(limits)
  const b = await gateway(limits)
  await redisReady(a)
  await redisReady(b)
  t.equal((await post(a, m2m)).status, 200)
  t.equal((await post(b, m2m)).status, 200)
  t.equal((await post(a, m2m)).status, 200)
  t.equal((await post(b, m2m)).status, 200)
  assertLimited(t, await post(a, m2m), 4, 'fifth request, on gateway A')
  assertLimited(t, await post(b, m2m), 4, 'sixth request, on gateway B')
  // The keys live in Redis under the configured prefix.
  const keys = await a.gateway.redis!.call('KEYS', 'shared-test:rl:*') as string[]
  t.ok(keys.length >= 2 && keys.every((k) => k.startsWith('shared-test:rl:')), `keys under the prefix (${keys.join(', ')})`)
  t.notOk(keys.some((k) => k.includes(m2m)), 'no token in any key')
})

t.test('regression: a lane request whose client leaves while the Redis count is pending is recorded as client_closed', async (t) => {
  // Before the fix the lane, once the store answered, waited for body events the gone request had
  // already emitted: the request was never recorded.
  const gw = await gateway({ rateLimits: { store: 'redis', perIp: { max: 1000, windowSeconds: 60 } }, redis: { url: redis.url, keyPrefix: 'abort-test:', commandTimeoutSeconds: 3, connectTimeoutSeconds: 1 } })
  await redisReady(gw)
  t.equal((await post(gw, m2m)).status, 200, 'warm-up: the token is verified and cached')
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  await admin.call('CLIENT', 'PAUSE', '600', 'ALL')
  const from = gw.requestLogs().length
  const takenBefore = gw.gateway.laneTaken()
  const body = JSON.stringify(LIST())
  const { port } = new URL(gw.url)
  const socket = connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  const head = Object.entries({ ...mcpHeaders(m2m, { 'mcp-protocol-version': '2025-06-18' }), 'content-length': String(Buffer.byteLength(body)), host: `127.0.0.1:${port}` })
    .map(([k, v]) => `${k}: ${v}\r\n`).join('')
  socket.write(`POST /mcp HTTP/1.1\r\n${head}\r\n`)
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(gw.gateway.laneTaken() - takenBefore, 1, 'the lane took it and waits on the paused store')
  socket.destroy()
  await eventually(() => gw.requestLogs().length > from, 3000)
  const lines = gw.requestLogs().slice(from)
  t.equal(lines.length, 1, 'one request line')
  t.equal(lines[0]?.outcome, 'client_closed', 'recorded as client_closed once the store answered')
})

t.test('store redis down: deny fails closed with 503, allow lets requests pass, and both recover', async (t) => {
  const base = { perIp: { max: 1000, windowSeconds: 60 } }
  const deny = await gateway({ rateLimits: { store: 'redis', ...base }, ...redisSection('deny-test:') })
  const allow = await gateway({ rateLimits: { store: 'redis', onStoreError: 'allow', ...base }, ...redisSection('allow-test:') })
  t.ok(allow.config.warnings.some((w) => w.startsWith('rateLimits.onStoreError is allow')), 'allow is warned about at startup')
  await redisReady(deny)
  await redisReady(allow)
  t.equal((await post(deny, m2m)).status, 200, 'Redis up: served')
  await redis.kill()
  const before = up.requests.length
  const refused = await post(deny, m2m, LIST(), { origin: 'https://app.example.com' })
  t.equal(refused.status, 503, 'deny: 503 while the store is down')
  t.equal(refused.headers.get('retry-after'), '5', 'with Retry-After')
  t.strictSame(JSON.parse(refused.body), { error: 'temporarily_unavailable', error_description: 'The rate limit cannot be checked; retry later' })
  t.equal(refused.headers.get('access-control-allow-origin'), 'https://app.example.com', 'readable by an allowed browser origin')
  // Without an Origin, and with its token cached, the same request takes the lane: the same refusal.
  const takenBefore = deny.gateway.laneTaken()
  const onLane = await post(deny, m2m)
  t.same([onLane.status, deny.gateway.laneTaken() - takenBefore], [503, 1], 'deny on the lane: 503 too')
  t.equal(onLane.headers.get('retry-after'), '5', 'the lane\'s 503 has Retry-After')
  t.strictSame(JSON.parse(onLane.body), { error: 'temporarily_unavailable', error_description: 'The rate limit cannot be checked; retry later' })
  t.equal(up.requests.length, before, 'nothing reached the upstream')
  const allowTaken = allow.gateway.laneTaken()
  t.equal((await post(allow, m2m)).status, 200, 'allow: served without a limit')
  t.equal((await post(allow, m2m)).status, 200, 'allow: served again')
  t.ok(allow.gateway.laneTaken() - allowTaken >= 1, 'allow: the lane served it once the token was cached')
  t.ok(deny.requestLogs().some((l) => l.outcome === 'rate_limit_unavailable' && l.status === 503), 'logged as rate_limit_unavailable')
  t.ok(deny.logs.some((l) => l.includes('rate-limit store unavailable')), 'the store failure is logged')
  await redis.restart()
  const deadline = Date.now() + 10_000
  let status = 0
  while (Date.now() < deadline && (status = (await post(deny, m2m)).status) !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(status, 200, 'deny: served again once Redis is back')
})
