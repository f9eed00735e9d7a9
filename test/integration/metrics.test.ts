/**
 * Prometheus metrics (issue 6 item 1) after real traffic: a real gateway, the
 * real oidc-provider AS (JWT user tokens, and opaque ones introspected), the
 * real SDK upstreams (stateless for tool calls, stateful for sessions and the
 * GET stream). The scrape is parsed strictly and asserted by name and value;
 * label values stay bounded when callers make up tool names; no token or
 * subject ever appears in it. Then metrics.listen (a port of its own, the
 * main listener 404s) and metrics.enabled: false.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStatefulUpstream, startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY, type RunningGateway } from '../helpers/gateway.js'
import { parsePrometheus, scrape, type Scrape } from '../helpers/prometheus.js'
import { eventually } from '../helpers/cli.js'

const PROTOCOL = '2025-06-18'
const as = await startAuthServer()
const up = await startStatelessUpstream({ jsonResponse: true })
const stateful = await startStatefulUpstream()
t.teardown(async () => { await Promise.all([up.close(), stateful.close()]); await as.close() })

const gw = await startGateway(() => ({
  authorizationServers: [{
    issuer: as.issuer,
    // JWTs are verified locally; the /opaque route's tokens are introspected.
    tokenType: 'auto',
    introspection: { endpoint: `${as.issuer}/token/introspection`, clientId: as.clients.gatewayBasic.id, clientSecret: { fromEnv: 'INTROSPECTION_SECRET' } }
  }],
  routes: [
    {
      path: '/mcp',
      upstream: `${up.origin}/mcp`,
      scopes: ['mcp:tools'],
      policy: { default: [], tools: { admin_reset: ['mcp:admin'], 'danger_*': ['mcp:admin'], echo: [] } }
    },
    { path: '/sessions', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/opaque', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }
  ],
  rateLimits: { perTool: { max: 1, windowSeconds: 60 } }
}), { env: { INTROSPECTION_SECRET: as.clients.gatewayBasic.secret } })
t.teardown(async () => { await gw.close() })

as.registerResource({ url: `${gw.url}/mcp`, scope: 'mcp:tools mcp:admin' })
as.registerResource({ url: `${gw.url}/sessions`, scope: 'mcp:tools' })
as.registerResource({ url: `${gw.url}/opaque`, scope: 'mcp:tools', format: 'opaque' })

// Subjects that cannot occur in a scrape by chance.
const ALICE = `metrics-alice-${randomBytes(4).toString('hex')}`
const BOB = `metrics-bob-${randomBytes(4).toString('hex')}`
const alice = (await as.userTokens({ resource: `${gw.url}/mcp`, scope: 'mcp:tools', user: ALICE })).accessToken
const aliceSessions = (await as.userTokens({ resource: `${gw.url}/sessions`, scope: 'mcp:tools', user: ALICE })).accessToken
const bobSessions = (await as.userTokens({ resource: `${gw.url}/sessions`, scope: 'mcp:tools', user: BOB })).accessToken
const opaque = (await as.userTokens({ resource: `${gw.url}/opaque`, scope: 'mcp:tools', user: ALICE })).accessToken
const TOKENS = [alice, aliceSessions, bobSessions, opaque]

let nextId = 1
const rpc = (method: string, params?: Record<string, unknown>): string => JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) })
async function post (path: string, token: string | undefined, body: string, extra: Record<string, string> = {}): Promise<{ status: number, headers: Headers, text: string }> {
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: mcpHeaders(token, { 'mcp-protocol-version': PROTOCOL, ...extra }), body })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

const metricsUrl = `${gw.url}/metrics`

t.test('names and values after real traffic', async (t) => {
  // /mcp, a policy route: 3 listed, 1 refused for no token, 2 policy denials, 2 echo calls (the second over perTool).
  for (let i = 0; i < 3; i++) t.equal((await post('/mcp', alice, rpc('tools/list'))).status, 200, `tools/list ${i + 1}`)
  t.equal((await post('/mcp', undefined, rpc('tools/list'))).status, 401, 'no token: 401')
  t.equal((await post('/mcp', alice, rpc('tools/call', { name: 'admin_reset', arguments: {} }))).status, 403, 'a tool named in the policy, scope missing: 403')
  t.equal((await post('/mcp', alice, rpc('tools/call', { name: 'danger_zap', arguments: {} }))).status, 403, 'a tool matched by a glob only: 403')
  t.equal((await post('/mcp', alice, rpc('tools/call', { name: 'echo', arguments: { text: 'hi' } }))).status, 200, 'echo: 200')
  t.equal((await post('/mcp', alice, rpc('tools/call', { name: 'echo', arguments: { text: 'hi' } }))).status, 429, 'echo again: perTool 429')

  // /sessions: alice opens a session and a GET stream; bob presents alice's session id.
  const init = await post('/sessions', aliceSessions, INITIALIZE_BODY)
  t.equal(init.status, 200, 'initialize (an SSE answer to a POST)')
  const sid = init.headers.get('mcp-session-id')!
  t.ok(sid, 'a session id')
  t.equal((await post('/sessions', aliceSessions, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { 'mcp-session-id': sid })).status, 202)
  t.equal((await post('/sessions', bobSessions, rpc('tools/list'), { 'mcp-session-id': sid })).status, 404, 'bob with alice\'s session id: 404')

  const abort = new AbortController()
  const stream = await fetch(`${gw.url}/sessions`, { headers: { authorization: `Bearer ${aliceSessions}`, accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL }, signal: abort.signal })
  t.equal(stream.status, 200, 'GET stream open')
  t.equal((await scrape(metricsUrl)).one('mcp_gateway_open_streams'), 1, 'open_streams: 1 while the GET stream is open')
  abort.abort()
  t.ok(await eventually(async () => (await scrape(metricsUrl)).one('mcp_gateway_open_streams') === 0, 5000), 'open_streams back to 0 once it closed')

  // /opaque: the same opaque token twice (one introspection call, then the cached principal).
  t.equal((await post('/opaque', opaque, rpc('tools/list'))).status, 200)
  t.equal((await post('/opaque', opaque, rpc('tools/list'))).status, 200)

  const m = await scrape(metricsUrl)
  const req = (route: string, method: string, status: string, outcome: string): number => m.one('mcp_gateway_requests_total', { route, method, status, outcome })
  t.equal(m.types.get('mcp_gateway_requests_total'), 'counter')
  t.equal(req('/mcp', 'POST', '200', 'ok'), 4, 'requests_total: 3 lists and 1 echo forwarded')
  t.equal(req('/mcp', 'POST', '401', 'no_token'), 1)
  t.equal(req('/mcp', 'POST', '403', 'insufficient_scope'), 2)
  t.equal(req('/mcp', 'POST', '429', 'rate_limited'), 1)
  t.equal(req('/sessions', 'POST', '200', 'ok'), 1, 'initialize')
  t.equal(req('/sessions', 'POST', '202', 'ok'), 1, 'notifications/initialized')
  t.equal(req('/sessions', 'POST', '404', 'session_mismatch'), 1)
  t.equal(req('/sessions', 'GET', '0', 'client_closed'), 1, 'the GET stream the client closed: status 0')
  t.equal(req('/opaque', 'POST', '200', 'ok'), 2)
  t.ok(m.one('mcp_gateway_requests_total', { route: 'none', method: 'GET', status: '200', outcome: 'metrics' }) >= 2, 'scrapes count under route none')

  t.equal(m.types.get('mcp_gateway_request_duration_seconds'), 'histogram')
  t.equal(m.one('mcp_gateway_request_duration_seconds_count', { route: '/mcp' }), 8, 'duration: every /mcp request')
  t.equal(m.one('mcp_gateway_request_duration_seconds_bucket', { route: '/mcp', le: '+Inf' }), 8)
  t.ok(m.one('mcp_gateway_request_duration_seconds_sum', { route: '/mcp' }) > 0)
  t.equal(m.one('mcp_gateway_overhead_seconds_count', { route: '/mcp' }), 4, 'overhead: the requests dispatched upstream')
  const buckets = [...m.samples.filter((s) => s.name === 'mcp_gateway_overhead_seconds_bucket' && s.labels.route === '/mcp')]
  t.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), 'buckets are cumulative')
  t.ok(buckets.some((b) => b.labels.le === '0.001'), 'sub-millisecond buckets')

  t.equal(m.one('mcp_gateway_token_cache_total', { route: '/mcp', result: 'miss' }), 1, 'token cache: the first request of the token missed')
  t.equal(m.one('mcp_gateway_token_cache_total', { route: '/mcp', result: 'hit' }), 6, 'and the other six hit (the 401 had no token)')
  t.equal(m.one('mcp_gateway_token_cache_total', { route: '/opaque', result: 'miss' }), 1)
  t.equal(m.one('mcp_gateway_token_cache_total', { route: '/opaque', result: 'hit' }), 1)

  t.ok(m.one('mcp_gateway_jwks_fetches_total', { issuer: as.issuer, result: 'ok' }) >= 1, 'jwks_fetches_total ok ≥ 1')
  t.equal(m.sum('mcp_gateway_jwks_fetches_total', { result: 'error' }), 0, 'no failed JWKS fetch')
  t.equal(m.one('mcp_gateway_introspection_total', { issuer: as.issuer, result: 'call_ok' }), 1, 'one introspection call')
  t.equal(m.one('mcp_gateway_introspection_total', { issuer: as.issuer, result: 'cache_hit' }), 1, 'then a cache hit')

  t.equal(m.one('mcp_gateway_rate_limit_rejections_total', { route: '/mcp', limit: 'perTool' }), 1)
  t.equal(m.one('mcp_gateway_policy_denials_total', { route: '/mcp', tool: 'admin_reset' }), 1, 'a tool named in policy.tools is its own label')
  t.equal(m.one('mcp_gateway_policy_denials_total', { route: '/mcp', tool: 'other' }), 1, 'a tool matched only by a glob is other')
  t.equal(m.one('mcp_gateway_session_rejections_total', { route: '/sessions' }), 1)
  t.equal(m.one('mcp_gateway_open_streams'), 0)
  t.ok(m.one('mcp_gateway_process_resident_memory_bytes') > 0, 'default process metrics, prefixed')

  for (const token of TOKENS) t.notOk(m.text.includes(token), 'no token in the scrape')
  for (const subject of [ALICE, BOB]) t.notOk(m.text.includes(subject), `no subject in the scrape (${subject})`)
  t.notOk(m.text.includes(sid), 'no session id in the scrape')
})

t.test('cardinality: tool names made up by the caller add no label values', async (t) => {
  const before = await scrape(metricsUrl)
  const labelsBefore = before.labelValues('mcp_gateway_policy_denials_total', 'tool', { route: '/mcp' })
  const otherBefore = before.one('mcp_gateway_policy_denials_total', { route: '/mcp', tool: 'other' })
  const seriesBefore = before.samples.filter((s) => s.name.startsWith('mcp_gateway_') && !s.name.startsWith('mcp_gateway_process_') && !s.name.startsWith('mcp_gateway_nodejs_')).length
  const names = Array.from({ length: 50 }, (_v, i) => `danger_${randomBytes(6).toString('hex')}${i % 5 === 0 ? '"} 1\n# x' : ''}${i % 7 === 0 ? 'x'.repeat(2000) : ''}`)
  for (const name of names) t.equal((await post('/mcp', alice, rpc('tools/call', { name, arguments: {} }))).status, 403)
  // And a batch: every refused message is counted, under the same bounded labels.
  const batch = `[${rpc('tools/call', { name: 'danger_batch_1', arguments: {} })},${rpc('tools/call', { name: 'admin_reset', arguments: {} })},${rpc('tools/list')}]`
  t.equal((await post('/mcp', alice, batch)).status, 403)
  const after = await scrape(metricsUrl)
  t.strictSame(after.labelValues('mcp_gateway_policy_denials_total', 'tool', { route: '/mcp' }), labelsBefore, 'the same tool label values as before')
  t.strictSame([...labelsBefore].sort(), ['admin_reset', 'other'])
  t.equal(after.one('mcp_gateway_policy_denials_total', { route: '/mcp', tool: 'other' }), otherBefore + 51, 'each refused made-up name counted as other')
  const seriesAfter = after.samples.filter((s) => s.name.startsWith('mcp_gateway_') && !s.name.startsWith('mcp_gateway_process_') && !s.name.startsWith('mcp_gateway_nodejs_')).length
  t.equal(seriesAfter, seriesBefore, 'not one new series')
  for (const name of names) t.notOk(after.text.includes(name.slice(0, 19)), 'no made-up name in the scrape')
})

t.test('metrics.listen: a port of their own; the main listener does not serve them', async (t) => {
  const sep = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
    metrics: { path: '/internal/metrics', listen: { host: '127.0.0.1', port: 0 } }
  }))
  t.teardown(async () => { await sep.close() })
  const addr = sep.gateway.metricsAddress()
  t.ok(addr !== undefined && addr.port > 0, `metrics listener bound (${addr?.url})`)
  const m = await scrape(`${addr!.url}/internal/metrics`)
  t.equal(m.one('mcp_gateway_open_streams'), 0, 'the metrics are served there')
  t.equal((await fetch(`${sep.url}/internal/metrics`)).status, 404, 'the main listener 404s the metrics path')
  t.equal((await fetch(`${sep.url}/metrics`)).status, 404, 'and the default path')
  t.equal((await fetch(`${addr!.url}/metrics`)).status, 404, 'the metrics listener 404s other paths')
  t.equal((await fetch(`${addr!.url}/healthz`)).status, 404, 'it serves nothing else')
  const postRes = await fetch(`${addr!.url}/internal/metrics`, { method: 'POST', body: 'x' })
  t.equal(postRes.status, 405, 'POST: 405')
  t.equal(postRes.headers.get('allow'), 'GET, HEAD')
  t.equal((await fetch(`${sep.url}/healthz`)).status, 200, 'the main listener still serves probes')
  // Requests on the main listener are counted in the separate listener's scrape.
  t.equal((await post2(sep, '/mcp')).status, 401)
  const after = await scrape(`${addr!.url}/internal/metrics`)
  t.equal(after.one('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '401', outcome: 'no_token' }), 1)
  await sep.close()
  await t.rejects(fetch(`${addr!.url}/internal/metrics`), 'the metrics listener closes with the gateway')
})

async function post2 (g: RunningGateway, path: string): Promise<Response> {
  return await fetch(`${g.url}${path}`, { method: 'POST', headers: mcpHeaders(undefined), body: rpc('tools/list') })
}

t.test('metrics.enabled: false: no metrics path', async (t) => {
  const off = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
    metrics: { enabled: false }
  }))
  t.teardown(async () => { await off.close() })
  t.equal(off.gateway.metrics, undefined)
  t.equal((await fetch(`${off.url}/metrics`)).status, 404)
  t.equal((await post2(off, '/mcp')).status, 401, 'requests are served as usual')
})

t.test('the text format reader is strict (so the assertions above read what was sent)', async (t) => {
  t.throws(() => parsePrometheus('mcp_gateway_x{route="a} 1\n'), /bad labels|not a sample/)
  t.throws(() => parsePrometheus('garbage line here\n'), /not a sample/)
  t.throws(() => parsePrometheus('name notanumber\n'), /bad value/)
  const m = parsePrometheus('# TYPE a counter\na{x="1",y="q\\"uote"} 3\na{x="2"} 4\n')
  t.equal(m.sum('a'), 7)
  t.equal(m.one('a', { y: 'q"uote' }), 3)
})
