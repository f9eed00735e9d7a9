/**
 * Health probes (issue 6 item 2) on a real gateway with the real
 * oidc-provider AS and a real SDK upstream: the liveness and readiness paths
 * are configurable (the defaults then 404), need no token, and are never
 * rate limited, even under a perIp limit of 1 that does limit the MCP route.
 * Readiness waits for the issuer's keys.
 */
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders } from '../helpers/gateway.js'

const as = await startAuthServer()
const up = await startStatelessUpstream({ jsonResponse: true })
t.teardown(async () => { await up.close(); await as.close() })

const route = { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }
const LIST = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })

t.test('configured paths: served without a token; the defaults are gone', async (t) => {
  const gw = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [route, { path: '/healthz', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }],
    health: { livenessPath: '/ops/live', readinessPath: '/ops/ready' }
  }))
  t.teardown(async () => { await gw.close() })
  const live = await fetch(`${gw.url}/ops/live`)
  t.equal(live.status, 200)
  t.strictSame(await live.json(), { status: 'ok' })
  t.equal(live.headers.get('cache-control'), 'no-store')
  const ready = await fetch(`${gw.url}/ops/ready`)
  t.equal(ready.status, 200)
  t.strictSame(await ready.json(), { status: 'ready' })
  t.equal((await fetch(`${gw.url}/readyz`)).status, 404, 'the default readiness path is not served')
  const old = await fetch(`${gw.url}/healthz`)
  t.equal(old.status, 401, '/healthz is now an ordinary protected route (it asks for a token), not a probe')
  t.match(old.headers.get('www-authenticate'), /resource_metadata="[^"]*\/oauth-protected-resource\/healthz"/)
  const lines = gw.requestLogs().filter((l) => l.path === '/ops/live' || l.path === '/ops/ready')
  t.ok(lines.length === 2 && lines.every((l) => l.outcome === 'health' && l.route === null), 'logged as health requests')
})

t.test('readiness waits for the issuer\'s keys', async (t) => {
  // An issuer that is not up yet: liveness is 200 at once, readiness 503 with Retry-After.
  const down = await startGateway(() => ({
    authorizationServers: [{ issuer: 'http://127.0.0.1:9/never' }],
    routes: [route],
    health: { readinessPath: '/ready' }
  }), { waitReady: false })
  t.teardown(async () => { await down.close() })
  t.equal((await fetch(`${down.url}/healthz`)).status, 200, 'the default liveness path still works when only readiness moved')
  const ready = await fetch(`${down.url}/ready`)
  t.equal(ready.status, 503)
  t.equal(ready.headers.get('retry-after'), '5')
  t.strictSame(await ready.json(), { status: 'starting', pendingIssuers: ['http://127.0.0.1:9/never'] })
})

t.test('probes are never rate limited: perIp 1, five probes each', async (t) => {
  const gw = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [route],
    rateLimits: { perIp: { max: 1, windowSeconds: 60 } },
    health: { livenessPath: '/live', readinessPath: '/ready' }
  }))
  t.teardown(async () => { await gw.close() })
  t.equal((await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(undefined), body: LIST })).status, 401, 'the MCP route: first request (401, no token)')
  t.equal((await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(undefined), body: LIST })).status, 429, 'second request: the perIp limit of 1 applies there')
  for (const path of ['/live', '/ready', '/metrics']) {
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${gw.url}${path}`)).status)
    t.strictSame(statuses, [200, 200, 200, 200, 200], `${path}: five probes, all 200`)
  }
})
