/**
 * The metrics implementation (observability/metrics.ts), its bounded
 * policy-denial labels (observability/telemetry.ts) and the separate metrics
 * listener (observability/metrics-server.ts), without a gateway.
 */
import t from 'tap'
import { createMetrics } from '../../src/observability/metrics.js'
import { createMetricsServer } from '../../src/observability/metrics-server.js'
import { compileDenialLabel, NOOP_TELEMETRY } from '../../src/observability/telemetry.js'
import type { PolicyConfig } from '../../src/config/types.js'
import { parsePrometheus } from '../helpers/prometheus.js'

t.test('policy denial labels are bounded whatever the body says', async (t) => {
  const policy: PolicyConfig = {
    default: [],
    methods: new Map([['custom/op', ['x']]]),
    tools: [['admin_reset', ['a']], ['danger_*', ['a']]],
    resources: [],
    prompts: [],
    filterToolsList: true
  }
  const label = compileDenialLabel(policy)
  const rows: Array<[string | undefined, string | undefined, string]> = [
    ['tools/call', 'admin_reset', 'admin_reset'],
    ['tools/call', 'danger_zap', 'other'],
    ['tools/call', 'danger_*', 'danger_*'],
    ['tools/call', 'ADMIN_RESET', 'other'],
    ['tools/call', 'x'.repeat(10_000), 'other'],
    ['tools/call', undefined, 'other'],
    ['resources/read', 'file:///etc/passwd', 'resources/read'],
    ['prompts/get', 'p', 'prompts/get'],
    ['custom/op', undefined, 'custom/op'],
    ['made/up', undefined, 'other'],
    ['', undefined, 'other'],
    [undefined, undefined, 'none']
  ]
  for (const [method, name, want] of rows) t.equal(label(method, name), want, `${String(method)} ${String(name).slice(0, 20)} → ${want}`)
})

t.test('cells, histograms and the scrape', async (t) => {
  const m = createMetrics()
  const r = m.route('/mcp')
  t.equal(m.route('/mcp'), r, 'one handle per route id (kept across reloads)')
  r.request('POST', 200, 'ok', 0.3)
  r.request('POST', 200, 'ok', 7)
  r.request('POST', 401, 'no_token', 2)
  r.request('GET', 0, 'client_closed', 120_000)
  m.none.request('GET', 200, 'health', 0.1)
  r.overhead(0.2)
  r.overhead(3)
  r.tokenCache(true)
  r.tokenCache(true)
  r.tokenCache(false)
  r.rateLimited('perIp')
  r.policyDenied('other')
  r.sessionRejected()
  m.streamOpened()
  m.streamOpened()
  m.streamClosed()
  m.jwksFetch('https://as.example.com', true)
  m.jwksFetch('https://as.example.com', false)
  m.jwksUnknownKeyDuringOutage('https://as.example.com')
  m.introspection('https://as.example.com', 'call_ok')
  m.introspection('https://as.example.com', 'cache_hit')
  m.introspection('https://as.example.com', 'cache_hit')
  const s = parsePrometheus(await m.scrape())
  t.equal(s.one('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '200', outcome: 'ok' }), 2)
  t.equal(s.one('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '401', outcome: 'no_token' }), 1)
  t.equal(s.one('mcp_gateway_requests_total', { route: '/mcp', method: 'GET', status: '0', outcome: 'client_closed' }), 1)
  t.equal(s.one('mcp_gateway_requests_total', { route: 'none', method: 'GET', status: '200', outcome: 'health' }), 1)
  t.equal(s.types.get('mcp_gateway_request_duration_seconds'), 'histogram')
  const le = (name: string, bound: string): number => s.one(`mcp_gateway_${name}_bucket`, { route: '/mcp', le: bound })
  t.equal(le('request_duration_seconds', '0.0005'), 1, '0.3 ms is in the 0.5 ms bucket')
  t.equal(le('request_duration_seconds', '0.0025'), 2, 'buckets are cumulative (≤ 2.5 ms: 0.3 and 2)')
  t.equal(le('request_duration_seconds', '0.01'), 3)
  t.equal(le('request_duration_seconds', '60'), 3, 'a 120 s stream is above every bucket')
  t.equal(le('request_duration_seconds', '+Inf'), 4)
  t.equal(s.one('mcp_gateway_request_duration_seconds_count', { route: '/mcp' }), 4)
  t.ok(Math.abs(s.one('mcp_gateway_request_duration_seconds_sum', { route: '/mcp' }) - 120.0093) < 1e-9, 'sum in seconds')
  t.equal(le('overhead_seconds', '0.00025'), 1, '0.2 ms overhead')
  t.equal(le('overhead_seconds', '0.0025'), 1)
  t.equal(le('overhead_seconds', '0.005'), 2)
  t.equal(s.one('mcp_gateway_token_cache_total', { route: '/mcp', result: 'hit' }), 2)
  t.equal(s.one('mcp_gateway_token_cache_total', { route: '/mcp', result: 'miss' }), 1)
  t.equal(s.one('mcp_gateway_rate_limit_rejections_total', { route: '/mcp', limit: 'perIp' }), 1)
  t.equal(s.one('mcp_gateway_policy_denials_total', { route: '/mcp', tool: 'other' }), 1)
  t.equal(s.one('mcp_gateway_session_rejections_total', { route: '/mcp' }), 1)
  t.equal(s.one('mcp_gateway_open_streams'), 1)
  t.equal(s.one('mcp_gateway_jwks_fetches_total', { result: 'ok' }), 1)
  t.equal(s.one('mcp_gateway_jwks_fetches_total', { result: 'error' }), 1)
  t.equal(s.one('mcp_gateway_jwks_unknown_kid_during_outage_total', { issuer: 'https://as.example.com' }), 1)
  t.equal(s.one('mcp_gateway_introspection_total', { result: 'call_ok' }), 1)
  t.equal(s.one('mcp_gateway_introspection_total', { result: 'cache_hit' }), 2)
  t.equal(s.sum('mcp_gateway_token_cache_total', { route: 'none' }), 0, 'no cache series for requests outside the routes')
  t.ok(s.one('mcp_gateway_process_cpu_user_seconds_total') >= 0, 'process metrics, prefixed')

  const again = parsePrometheus(await m.scrape())
  t.equal(again.one('mcp_gateway_requests_total', { route: '/mcp', method: 'POST', status: '200', outcome: 'ok' }), 2, 'a scrape does not change the counts')

  // Each instance has its own registry (several gateways in one process); process metrics appear once in each scrape.
  const other = parsePrometheus(await createMetrics().scrape())
  t.equal(other.sum('mcp_gateway_requests_total'), 0, 'a second instance starts from zero')
  t.equal(other.samples.filter((x) => x.name === 'mcp_gateway_process_cpu_user_seconds_total').length, 1)
  t.equal(s.samples.filter((x) => x.name === 'mcp_gateway_process_cpu_user_seconds_total').length, 1)
})

t.test('the no-op telemetry records nothing and accepts everything', async (t) => {
  const r = NOOP_TELEMETRY.route('/x')
  t.equal(r, NOOP_TELEMETRY.none)
  t.doesNotThrow(() => { r.request('GET', 200, 'ok', 1); r.overhead(1); r.tokenCache(true); NOOP_TELEMETRY.streamOpened() })
})

t.test('the metrics listener: only the metrics path, GET and HEAD', async (t) => {
  const m = createMetrics()
  m.route('/mcp').request('POST', 200, 'ok', 1)
  let path = '/metrics'
  let fail = false
  const errors: unknown[] = []
  const server = createMetricsServer({
    host: '127.0.0.1',
    port: 0,
    path: () => path,
    source: { contentType: m.contentType, scrape: async () => { if (fail) throw new Error('secret detail'); return await m.scrape() } },
    onError: (err) => errors.push(err)
  })
  const { url } = await server.listen()
  t.teardown(async () => { await server.close() })
  const ok = await fetch(`${url}/metrics`)
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  t.equal(ok.headers.get('cache-control'), 'no-store')
  t.equal(parsePrometheus(await ok.text()).one('mcp_gateway_requests_total', { route: '/mcp' }), 1)
  t.equal((await fetch(`${url}/metrics?x=1`)).status, 200, 'a query is ignored')
  const head = await fetch(`${url}/metrics`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(await head.text(), '')
  const rows: Array<[string, string, number]> = [['GET', '/', 404], ['GET', '/metricsx', 404], ['GET', '/metrics/', 404], ['POST', '/metrics', 405], ['DELETE', '/metrics', 405], ['POST', '/other', 404]]
  for (const [method, p, status] of rows) {
    const res = await fetch(`${url}${p}`, { method })
    t.equal(res.status, status, `${method} ${p} → ${status}`)
    t.equal(res.headers.get('content-type'), 'application/json; charset=utf-8')
  }
  path = '/m2'
  t.equal((await fetch(`${url}/m2`)).status, 200, 'the path is read per request (a reload may change it)')
  t.equal((await fetch(`${url}/metrics`)).status, 404)
  fail = true
  const failed = await fetch(`${url}/m2`)
  t.equal(failed.status, 500)
  t.notMatch(await failed.text(), /secret detail/, 'no error detail to the scraper')
  t.equal(errors.length, 1, 'the failure is reported')
})
