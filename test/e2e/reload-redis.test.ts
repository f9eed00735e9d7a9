/**
 * SIGHUP reload with Redis-backed stores, as users run it (the real command
 * line in a child process, a real redis-server, the real SDK stateful
 * upstream). Each config generation has its own Redis connection; the state
 * lives in Redis, so across a reload:
 * 1. a Streamable HTTP session stays bound to its owner (another identity gets
 *    404 and is never forwarded);
 * 2. a perPrincipal rate-limit window keeps its count;
 * 3. an SSE GET stream of a session, opened before, keeps flowing;
 * 4. the old generation's Redis connection is closed once it has drained
 *    (counted with CLIENT LIST by the connection name the gateway sets).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { stringify } from 'yaml'
import { Redis } from 'ioredis'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startStatefulUpstream, type SeenRequest } from '../helpers/upstream.js'
import { mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { freePort } from '../helpers/net.js'
import { startCli, eventually, logLines, countLines, readAsItArrives } from '../helpers/cli.js'
import { SESSION_NOT_FOUND_BODY } from '../../src/session/binding.js'

const PROTOCOL = '2025-06-18'
const TOOLS_LIST = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
/** The name the gateway gives its Redis connection (src/session/redis.ts `connectionName`). */
const GATEWAY_CLIENT_NAME = 'mcp-auth-gateway'


t.test('SIGHUP with redis stores keeps session bindings, rate-limit windows and open streams, and closes the old connection', async (t) => {
  const redis = await startRedis()
  const st = await startStaticIssuer()
  const stateful = await startStatefulUpstream()
  // A minimal session-aware upstream for the SSE stream (the SDK server has no way to push on its
  // standalone stream from outside): POST without a session id starts one (Mcp-Session-Id on a 2xx
  // answer, which the gateway binds); GET with it opens an SSE stream; /push writes to every open stream.
  const rawSeen: SeenRequest[] = []
  const rawSessions = new Set<string>()
  const streams = new Set<ServerResponse>()
  const raw = createServer((req, res) => {
    rawSeen.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } })
    const url = new URL(req.url ?? '/', 'http://x')
    const sid = req.headers['mcp-session-id']
    if (url.pathname === '/push') {
      for (const s of streams) s.write(`data: ${url.searchParams.get('m') ?? ''}\n\n`)
      res.end(`pushed to ${streams.size}`)
    } else if (url.pathname.endsWith('/ping')) {
      res.end('pong')
    } else if (typeof sid === 'string' && !rawSessions.has(sid)) {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(SESSION_NOT_FOUND_BODY)
    } else if (req.method === 'POST' && sid === undefined) {
      const id = randomUUID()
      rawSessions.add(id)
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': id })
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { protocolVersion: PROTOCOL, capabilities: {}, serverInfo: { name: 'raw', version: '1' } } }))
    } else if (req.method === 'GET' && sid !== undefined) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.write(': open\n\n')
      streams.add(res)
      res.on('close', () => streams.delete(res))
    } else {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end('{}')
    }
  })
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
  const rawOrigin = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`
  // Our own connection to count the gateway's (it sets no name, so it is not counted).
  const admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1 })
  await admin.connect()
  t.teardown(async () => {
    admin.disconnect()
    raw.closeAllConnections()
    raw.close()
    await Promise.all([stateful.close(), st.close(), redis.close()])
  })
  const gatewayClients = async (): Promise<number> =>
    (await admin.client('LIST') as string).split('\n').filter((l) => l.includes(` name=${GATEWAY_CLIENT_NAME} `)).length

  const dir = mkdtempSync(join(tmpdir(), 'gw-reload-redis-'))
  const file = join(dir, 'gateway.yaml')
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const routes = [
    { path: '/mcp', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/events', upstream: `${rawOrigin}/events`, scopes: ['mcp:tools'] }
  ]
  const base = {
    listen: { port },
    publicUrl: origin,
    authorizationServers: [{ issuer: st.issuer }],
    // Long enough that the old generation closes because its stream ended, not because it was cut.
    shutdownTimeoutSeconds: 30,
    sessions: { store: 'redis' },
    rateLimits: { store: 'redis', perPrincipal: { max: 5, windowSeconds: 60 } },
    redis: { url: redis.url, keyPrefix: 'reload-redis-test:' }
  }
  writeFileSync(file, stringify({ ...base, routes }))
  const gw = startCli(['--config', file], { cwd: dir })
  t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
  t.ok(await eventually(() => gw.stdout().includes('authorization server keys loaded') && countLines(gw.stdout(), 'redis connected') === 1, 15_000), 'the gateway is up and connected to redis')
  t.equal(await gatewayClients(), 1, 'one gateway connection to redis before the reload')

  // Every user counts against perPrincipal (5 a minute), so each part of the test has its own.
  const token = async (sub: string, route: string): Promise<string> => await st.sign(st.claims({ sub, aud: `${origin}${route}`, scope: 'mcp:tools' }))
  const alice = await token('alice', '/mcp')
  const bob = await token('bob', '/mcp')
  const carol = await token('carol', '/events')
  const dave = await token('dave', '/events')
  const erin = await token('erin', '/v2')
  const send = async (path: string, tok: string, opts: { method?: string, sid?: string, body?: string } = {}): Promise<{ status: number, body: string, headers: Headers }> => {
    const method = opts.method ?? 'POST'
    const headers = mcpHeaders(tok, { 'mcp-protocol-version': PROTOCOL, ...(opts.sid !== undefined ? { 'mcp-session-id': opts.sid } : {}) })
    const res = await fetch(`${origin}${path}`, { method, headers, body: method === 'POST' ? (opts.body ?? TOOLS_LIST) : undefined })
    return { status: res.status, body: await res.text(), headers: res.headers }
  }
  const aliceWithSid = (sid: string): number => stateful.requests.filter((r) => r.headers['x-forwarded-user'] === 'alice' && r.headers['mcp-session-id'] === sid).length
  const bobSeen = (): number => stateful.requests.filter((r) => r.headers['x-forwarded-user'] === 'bob').length

  // 1. Alice's Streamable HTTP session on the real SDK upstream, bound before the reload (3 of alice's 5).
  const init = await send('/mcp', alice, { body: INITIALIZE_BODY })
  const sid = init.headers.get('mcp-session-id')
  t.equal(init.status, 200, 'alice initializes a session')
  t.ok(sid, 'the upstream gave a session id')
  t.equal((await send('/mcp', alice, { sid: sid!, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).status, 202)
  t.equal((await send('/mcp', alice, { sid: sid! })).status, 200, 'alice uses her session before the reload')
  const bobBefore = await send('/mcp', bob, { sid: sid! })
  t.equal(bobBefore.status, 404, 'before the reload: bob is refused alice\'s session')
  t.equal(bobSeen(), 0, 'before the reload: nothing of bob reached the upstream')

  // 2. Carol spends 3 of her 5 before the reload.
  const pingsBefore = rawSeen.filter((r) => r.url.endsWith('/ping')).length
  for (let i = 1; i <= 3; i++) t.same(await send('/events/ping', carol, { method: 'GET' }).then((r) => [r.status, r.body]), [200, 'pong'], `carol's request ${i} of 5 before the reload`)

  // 3. Dave's session on the raw upstream, and its SSE GET stream, read as it arrives.
  const dinit = await send('/events', dave, { body: INITIALIZE_BODY })
  const dsid = dinit.headers.get('mcp-session-id')
  t.ok(dinit.status === 200 && dsid !== null, 'dave initializes a session')
  const stream = await fetch(`${origin}/events`, { headers: { authorization: `Bearer ${dave}`, accept: 'text/event-stream', 'mcp-protocol-version': PROTOCOL, 'mcp-session-id': dsid! } })
  t.equal(stream.status, 200, 'dave\'s SSE GET stream is open')
  const reading = readAsItArrives(stream.body!)
  const push = async (m: string): Promise<string> => await (await fetch(`${rawOrigin}/push?m=${m}`)).text()
  t.equal(await push('before'), 'pushed to 1')
  t.ok(await eventually(() => reading.text().includes('data: before'), 3000), 'the stream receives events before the reload')
  t.equal((await admin.keys('reload-redis-test:session:*')).length, 2, 'both bindings are in redis')

  // Reload: a new generation (new route /v2) with its own Redis connection.
  writeFileSync(file, stringify({ ...base, routes: [...routes, { path: '/v2', upstream: `${rawOrigin}/v2`, scopes: ['mcp:tools'] }] }))
  gw.child.kill('SIGHUP')
  t.ok(await eventually(() => countLines(gw.stdout(), 'config reloaded') === 1, 15_000), 'the reload is logged')
  const reloaded = logLines(gw.stdout()).find((l) => l.msg === 'config reloaded')!
  t.equal(reloaded.draining, 1, 'dave\'s stream is left to drain on the old generation')
  t.same(await send('/v2/ping', erin, { method: 'GET' }).then((r) => [r.status, r.body]), [200, 'pong'], 'the new generation serves new requests (its new route answers)')
  t.ok(await eventually(async () => await gatewayClients() === 2, 5000), 'two gateway connections while the old generation drains (old and new)')

  // 1. After the reload the binding still holds, read through the new generation's connection.
  const aliceBefore = aliceWithSid(sid!)
  const aliceAfter = await send('/mcp', alice, { sid: sid! })
  t.equal(aliceAfter.status, 200, 'after the reload: alice\'s request in her session is forwarded')
  t.match(aliceAfter.body, /"tools"/, 'and the upstream answers it in her session')
  t.equal(aliceWithSid(sid!), aliceBefore + 1, 'the upstream received it')
  const bobCases: Array<[string, { method: string, sid: string }]> = [
    ['bob POSTs in alice\'s session', { method: 'POST', sid: sid! }],
    ['bob opens the GET stream of alice\'s session', { method: 'GET', sid: sid! }],
    ['bob DELETEs alice\'s session', { method: 'DELETE', sid: sid! }]
  ]
  for (const [what, opts] of bobCases) {
    const total = stateful.requests.length
    const res = await send('/mcp', bob, opts)
    t.equal(res.status, 404, `after the reload: ${what}: 404`)
    t.same(JSON.parse(res.body), JSON.parse(SESSION_NOT_FOUND_BODY), `after the reload: ${what}: the unknown-session body`)
    t.equal(stateful.requests.length, total, `after the reload: ${what}: the upstream saw nothing`)
  }
  t.equal(bobSeen(), 0, 'no request of bob ever reached the upstream (the new generation did not re-bind the session to him)')

  // 2. Carol's window continues: 2 more are allowed, the next is 429.
  for (let i = 4; i <= 5; i++) t.same(await send('/events/ping', carol, { method: 'GET' }).then((r) => [r.status, r.body]), [200, 'pong'], `carol's request ${i} of 5, after the reload`)
  const over = await send('/events/ping', carol, { method: 'GET' })
  t.equal(over.status, 429, 'carol\'s 6th request in the window is refused: the count taken before the reload still counts')
  t.same(JSON.parse(over.body), { error: 'rate_limited', error_description: 'Too many requests; retry later' })
  const retryAfter = Number(over.headers.get('retry-after'))
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is the rest of the 60 s window (${String(over.headers.get('retry-after'))})`)
  t.equal(over.headers.get('x-ratelimit-limit'), '5')
  t.equal(rawSeen.filter((r) => r.url.endsWith('/ping') && r.headers['x-forwarded-user'] === 'carol').length - pingsBefore, 5, 'the refused request never reached the upstream')

  // 3. The stream opened before the reload still flows.
  t.equal(await push('after-reload'), 'pushed to 1')
  t.ok(await eventually(() => reading.text().includes('data: after-reload'), 3000), 'the open stream still receives events after the reload')
  t.notOk(reading.ended(), 'the open stream was not dropped')
  // Its binding holds too: bob cannot use dave's session on the new generation.
  t.equal((await send('/events', await token('frank', '/events'), { method: 'GET', sid: dsid! })).status, 404, 'dave\'s session is still bound to dave after the reload')

  // 4. The old generation closes its Redis connection once its stream ends; the new one keeps its own.
  t.equal(countLines(gw.stdout(), 'previous config drained and closed'), 0, 'the old generation is still draining while the stream is open')
  t.equal(await gatewayClients(), 2, 'its connection is still open while it drains')
  for (const s of streams) s.end()
  await reading.done
  t.ok(reading.ended(), 'the stream ended when the upstream ended it')
  t.ok(await eventually(() => countLines(gw.stdout(), 'previous config drained and closed') === 1, 5000), 'the old generation is closed once drained')
  t.ok(await eventually(async () => await gatewayClients() === 1, 3000), 'back to one gateway connection: the old generation\'s was closed')
  // The new generation's connection is untouched by the old one's close: alice's 5th request is
  // admitted in her session and her 6th refused (both stores read through it).
  t.equal((await send('/mcp', alice, { sid: sid! })).status, 200, 'after the old generation closed: alice\'s 5th request is forwarded in her session')
  t.equal((await send('/mcp', alice, { sid: sid! })).status, 429, 'and her 6th is over the limit')
  t.equal((await send('/mcp', bob, { sid: sid! })).status, 404, 'bob is still refused alice\'s session (his 5th request)')
  t.equal(bobSeen(), 0, 'and nothing of bob reached the upstream')

  gw.child.kill('SIGTERM')
  const exit = await gw.done
  t.equal(exit.code, 0, 'SIGTERM exits 0')
  t.equal(await gatewayClients(), 0, 'the last generation\'s connection is closed at shutdown')
  t.equal(countLines(exit.stdout, 'closing a previous config failed'), 0, 'no error closing the old generation')
  for (const tok of [alice, bob, carol, dave, erin]) t.notOk(exit.stdout.includes(tok), 'no token in the log')
  t.notOk(exit.stdout.includes(sid!), 'no session id in the log')
})
