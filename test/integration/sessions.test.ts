/**
 * Session binding (issue 5 item 1, and the Redis outage of item 7) through
 * real gateways: the real oidc-provider AS issues user tokens for alice and
 * bob, the real SDK stateful and legacy HTTP+SSE upstreams hold the sessions,
 * the real SDK client drives them, and a real redis-server (started here,
 * killed and restarted) backs the redis store. Every scenario runs over both
 * stores; the Redis-only ones use two gateways sharing one Redis.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { startAuthServer } from '../helpers/as.js'
import { startStatefulUpstream, startLegacySseUpstream, type SeenRequest } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY, type RunningGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { sessionKey, SESSION_NOT_FOUND_BODY } from '../../src/session/binding.js'

/** One resource for every route of every gateway: a token works on all of them (the issuer's `audience`). */
const RESOURCE = 'https://mcp.sessions.test/mcp'
const TOOLS_LIST = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
const PROTOCOL = '2025-06-18'

const as = await startAuthServer()
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
const stateful = await startStatefulUpstream()
const legacy = await startLegacySseUpstream()
const redis = await startRedis({ password: 'redis test pw +/=' })

async function gateway (sessions: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<RunningGateway> {
  return await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer, audience: RESOURCE }],
    routes: [
      { path: '/mcp', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'] },
      { path: '/legacy', upstream: legacy.origin, scopes: ['mcp:tools'] }
    ],
    sessions,
    ...extra
  }), { env: { REDIS_PASSWORD: 'redis test pw +/=' } })
}
const redisSection = { redis: { url: redis.url, password: { fromEnv: 'REDIS_PASSWORD' }, keyPrefix: 'sessions-test:', commandTimeoutSeconds: 0.5, connectTimeoutSeconds: 1 } }

const gwMem = await gateway({})
const gwMemTtl = await gateway({ idleTtlSeconds: 1 })
const gwA = await gateway({ store: 'redis' }, redisSection)
const gwB = await gateway({ store: 'redis' }, redisSection)
const gwAllow = await gateway({ store: 'redis', onStoreError: 'allow' }, redisSection)
const gwRedisTtl = await gateway({ store: 'redis', idleTtlSeconds: 1 }, redisSection)
const gateways = [gwMem, gwMemTtl, gwA, gwB, gwAllow, gwRedisTtl]
t.teardown(async () => {
  await Promise.all(gateways.map(async (g) => { await g.close() }))
  await Promise.all([stateful.close(), legacy.close(), as.close(), redis.close()])
})

// Wait until each redis gateway has connected (it connects on listen, in the background).
for (const g of [gwA, gwB, gwAllow, gwRedisTtl]) {
  for (let i = 0; i < 100 && g.gateway.redis?.status !== 'ready'; i++) await sleep(20)
}

const alice = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'alice' })
const bob = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: 'bob' })

/** A refresh_token grant: a new access token for the same user (same issuer and subject). */
async function refreshed (refreshToken: string): Promise<string> {
  const res = await fetch(`${as.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'user-app', resource: RESOURCE })
  })
  const json = await res.json() as { access_token?: string }
  if (json.access_token === undefined) throw new Error(`refresh failed: ${res.status} ${JSON.stringify(json)}`)
  return json.access_token
}
const aliceRefreshed = await refreshed(alice.refreshToken)

interface Answer { status: number, body: string, headers: Headers }
async function send (url: string, token: string, opts: { method?: string, sid?: string, body?: string } = {}): Promise<Answer> {
  const method = opts.method ?? 'POST'
  const headers = mcpHeaders(token, { 'mcp-protocol-version': PROTOCOL, ...(opts.sid !== undefined ? { 'mcp-session-id': opts.sid } : {}) })
  const ac = new AbortController()
  const res = await fetch(url, { method, headers, body: method === 'POST' ? (opts.body ?? TOOLS_LIST) : undefined, signal: ac.signal })
  // A GET that was admitted is an endless stream: read nothing more.
  const body = method === 'GET' && res.status === 200 ? '' : await res.text()
  ac.abort()
  return { status: res.status, body, headers: res.headers }
}

/** Initialize a Streamable HTTP session with plain requests (no GET stream is opened). */
async function initialize (gw: RunningGateway, token: string): Promise<string> {
  const res = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
  await res.text()
  const sid = res.headers.get('mcp-session-id')
  if (res.status !== 200 || sid === null) throw new Error(`initialize failed: ${res.status}`)
  const n = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(token, { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL }), body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })
  await n.text()
  return sid
}

async function sdkClient (gw: RunningGateway, token: string): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'sessions-test', version: '1.0.0' })
  await client.connect(transport)
  return { client, transport }
}

/** Requests the upstream received with this session id from this user (X-Forwarded-User is set by the gateway). */
function seen (requests: SeenRequest[], user: string, match: (r: SeenRequest) => boolean): number {
  return requests.filter((r) => r.headers['x-forwarded-user'] === user && match(r)).length
}
const withHeader = (sid: string) => (r: SeenRequest): boolean => r.headers['mcp-session-id'] === sid
const withQuery = (sid: string) => (r: SeenRequest): boolean => r.url.includes(sid)

/** Poll until `f` holds (store writes are asynchronous with Redis). */
async function eventually (f: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(25)) if (await f()) return true
  return await f()
}

const STORES: Array<{ name: string, gw: RunningGateway, ttlGw: RunningGateway }> = [
  { name: 'memory', gw: gwMem, ttlGw: gwMemTtl },
  { name: 'redis', gw: gwA, ttlGw: gwRedisTtl }
]

for (const { name, gw, ttlGw } of STORES) {
  t.test(`${name} store`, async (t) => {
    t.test('another identity\'s session id gets 404 and never reaches the upstream', async (t) => {
      const { client, transport } = await sdkClient(gw, alice.accessToken)
      const sid = transport.sessionId!
      t.ok(sid, 'alice has a session')
      const cases: Array<[string, string, { method: string, sid: string }]> = [
        ['bob POSTs tools/list in alice\'s session', bob.accessToken, { method: 'POST', sid }],
        ['bob opens the GET stream of alice\'s session', bob.accessToken, { method: 'GET', sid }],
        ['bob DELETEs alice\'s session', bob.accessToken, { method: 'DELETE', sid }],
        ['bob sends alice\'s id among repeated headers', bob.accessToken, { method: 'POST', sid: `bob-own, ${sid}` }]
      ]
      for (const [what, token, opts] of cases) {
        const before = seen(stateful.requests, 'bob', () => true)
        const res = await send(`${gw.url}/mcp`, token, opts)
        t.equal(res.status, 404, `${what}: 404`)
        t.same(JSON.parse(res.body), JSON.parse(SESSION_NOT_FOUND_BODY), `${what}: the unknown-session body`)
        t.match(res.headers.get('content-type'), /^application\/json/)
        t.equal(seen(stateful.requests, 'bob', () => true), before, `${what}: the upstream saw nothing`)
      }
      t.equal(seen(stateful.requests, 'bob', (r) => JSON.stringify(r.headers).includes(sid)), 0, 'no request of bob with that session id ever reached the upstream')
      const mismatches = gw.requestLogs().filter((l) => l.outcome === 'session_mismatch')
      t.ok(mismatches.length >= cases.length, 'logged with outcome session_mismatch')
      t.ok(mismatches.every((l) => l.status === 404 && l.subject === 'bob'))
      const warns = gw.logs.filter((l) => l.includes('session bound to another identity'))
      t.ok(warns.some((l) => l.includes(sessionKey(sid).slice(0, 12))), 'warning with a short hash of the session')
      t.notOk(gw.logs.some((l) => l.includes(sid)), 'the session id itself is never logged')

      const again = await send(`${gw.url}/mcp`, aliceRefreshed, { sid })
      t.equal(again.status, 200, 'alice with a refreshed token (same subject) keeps her session')
      t.match(again.body, /"tools"/)
      const r = await client.callTool({ name: 'echo', arguments: { text: 'still mine' } })
      t.equal((r.content as Array<{ text: string }>)[0]!.text, 'still mine', 'alice\'s SDK client is unaffected')
      await transport.terminateSession()
      await client.close()
    })

    t.test('a successful DELETE ends the binding', async (t) => {
      const sid = await initialize(gw, alice.accessToken)
      t.equal((await send(`${gw.url}/mcp`, bob.accessToken, { sid })).status, 404, 'bound')
      t.equal((await send(`${gw.url}/mcp`, alice.accessToken, { method: 'DELETE', sid })).status, 200, 'alice ends her session')
      t.ok(await eventually(async () => {
        const before = seen(stateful.requests, 'bob', withHeader(sid))
        await send(`${gw.url}/mcp`, bob.accessToken, { sid })
        return seen(stateful.requests, 'bob', withHeader(sid)) > before
      }), 'unbound: bob\'s request is forwarded, and the upstream answers for its ended session')
      t.equal((await send(`${gw.url}/mcp`, bob.accessToken, { sid })).status, 404, 'the upstream\'s own 404')
    })

    t.test('an upstream 404 for the session ends the binding', async (t) => {
      const sid = await initialize(gw, alice.accessToken)
      t.equal((await send(`${gw.url}/mcp`, bob.accessToken, { sid })).status, 404, 'bound')
      // The session ends at the upstream behind the gateway's back.
      const direct = await fetch(`${stateful.origin}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL } })
      t.equal(direct.status, 200)
      t.equal((await send(`${gw.url}/mcp`, alice.accessToken, { sid })).status, 404, 'alice gets the upstream\'s 404')
      t.ok(await eventually(async () => {
        const before = seen(stateful.requests, 'bob', withHeader(sid))
        await send(`${gw.url}/mcp`, bob.accessToken, { sid })
        return seen(stateful.requests, 'bob', withHeader(sid)) > before
      }), 'unbound: bob\'s request now reaches the upstream, which does not know the session')
    })

    t.test('the binding expires after the idle TTL, refreshed by use and held by an open stream', async (t) => {
      const sid = await initialize(ttlGw, alice.accessToken)
      for (let i = 0; i < 3; i++) {
        await sleep(500)
        t.equal((await send(`${ttlGw.url}/mcp`, alice.accessToken, { sid })).status, 200, `alice uses it at ${(i + 1) * 500} ms`)
      }
      t.equal((await send(`${ttlGw.url}/mcp`, bob.accessToken, { sid })).status, 404, '1.5 s after creation (TTL 1 s) it is still bound: every use refreshed it')
      await sleep(1400)
      const before = seen(stateful.requests, 'bob', withHeader(sid))
      const res = await send(`${ttlGw.url}/mcp`, bob.accessToken, { sid })
      t.equal(seen(stateful.requests, 'bob', withHeader(sid)), before + 1, 'idle longer than the TTL: unbound, so the request is forwarded and the upstream decides')
      t.equal(res.status, 200, 'the upstream still had the session (why idleTtlSeconds must cover the upstream\'s own session lifetime)')

      // With the SDK client, its GET stream stays open: the binding lives while it does.
      const { client, transport } = await sdkClient(ttlGw, alice.accessToken)
      const held = transport.sessionId!
      t.ok(await eventually(() => seen(stateful.requests, 'alice', (r) => r.method === 'GET' && withHeader(held)(r)) > 0), 'the client opened its GET stream')
      await sleep(2500)
      t.equal((await send(`${ttlGw.url}/mcp`, bob.accessToken, { sid: held })).status, 404, '2.5 s idle but with an open stream: still bound')
      await client.close()
      await sleep(1500)
      const b2 = seen(stateful.requests, 'bob', withHeader(held))
      await send(`${ttlGw.url}/mcp`, bob.accessToken, { sid: held })
      t.equal(seen(stateful.requests, 'bob', withHeader(held)), b2 + 1, 'stream closed, then idle past the TTL: unbound')
    })

    t.test('legacy HTTP+SSE: the endpoint event\'s sessionId is bound to the stream\'s owner', async (t) => {
      const auth = { Authorization: `Bearer ${alice.accessToken}` }
      const transport = new SSEClientTransport(new URL(`${gw.url}/legacy/sse`), {
        requestInit: { headers: auth },
        eventSourceInit: { fetch: async (url, init) => await fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth } }) }
      })
      const client = new Client({ name: 'sessions-test', version: '1.0.0' })
      await client.connect(transport)
      // The session id is the one alice's client posted with (the newest legacy session of alice).
      const sid = [...legacy.requests].reverse().find((r) => r.method === 'POST' && r.headers['x-forwarded-user'] === 'alice')?.url.split('sessionId=')[1]
      t.ok(sid, 'alice\'s client posted to the endpoint')
      const cases: Array<[string, string, string, number, string]> = [
        ['bob posts to alice\'s session', bob.accessToken, `sessionId=${sid!}`, 404, 'session_mismatch'],
        ['bob, parameter name in another case', bob.accessToken, `SESSIONID=${sid!}`, 404, 'session_mismatch'],
        ['bob, Python SDK parameter name', bob.accessToken, `session_id=${sid!}`, 404, 'session_mismatch'],
        ['bob, the id upper-cased (a variant an upstream might normalise)', bob.accessToken, `sessionId=${sid!.toUpperCase()}`, 404, 'session_not_found'],
        ['bob, an id the gateway never saw', bob.accessToken, 'sessionId=00000000-0000-4000-8000-000000000000', 404, 'session_not_found']
      ]
      for (const [what, token, query, status, outcome] of cases) {
        const before = legacy.requests.length
        const res = await send(`${gw.url}/legacy/messages?${query}`, token)
        t.equal(res.status, status, `${what}: ${status}`)
        t.same(JSON.parse(res.body), JSON.parse(SESSION_NOT_FOUND_BODY), `${what}: the unknown-session body`)
        t.equal(legacy.requests.length, before, `${what}: never forwarded`)
        t.equal(gw.requestLogs().at(-1)?.outcome, outcome, `${what}: outcome ${outcome}`)
      }
      const mine = await send(`${gw.url}/legacy/messages?sessionId=${sid!}`, aliceRefreshed)
      t.equal(mine.status, 202, 'alice (refreshed token) posts to her own session')
      const r = await client.callTool({ name: 'echo', arguments: { text: 'legacy mine' } })
      t.equal((r.content as Array<{ text: string }>)[0]!.text, 'legacy mine')
      await client.close()
      // The upstream forgets the session as the stream closes, the gateway a moment later (a store write).
      t.ok(await eventually(async () => (await send(`${gw.url}/legacy/messages?sessionId=${sid!}`, alice.accessToken)).status === 404 && gw.requestLogs().at(-1)?.outcome === 'session_not_found'),
        'the stream closed: the legacy session ended with it, and the gateway refuses it')
    })
  })
}

t.test('two gateways sharing one Redis: a session bound through A is enforced by B', async (t) => {
  const { client, transport } = await sdkClient(gwA, alice.accessToken)
  const sid = transport.sessionId!
  t.ok(await eventually(async () => (await send(`${gwB.url}/mcp`, bob.accessToken, { sid })).status === 404), 'bob through B: 404')
  t.equal(seen(stateful.requests, 'bob', withHeader(sid)), 0, 'never forwarded')
  t.equal(gwB.requestLogs().at(-1)?.outcome, 'session_mismatch')
  const viaB = await send(`${gwB.url}/mcp`, aliceRefreshed, { sid })
  t.equal(viaB.status, 200, 'alice through B: her session works on every replica')

  // Legacy: the stream through A, the POSTs through B.
  const auth = { Authorization: `Bearer ${alice.accessToken}` }
  const sse = new SSEClientTransport(new URL(`${gwA.url}/legacy/sse`), {
    requestInit: { headers: auth },
    eventSourceInit: { fetch: async (url, init) => await fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth } }) }
  })
  const legacyClient = new Client({ name: 'sessions-test', version: '1.0.0' })
  await legacyClient.connect(sse)
  const lsid = [...legacy.requests].reverse().find((r) => r.method === 'POST' && r.headers['x-forwarded-user'] === 'alice')!.url.split('sessionId=')[1]!
  t.equal((await send(`${gwB.url}/legacy/messages?sessionId=${lsid}`, bob.accessToken)).status, 404, 'legacy: bob through B refused')
  t.equal(seen(legacy.requests, 'bob', withQuery(lsid)), 0)
  t.equal((await send(`${gwB.url}/legacy/messages?sessionId=${lsid}`, alice.accessToken)).status, 202, 'legacy: alice through B accepted')
  await legacyClient.close()
  await transport.terminateSession()
  await client.close()
})

t.test('Redis down: deny answers 503, allow forwards; both recover when Redis returns', async (t) => {
  const sid = await initialize(gwA, alice.accessToken)
  t.ok(await eventually(async () => (await send(`${gwB.url}/mcp`, bob.accessToken, { sid })).status === 404), 'bound in Redis')
  await redis.kill()

  const before = seen(stateful.requests, 'alice', withHeader(sid))
  const denied = await send(`${gwA.url}/mcp`, alice.accessToken, { sid })
  t.equal(denied.status, 503, 'deny: 503')
  t.equal(denied.headers.get('retry-after'), '5', 'with Retry-After')
  t.same(JSON.parse(denied.body), { error: 'temporarily_unavailable', error_description: 'The session store is unavailable; retry later' })
  t.equal(seen(stateful.requests, 'alice', withHeader(sid)), before, 'not forwarded')
  t.equal(gwA.requestLogs().at(-1)?.outcome, 'session_store_unavailable')
  t.equal((await send(`${gwB.url}/mcp`, bob.accessToken, { sid })).status, 503, 'bob too: no check, no forwarding')
  const legacyDenied = await send(`${gwA.url}/legacy/messages?sessionId=whatever`, alice.accessToken)
  t.equal(legacyDenied.status, 503, 'legacy session checks too')

  const allowed = await send(`${gwAllow.url}/mcp`, alice.accessToken, { sid })
  t.equal(allowed.status, 200, 'allow: forwarded unchecked')
  t.equal(seen(stateful.requests, 'alice', withHeader(sid)), before + 1, 'the upstream answered it')

  const fresh = await fetch(`${gwA.url}/mcp`, { method: 'POST', headers: mcpHeaders(alice.accessToken), body: INITIALIZE_BODY })
  await fresh.text()
  t.equal(fresh.status, 200, 'a request without a session id never touches the store: unaffected')
  t.equal((await fetch(`${gwA.url}/healthz`)).status, 200, 'the gateway stays healthy')

  t.ok(gwA.logs.some((l) => l.includes('session store unavailable')), 'logged')
  t.ok(await eventually(() => gwA.logs.some((l) => l.includes('redis connection lost'))), 'the connection loss is logged')
  t.notOk(gwA.logs.some((l) => l.includes('redis test pw')), 'the Redis password never appears in the logs')
  t.ok(gwAllow.logs.some((l) => l.includes('sessions.onStoreError is allow')), 'allow mode was announced at startup')

  await redis.restart()
  t.ok(await eventually(() => gwA.gateway.redis?.status === 'ready', 5000), 'reconnected by itself')
  t.ok(gwA.logs.some((l) => l.includes('redis connection restored')), 'and says so')
  // The restarted Redis is empty: alice's session is unknown, forwarded, accepted and bound to her again.
  const back = await send(`${gwA.url}/mcp`, alice.accessToken, { sid })
  t.equal(back.status, 200, 'recovered: alice is served again')
  t.ok(await eventually(async () => (await send(`${gwB.url}/mcp`, bob.accessToken, { sid })).status === 404), 'and the session is bound to her again, on every replica')
})
