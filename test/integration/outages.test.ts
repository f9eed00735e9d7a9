/**
 * Issue 5 item 7: outages of the components the gateway depends on, made by
 * stopping and restarting the real components: the oidc-provider AS (JWKS
 * and introspection) and a real MCP SDK upstream. Redis outages are covered
 * with the sessions and rate-limit stores.
 *
 * - JWKS unreachable after startup: keys fetched before keep verifying tokens,
 *   even once the key set is older than its max age; a token whose key is not
 *   among them gets 401 `unknown_key` (not a 5xx), a warning and a counter; the
 *   AS is asked again at most once per cooldown; when it is back, rotated keys
 *   are picked up.
 * - Introspection unreachable: 503 with Retry-After; cached results still serve.
 * - Upstream down: 502, /healthz and /readyz stay 200; back up: requests succeed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { startAuthServer, type TestAS } from '../helpers/as.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { buildTestMcpServer } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'

/** A server that can be stopped (every connection cut) and started again on the same port. */
interface Restartable { port: number, stop: () => Promise<void>, start: () => Promise<void> }
async function restartable (handler: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<Restartable> {
  let server: Server | undefined
  const r: Restartable = {
    port,
    async start () {
      const s = createServer(handler)
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(r.port, '127.0.0.1', resolve) })
      r.port = (s.address() as AddressInfo).port
      server = s
    },
    async stop () {
      const s = server
      server = undefined
      if (s === undefined) return
      s.closeAllConnections()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    }
  }
  await r.start()
  return r
}

/**
 * A real MCP server built with the SDK (stateless Streamable HTTP, JSON answers): a new
 * McpServer and transport per POST, so nothing is lost across a restart.
 */
function sdkUpstreamHandler (req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end()
    return
  }
  const server = buildTestMcpServer()
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
  res.on('close', () => { void transport.close(); void server.close() })
  void server.connect(transport).then(async () => { await transport.handleRequest(req, res) })
}

/** Stops the AS's own HTTP server; start() serves the same provider (same keys, same tokens) on the same port again. */
async function takeOver (as: TestAS): Promise<Restartable> {
  const port = Number(new URL(as.issuer).port)
  await as.close()
  const r = await restartable(as.provider.callback(), port)
  return r
}

const COOLDOWN_MS = 400
const as = await startAuthServer()
const asOpaque = await startAuthServer()
const st = await startStaticIssuer({ alg: 'ES256' })
const upstream = await restartable(sdkUpstreamHandler)
const UPSTREAM = `http://127.0.0.1:${upstream.port}/mcp`

const gw = await startGateway(() => ({
  authorizationServers: [
    { issuer: as.issuer },
    { issuer: st.issuer },
    {
      issuer: asOpaque.issuer,
      tokenType: 'opaque',
      introspection: { endpoint: `${asOpaque.issuer}/token/introspection`, clientId: asOpaque.clients.gatewayBasic.id, clientSecret: { fromEnv: 'INTROSPECTION_SECRET' } }
    }
  ],
  routes: [
    { path: '/mcp', upstream: UPSTREAM, scopes: ['mcp:tools'], issuers: [as.issuer, st.issuer] },
    { path: '/opaque', upstream: UPSTREAM, scopes: ['mcp:tools'], issuers: [asOpaque.issuer] }
  ]
}), {
  // A key set older than 300 ms is refetched before use, and a failed fetch is retried after 400 ms:
  // the outage below outlasts both, so the stale-keys path is what serves.
  verifier: { jwksMaxAgeMs: 300, jwksCooldownMs: COOLDOWN_MS, retryInitialMs: 50, retryMaxMs: 200 },
  env: { INTROSPECTION_SECRET: asOpaque.clients.gatewayBasic.secret }
})
const RESOURCE = `${gw.url}/mcp`
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
asOpaque.registerResource({ url: `${gw.url}/opaque`, scope: 'mcp:tools', format: 'opaque' })

const restarted: Restartable[] = []
t.teardown(async () => {
  await gw.close()
  await upstream.stop()
  for (const r of restarted) await r.stop()
  await Promise.all([as.close().catch(() => {}), asOpaque.close().catch(() => {}), st.close()])
})

const call = async (path: string, token: string): Promise<Response> =>
  await fetch(`${gw.url}${path}`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
const health = async (): Promise<[number, number]> => [(await fetch(`${gw.url}/healthz`)).status, (await fetch(`${gw.url}/readyz`)).status]
const logLines = (msg: string): Array<Record<string, unknown>> => gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg)

t.test('upstream down: 502, the gateway stays healthy; upstream back: requests succeed again', async (t) => {
  const token = await as.clientCredentialsToken({ resource: RESOURCE })
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'outage-test', version: '1.0.0' })
  await client.connect(transport)
  const echo = async (text: string): Promise<string> => ((await client.callTool({ name: 'echo', arguments: { text } })).content as Array<{ text: string }>)[0]!.text
  t.equal(await echo('before'), 'before', 'a tool call through the gateway')

  await upstream.stop()
  const res = await fetch(RESOURCE, { method: 'POST', headers: mcpHeaders(token), body: JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'tools/list' }) })
  t.equal(res.status, 502, 'upstream refused the connection: 502')
  const body = await res.json() as { jsonrpc: string, id: number, error: { code: number } }
  t.equal(body.id, 41, 'a JSON-RPC error for the request id')
  t.equal(body.error.code, -32000)
  await t.rejects(echo('during'), 'the SDK client sees the failure')
  t.same(await health(), [200, 200], '/healthz and /readyz stay 200')
  t.ok(logLines('upstream request failed').some((l) => l.code === 'ECONNREFUSED'), 'logged with the error code')

  await upstream.start()
  t.equal(await echo('after'), 'after', 'the upstream is back: the same client works again')
  await client.close()
})

t.test('AS down after startup: cached keys keep working, unknown keys get 401 (counted, logged), keys rotate in when it is back', async (t) => {
  const stats = gw.gateway.authenticator.keyOutageStats
  const used = await as.clientCredentialsToken({ resource: RESOURCE })
  // Tokens issued before the outage and never shown to the gateway: not in its token cache.
  const fresh = await Promise.all([1, 2, 3].map(async () => await as.clientCredentialsToken({ resource: RESOURCE })))
  t.equal((await call('/mcp', used)).status, 200, 'before the outage')

  const asServer = await takeOver(as)
  await asServer.stop()
  restarted.push(asServer)
  const stUp = st.jwksFetches
  await st.close()
  // Past the key set's max age: a plain remote JWKS would refetch, fail, and refuse every token.
  await sleep(400)

  t.equal((await call('/mcp', used)).status, 200, 'a token verified before: served from the token cache')
  for (const token of fresh) t.equal((await call('/mcp', token)).status, 200, 'a new token signed by a known key: verified with the keys fetched before')
  t.same(await health(), [200, 200], '/healthz and /readyz stay 200')

  // A key rotated in during the outage: the gateway cannot have it.
  await st.rotate()
  const rotated = await st.sign(st.claims({ aud: RESOURCE, jti: 'rotated' }))
  const res = await call('/mcp', rotated)
  t.equal(res.status, 401, 'unknown key during the outage: 401, not a 5xx')
  t.match(res.headers.get('www-authenticate'), /error="invalid_token", error_description="The access token was signed with an unknown key"/)
  const after = gw.gateway.authenticator.keyOutageStats
  t.ok(after.unknownKeyDuringOutage > stats.unknownKeyDuringOutage, `counted (unknownKeyDuringOutage ${stats.unknownKeyDuringOutage} → ${after.unknownKeyDuringOutage})`)
  t.ok(after.jwksFetchFailures > stats.jwksFetchFailures, `failed fetches counted (${stats.jwksFetchFailures} → ${after.jwksFetchFailures})`)
  const warned = logLines('token key not in the last key set fetched while the JWKS is unreachable; refused')
  t.ok(warned.some((l) => l.issuer === st.issuer && l.level === 40), 'a warning names the issuer')
  t.ok(logLines('JWKS unreachable; verifying with the keys fetched before').some((l) => l.issuer === as.issuer), 'the outage itself is logged')
  t.equal(st.jwksFetches, stUp, 'no fetch reached the stopped issuer')

  // A burst of unknown kids within one cooldown costs at most one fetch attempt, not one per request.
  await sleep(COOLDOWN_MS + 50)
  const failuresBefore = gw.gateway.authenticator.keyOutageStats.jwksFetchFailures
  const burst = await Promise.all(Array.from({ length: 20 }, async (_, i) => (await call('/mcp', await st.sign(st.claims({ aud: RESOURCE, jti: `burst-${i}` })))).status))
  t.same([...new Set(burst)], [401], 'every unknown-key token: 401')
  t.ok(gw.gateway.authenticator.keyOutageStats.jwksFetchFailures - failuresBefore <= 1, 'at most one fetch attempt for the whole burst')

  // The AS comes back (same provider, same port): a new token verifies, nothing is stuck.
  await asServer.start()
  await sleep(COOLDOWN_MS + 50)
  const later = await as.clientCredentialsToken({ resource: RESOURCE })
  t.equal((await call('/mcp', later)).status, 200, 'the AS is back: new tokens verify')
  t.equal((await call('/mcp', used)).status, 200, 'and old ones still do')
  const errors = gw.logs.map((l) => JSON.parse(l) as { level: number, msg: string }).filter((l) => l.level >= 50)
  t.same(errors.map((e) => e.msg), [], 'no error-level log line')
})

t.test('AS restarted with new keys (rotation while it was down): picked up on the next unknown kid', async (t) => {
  // A new oidc-provider instance on the same issuer URL: same port, new signing keys.
  const port = Number(new URL(as.issuer).port)
  await restarted.pop()!.stop()
  const as2 = await startAuthServer({ port })
  t.teardown(async () => { await as2.close() })
  t.equal(as2.issuer, as.issuer, 'same issuer')
  as2.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
  await sleep(COOLDOWN_MS + 50)
  const token = await as2.clientCredentialsToken({ resource: RESOURCE })
  t.equal((await call('/mcp', token)).status, 200, 'a token from the restarted AS, signed with a key new to the gateway')
})

t.test('introspection endpoint down: 503 with Retry-After; cached results still serve; back up: 200', async (t) => {
  const cached = await asOpaque.clientCredentialsToken({ resource: `${gw.url}/opaque` })
  const unseen = await asOpaque.clientCredentialsToken({ resource: `${gw.url}/opaque` })
  t.equal((await call('/opaque', cached)).status, 200, 'before the outage')

  const server = await takeOver(asOpaque)
  restarted.push(server)
  await server.stop()
  const res = await call('/opaque', unseen)
  t.equal(res.status, 503, 'cannot be introspected: 503')
  t.equal(res.headers.get('retry-after'), '5', 'Retry-After')
  t.same(await res.json(), { error: 'temporarily_unavailable', error_description: 'The authorization server cannot be reached to validate the token; retry later' })
  t.equal((await call('/opaque', cached)).status, 200, 'a result introspected before is still cached')
  t.same(await health(), [200, 200], '/healthz and /readyz stay 200')

  await server.start()
  t.equal((await call('/opaque', unseen)).status, 200, 'the endpoint is back: the same token is accepted')
})

