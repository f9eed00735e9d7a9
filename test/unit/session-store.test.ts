/**
 * Session binding stores and the binder's logic, without fastify: the memory
 * store (TTL, LRU bound, first claim wins), the Redis store against a real
 * redis-server (started here on a free port: the store is a unit whose other
 * half is Redis itself, so it is tested against the real thing), the same
 * contract table over both, the request-side session id extraction, and the
 * SessionBinder/SessionExchange decisions.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import pino from 'pino'
import { MemorySessionStore, isPromise, type SessionStore } from '../../src/session/store.js'
import { RedisSessionStore, SESSION_KEY_NAMESPACE } from '../../src/session/redis-store.js'
import {
  SessionBinder, SessionExchange, sessionIdsOf, sessionKey, ownerOf, SESSION_NOT_FOUND_BODY, type SessionCheck, type SessionRefusal
} from '../../src/session/binding.js'
import type { Principal } from '../../src/auth/principal.js'
import { startRedis } from '../helpers/redis.js'

function principal (subject: string, issuer = 'https://as.example.com'): Principal {
  return Object.freeze({
    subject,
    clientId: undefined,
    issuer,
    scopes: new Set<string>(),
    scopeString: '',
    roles: new Set<string>(),
    roleString: '',
    claims: { sub: subject },
    expiresAtMs: Date.now() + 600_000
  })
}

function logSink (): { logger: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    }
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

const redisServer = await startRedis()
const redisClients: Redis[] = []
function redisClient (prefix: string): Redis {
  const r = new Redis({ port: redisServer.port, host: '127.0.0.1', keyPrefix: prefix, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1000, lazyConnect: true, retryStrategy: () => 100 })
  r.on('error', () => { /* outages are provoked below */ })
  redisClients.push(r)
  return r
}
t.teardown(async () => {
  for (const r of redisClients) r.disconnect()
  await redisServer.close()
})

t.test('sessionKey and ownerOf: fixed-size hashes, never the raw values', async (t) => {
  const id = 'c0ffee00-1234-4abc-8def-0123456789ab'
  t.equal(sessionKey(id), createHash('sha256').update(id).digest('base64url'))
  t.equal(sessionKey('x'.repeat(100_000)).length, 43, 'a huge id still makes a 43-character key')
  const alice = principal('alice')
  const o = ownerOf(alice)
  t.equal(o.length, 43)
  t.notOk(o.includes('alice'))
  t.equal(ownerOf(principal('alice')), o, 'same issuer and subject, another principal object (a refreshed token): same owner')
  t.not(ownerOf(principal('bob')), o, 'another subject')
  t.not(ownerOf(principal('alice', 'https://other.example.com')), o, 'same subject at another issuer is another identity')
  // JSON encoding keeps (issuer, subject) pairs unambiguous.
  t.not(ownerOf(principal('b', 'https://a.example.com/x')), ownerOf(principal('x","b', 'https://a.example.com/')))
})

t.test('sessionIdsOf: where requests carry session ids', async (t) => {
  const cases: Array<[string, string | string[] | undefined, string, { header: string[], legacy: string[] } | undefined]> = [
    ['no header, no query', undefined, '/mcp', undefined],
    ['no header, unrelated query', undefined, '/mcp?x=1', undefined],
    ['empty header value is no id', '', '/mcp', undefined],
    ['trailing ? only', undefined, '/mcp?', undefined],
    ['Mcp-Session-Id', 'abc', '/mcp', { header: ['abc'], legacy: [] }],
    ['repeated headers (Node joins them): whole value and each part', 'a, b', '/mcp', { header: ['a, b', 'a', 'b'], legacy: [] }],
    ['comma without space: whole value and each part', 'a,b', '/mcp', { header: ['a,b', 'a', 'b'], legacy: [] }],
    ['array form', ['a', 'b'], '/mcp', { header: ['a, b', 'a', 'b'], legacy: [] }],
    ['legacy sessionId', undefined, '/legacy/messages?sessionId=s1', { header: [], legacy: ['s1'] }],
    ['legacy session_id (Python SDK)', undefined, '/m?session_id=s2', { header: [], legacy: ['s2'] }],
    ['legacy name in another case (ASP.NET reads it so)', undefined, '/m?SESSIONID=s3', { header: [], legacy: ['s3'] }],
    ['percent-encoded name', undefined, '/m?session%49d=s4', { header: [], legacy: ['s4'] }],
    ['percent-encoded value is decoded', undefined, '/m?sessionId=a%2Db', { header: [], legacy: ['a-b'] }],
    ['plus is a space', undefined, '/m?sessionId=a+b', { header: [], legacy: ['a b'] }],
    ['repeated parameter: every value', undefined, '/m?sessionId=a&sessionId=b', { header: [], legacy: ['a', 'b'] }],
    ['both kinds', 'h', '/m?x=1&session_id=q', { header: ['h'], legacy: ['q'] }]
  ]
  for (const [name, header, url, want] of cases) {
    const got = sessionIdsOf(header, url)
    t.same(got === undefined ? undefined : { header: [...got.header], legacy: [...got.legacy] }, want, name)
  }
})

t.test('memory store: idle TTL refreshed by use, first claim wins, delete, touch', async (t) => {
  let now = 1_000_000
  const s = new MemorySessionStore({ idleTtlMs: 1000, maxEntries: 10, now: () => now })
  t.equal(s.get('k'), undefined, 'unknown key')
  s.claim('k', 'alice /mcp')
  t.equal(s.get('k'), 'alice /mcp')
  s.claim('k', 'bob /mcp')
  t.equal(s.get('k'), 'alice /mcp', 'a second claim does not replace the first')
  now += 900
  t.equal(s.get('k'), 'alice /mcp', 'used at 900 ms: refreshed')
  now += 900
  t.equal(s.get('k'), 'alice /mcp', '1800 ms after the claim, 900 after the last use: still there')
  now += 1000
  t.equal(s.get('k'), undefined, 'idle for the whole TTL: gone')
  t.equal(s.size, 0, 'expired entry dropped')
  s.claim('k', 'bob /mcp')
  t.equal(s.get('k'), 'bob /mcp', 'an expired binding can be claimed again')
  s.delete('k')
  t.equal(s.get('k'), undefined, 'deleted')
  s.claim('a', 'x')
  s.claim('b', 'y')
  now += 600
  s.touch(['a', 'missing'])
  now += 600
  t.equal(s.get('a'), 'x', 'touched: kept')
  t.equal(s.get('b'), undefined, 'not touched: expired')
  t.equal(s.get('missing'), undefined, 'touch creates nothing')
})

t.test('memory store: bounded; expired entries go first, then the least recently used', async (t) => {
  let now = 0
  let evicted = 0
  const s = new MemorySessionStore({ idleTtlMs: 1000, maxEntries: 3, now: () => now, onEvict: () => { evicted++ } })
  s.claim('a', '1')
  s.claim('b', '2')
  s.claim('c', '3')
  now += 2000
  s.claim('d', '4')
  t.equal(s.size, 1, 'the three expired entries were swept, not evicted')
  t.equal(evicted, 0)
  s.claim('e', '5')
  s.claim('f', '6')
  t.equal(s.get('d'), '4', 'use d: it becomes the most recently used')
  s.claim('g', '7')
  t.equal(evicted, 1, 'full of live entries: one evicted, and reported')
  t.equal(s.size, 3)
  t.equal(s.get('e'), undefined, 'e, the least recently used, was evicted')
  t.equal(s.get('d'), '4')
  t.equal(s.get('f'), '6')
  t.equal(s.get('g'), '7')
  s.close()
  t.equal(s.size, 0, 'close forgets everything')
})

t.test('the memory store answers synchronously (no await on the request path)', async (t) => {
  const s = new MemorySessionStore({ idleTtlMs: 1000, maxEntries: 10 })
  const v = s.get('k')
  t.notOk(isPromise(v))
  t.ok(isPromise(new RedisSessionStore(redisClient('sync:'), { idleTtlMs: 1000 }).get('k').catch(() => undefined)), 'the Redis store always answers with a Promise')
})

t.test('store contract, over both stores', async (t) => {
  const stores: Array<[string, (ttl: number) => Promise<SessionStore>]> = [
    ['memory', async (ttl) => new MemorySessionStore({ idleTtlMs: ttl, maxEntries: 100 })],
    ['redis', async (ttl) => {
      const r = redisClient(`contract-${ttl}-${Math.random().toString(36).slice(2)}:`)
      await r.connect()
      return new RedisSessionStore(r, { idleTtlMs: ttl })
    }]
  ]
  for (const [name, make] of stores) {
    t.test(name, async (t) => {
      const s = await make(400)
      t.equal(await s.get('k'), undefined, 'unknown')
      await s.claim('k', 'alice /mcp')
      t.equal(await s.get('k'), 'alice /mcp', 'claimed')
      await s.claim('k', 'bob /mcp')
      t.equal(await s.get('k'), 'alice /mcp', 'first claim wins')
      await sleep(250)
      t.equal(await s.get('k'), 'alice /mcp', 'used before the TTL: refreshed')
      await sleep(250)
      t.equal(await s.get('k'), 'alice /mcp', 'still there 500 ms after the claim (TTL 400 ms), thanks to the use')
      await sleep(550)
      t.equal(await s.get('k'), undefined, 'idle longer than the TTL: gone')
      await s.claim('a', '1')
      await s.claim('b', '2')
      await sleep(250)
      await s.touch(['a', 'nothing'])
      await sleep(250)
      t.equal(await s.get('a'), '1', 'touched: kept')
      t.equal(await s.get('b'), undefined, 'not touched: expired')
      t.equal(await s.get('nothing'), undefined, 'touch creates nothing')
      await s.delete('a')
      t.equal(await s.get('a'), undefined, 'deleted')
      await s.touch([])
      t.pass('touching no keys is a no-op')
    })
  }
})

t.test('redis store: keys live under the connection prefix and the session namespace, with a PX expiry', async (t) => {
  const r = redisClient('unit-ns:')
  await r.connect()
  const s = new RedisSessionStore(r, { idleTtlMs: 60_000 })
  const key = sessionKey('sid-1')
  await s.claim(key, 'owner /mcp')
  const raw = new Redis({ port: redisServer.port, host: '127.0.0.1', lazyConnect: true })
  await raw.connect()
  t.teardown(() => { raw.disconnect() })
  t.equal(await raw.get(`unit-ns:${SESSION_KEY_NAMESPACE}${key}`), 'owner /mcp')
  const ttl = await raw.pttl(`unit-ns:${SESSION_KEY_NAMESPACE}${key}`)
  t.ok(ttl > 55_000 && ttl <= 60_000, `expiry set (${ttl} ms)`)
  t.equal((await raw.keys('*sid-1*')).length, 0, 'the raw session id appears in no key')
})

t.test('redis store: an unreachable Redis fails fast, and works again once Redis is back', async (t) => {
  const srv = await startRedis()
  t.teardown(async () => { await srv.close() })
  const r = new Redis({ port: srv.port, host: '127.0.0.1', keyPrefix: 'outage:', enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 500, lazyConnect: true, retryStrategy: () => 50 })
  r.on('error', () => {})
  t.teardown(() => { r.disconnect() })
  await r.connect()
  const s = new RedisSessionStore(r, { idleTtlMs: 60_000 })
  await s.claim('k', 'v')
  await srv.kill()
  const started = Date.now()
  await t.rejects(s.get('k'), 'get rejects while Redis is down')
  await t.rejects(s.claim('k2', 'v'), 'claim rejects too')
  t.ok(Date.now() - started < 1500, 'within the command timeout, not queued until Redis returns')
  await srv.restart()
  for (let i = 0; i < 100 && r.status !== 'ready'; i++) await sleep(50)
  t.equal(r.status, 'ready', 'reconnected by itself')
  t.equal(await s.get('k'), undefined, 'the restarted Redis is empty (nothing saved)')
  await s.claim('k', 'again')
  t.equal(await s.get('k'), 'again', 'works again')
})

/** A binder over a memory store with a controllable clock. */
function memoryBinder (opts: { ttl?: number, onStoreError?: 'deny' | 'allow', store?: SessionStore } = {}): { binder: SessionBinder, store: SessionStore, lines: Array<Record<string, unknown>> } {
  const { logger, lines } = logSink()
  const store = opts.store ?? new MemorySessionStore({ idleTtlMs: opts.ttl ?? 60_000, maxEntries: 1000 })
  return { binder: new SessionBinder({ store, onStoreError: opts.onStoreError ?? 'deny', idleTtlMs: opts.ttl ?? 60_000, logger }), store, lines }
}

const LOG = { reqId: 'req-1', route: '/mcp' }
const alice = principal('alice')
const aliceRefreshed = principal('alice')
const bob = principal('bob')

function ids (header: string | undefined, url = '/mcp'): NonNullable<ReturnType<typeof sessionIdsOf>> {
  const r = sessionIdsOf(header, url)
  if (r === undefined) throw new Error('no ids')
  return r
}

function sync (c: SessionCheck | Promise<SessionCheck>): SessionCheck {
  if (isPromise(c)) throw new Error('memory check was not synchronous')
  return c
}

/** Initialize as `who` through a binder: a POST without a session id whose 200 response sets one. */
function initialize (binder: SessionBinder, who: Principal, sid: string, path = '/mcp'): void {
  const ex = binder.watch(who, 'POST', path)!
  ex.responseStart(200, ['content-type', 'text/event-stream', 'mcp-session-id', sid])
  ex.end()
}

t.test('binder: a session is honoured only for the identity that created it', async (t) => {
  const { binder, lines } = memoryBinder()
  initialize(binder, alice, 'S1')
  const cases: Array<[string, Principal, string, 'ok' | SessionRefusal['outcome']]> = [
    ['alice, same token', alice, 'S1', 'ok'],
    ['alice, refreshed token (same issuer and subject)', aliceRefreshed, 'S1', 'ok'],
    ['bob with alice\'s session', bob, 'S1', 'session_mismatch'],
    ['alice at another issuer', principal('alice', 'https://other.example.com'), 'S1', 'session_mismatch'],
    ['bob with alice\'s session among repeated headers', bob, 'MINE, S1', 'session_mismatch'],
    ['bob with an unknown session: forwarded (the upstream decides)', bob, 'S-unknown', 'ok']
  ]
  for (const [name, who, header, want] of cases) {
    const c = sync(binder.check(ids(header), who, 'POST', '/mcp', LOG))
    t.equal(c instanceof SessionExchange ? 'ok' : c.outcome, want, name)
    if (!(c instanceof SessionExchange)) {
      t.equal(c.status, 404, `${name}: 404`)
      t.equal(c.body, SESSION_NOT_FOUND_BODY, `${name}: the unknown-session body`)
    }
  }
  t.same(JSON.parse(SESSION_NOT_FOUND_BODY), { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }, 'the MCP SDK servers\' unknown-session body')
  const warns = lines.filter((l) => l.msg === 'session bound to another identity: refused')
  t.equal(warns.length, 3, 'each mismatch logged')
  t.equal(warns[0]!.session, sessionKey('S1').slice(0, 12), 'with a short hash')
  t.notOk(JSON.stringify(lines).includes('S1'), 'never the session id itself')
})

t.test('binder: legacy session ids are honoured only when recorded, for their owner', async (t) => {
  const { binder, store } = memoryBinder()
  const stream = binder.watch(alice, 'GET', '/legacy/sse')!
  stream.responseStart(200, ['content-type', 'text/event-stream'])
  stream.endpoint('/legacy/messages?sessionId=L1')
  t.equal(store.get(sessionKey('L1')), `${ownerOf(alice)} /legacy/messages`, 'bound on the endpoint path')
  const post = (who: Principal, url: string): string => {
    const c = sync(binder.check(ids(undefined, url), who, 'POST', url, LOG))
    return c instanceof SessionExchange ? 'ok' : c.outcome
  }
  t.equal(post(alice, '/legacy/messages?sessionId=L1'), 'ok')
  t.equal(post(bob, '/legacy/messages?sessionId=L1'), 'session_mismatch')
  t.equal(post(bob, '/legacy/messages?SessionId=L1'), 'session_mismatch', 'name in another case')
  t.equal(post(bob, '/legacy/messages?sessionId=l1'), 'session_not_found', 'a variant spelling is unknown, and unknown legacy ids are refused')
  t.equal(post(alice, '/legacy/messages?sessionId=nope'), 'session_not_found')
  t.equal(binder.heldCount, 1, 'the open stream holds its session')
  stream.end()
  t.equal(binder.heldCount, 0)
  t.equal(store.get(sessionKey('L1')), undefined, 'the stream closed: the legacy session ended with it')
  t.equal(post(alice, '/legacy/messages?sessionId=L1'), 'session_not_found')
})

t.test('binder: bindings end on a 2xx DELETE or an upstream 404 on the bound path only', async (t) => {
  const { binder, store } = memoryBinder()
  const exchange = (who: Principal, sid: string, method: string, path: string): SessionExchange => {
    const c = sync(binder.check(ids(sid), who, method, path, LOG))
    if (!(c instanceof SessionExchange)) throw new Error(`refused: ${c.outcome}`)
    return c
  }
  initialize(binder, alice, 'D1')
  let ex = exchange(alice, 'D1', 'DELETE', '/mcp')
  ex.responseStart(405, [])
  t.ok(store.get(sessionKey('D1')), 'a refused DELETE ends nothing')
  ex = exchange(alice, 'D1', 'DELETE', '/mcp/other')
  ex.responseStart(204, [])
  t.ok(store.get(sessionKey('D1')), 'a DELETE on another path ends nothing')
  ex = exchange(alice, 'D1', 'DELETE', '/mcp')
  ex.responseStart(204, [])
  t.equal(store.get(sessionKey('D1')), undefined, '2xx DELETE: binding gone')

  initialize(binder, alice, 'N1')
  ex = exchange(alice, 'N1', 'POST', '/mcp/typo')
  ex.responseStart(404, [])
  t.ok(store.get(sessionKey('N1')), 'a 404 for a stray path does not unbind the session')
  ex = exchange(alice, 'N1', 'POST', '/mcp')
  ex.responseStart(404, ['content-type', 'application/json'])
  t.equal(store.get(sessionKey('N1')), undefined, 'upstream 404 on the session path: binding gone')
})

t.test('binder: an unknown session the upstream accepts is adopted by that caller', async (t) => {
  const { binder, store } = memoryBinder()
  let c = sync(binder.check(ids('OLD'), alice, 'POST', '/mcp', LOG)) as SessionExchange
  c.responseStart(404, [])
  t.equal(store.get(sessionKey('OLD')), undefined, 'rejected by the upstream: not adopted')
  c = sync(binder.check(ids('OLD'), alice, 'POST', '/mcp', LOG)) as SessionExchange
  c.responseStart(200, ['content-type', 'application/json'])
  t.equal(store.get(sessionKey('OLD')), `${ownerOf(alice)} /mcp`, 'accepted: bound to alice')
  const b = sync(binder.check(ids('OLD'), bob, 'POST', '/mcp', LOG))
  t.notOk(b instanceof SessionExchange, 'and refused to bob from then on')
  c = sync(binder.check(ids('X, Y'), alice, 'POST', '/mcp', LOG)) as SessionExchange
  c.responseStart(200, [])
  t.equal(store.get(sessionKey('X')), undefined, 'ambiguous (repeated headers): nothing adopted')
})

t.test('binder: a session created on a response that echoes a bound id is not re-claimed; a new id is', async (t) => {
  const { binder, store } = memoryBinder()
  initialize(binder, alice, 'E1')
  const c = sync(binder.check(ids('E1'), alice, 'POST', '/mcp', LOG)) as SessionExchange
  c.responseStart(200, ['mcp-session-id', 'E2'])
  t.equal(store.get(sessionKey('E2')), `${ownerOf(alice)} /mcp`, 'a new session id in a response is bound')
  initialize(binder, bob, 'E1')
  t.equal(store.get(sessionKey('E1')), `${ownerOf(alice)} /mcp`, 'a response naming an id bound to someone else does not rebind it')
  const w = binder.watch(alice, 'POST', '/mcp')!
  w.responseStart(400, ['mcp-session-id', 'E3'])
  t.equal(store.get(sessionKey('E3')), undefined, 'only 2xx responses bind')
  t.equal(binder.watch(alice, 'DELETE', '/mcp'), undefined, 'DELETE without a session starts nothing')
  t.equal(binder.watch(alice, 'HEAD', '/mcp'), undefined)
})

t.test('binder: an open stream keeps its binding alive past the idle TTL', async (t) => {
  const { binder, store } = memoryBinder({ ttl: 300 })
  initialize(binder, alice, 'G1')
  initialize(binder, alice, 'G2')
  const c = sync(binder.check(ids('G1'), alice, 'GET', '/mcp', LOG)) as SessionExchange
  c.responseStart(200, ['content-type', 'text/event-stream', 'mcp-session-id', 'G1'])
  await sleep(800)
  t.ok(store.get(sessionKey('G1')), 'streamed for 800 ms with a 300 ms TTL: still bound')
  t.equal(store.get(sessionKey('G2')), undefined, 'the idle session without a stream expired')
  c.end()
  t.equal(binder.heldCount, 0)
  await sleep(450)
  t.equal(store.get(sessionKey('G1')), undefined, 'stream closed, then idle: expired')
  binder.close()
})

t.test('binder: store failures fail closed (deny) or open (allow), logged once per interval', async (t) => {
  const srv = await startRedis()
  t.teardown(async () => { await srv.close() })
  const r = new Redis({ port: srv.port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 500, lazyConnect: true, retryStrategy: () => 50 })
  r.on('error', () => {})
  t.teardown(() => { r.disconnect() })
  await r.connect()
  const store = new RedisSessionStore(r, { idleTtlMs: 60_000 })
  const deny = memoryBinder({ store })
  const allow = memoryBinder({ store, onStoreError: 'allow' })
  const init = deny.binder.watch(alice, 'POST', '/mcp')!
  init.responseStart(200, ['mcp-session-id', 'R1'])
  await sleep(100)
  const ok = await deny.binder.check(ids('R1'), alice, 'POST', '/mcp', LOG)
  t.ok(ok instanceof SessionExchange, 'bound through Redis')
  const mismatch = await deny.binder.check(ids('R1'), bob, 'POST', '/mcp', LOG)
  t.equal((mismatch as SessionRefusal).outcome, 'session_mismatch')
  await srv.kill()
  const d1 = await deny.binder.check(ids('R1'), alice, 'POST', '/mcp', LOG) as SessionRefusal
  const d2 = await deny.binder.check(ids('R1'), alice, 'POST', '/mcp', LOG) as SessionRefusal
  t.equal(d1.status, 503, 'deny: 503')
  t.equal(d1.outcome, 'session_store_unavailable')
  t.equal(d1.retryAfterSeconds, 5, 'with Retry-After')
  t.same(JSON.parse(d1.body), { error: 'temporarily_unavailable', error_description: 'The session store is unavailable; retry later' })
  t.equal(d2.status, 503)
  const a = await allow.binder.check(ids('R1'), bob, 'POST', '/mcp', LOG)
  t.ok(a instanceof SessionExchange, 'allow: forwarded unchecked')
  t.equal(deny.lines.filter((l) => l.msg === 'session store unavailable').length, 1, 'two failures, one warning line (rate-limited)')
  t.equal(allow.lines.filter((l) => l.msg === 'session store unavailable').length, 1)
  t.equal(allow.lines[0]!.onStoreError, 'allow')
})
