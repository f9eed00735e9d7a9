/**
 * Bounds on everything (issue 5, item 6), each through its config key on a
 * real gateway: body size (413), request head size (431), header and request
 * timeouts (408, slowloris), concurrent SSE streams per caller (429) and in
 * total (503), upstream connect and first-byte timeouts (504), token size (401).
 */
import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders } from '../helpers/gateway.js'

const as = await startAuthServer()
const up = await startStatelessUpstream({ jsonResponse: true })
// Answers POSTs with SSE streams (slow_progress keeps one open while it reports progress).
const sseUp = await startStatelessUpstream({ jsonResponse: false })
const RESOURCE = 'https://mcp.bounds.test/mcp'
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })

// An "upstream" that accepts TCP connections and never speaks TLS: the handshake never completes.
const silentSockets: Socket[] = []
const silent = createTcpServer((s) => { silentSockets.push(s) })
await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
const silentPort = (silent.address() as AddressInfo).port

const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [
    { path: '/mcp', upstream: up.origin, scopes: ['mcp:tools'], resource: RESOURCE },
    { path: '/tls-silent', upstream: `https://127.0.0.1:${silentPort}`, scopes: ['mcp:tools'], resource: RESOURCE, timeouts: { connectSeconds: 0.5 } },
    { path: '/first-byte', upstream: up.origin, scopes: ['mcp:tools'], resource: RESOURCE, timeouts: { headersSeconds: 0.4 } },
    { path: '/sse-post', upstream: sseUp.origin, scopes: ['mcp:tools'], resource: RESOURCE }
  ],
  limits: {
    maxBodyBytes: 2048,
    maxTokenBytes: 2048,
    maxHeaderBytes: 8192,
    headersTimeoutSeconds: 1,
    requestTimeoutSeconds: 2,
    maxStreams: 3,
    maxStreamsPerPrincipal: 2
  }
}))
t.teardown(async () => {
  await gw.close()
  await up.close()
  await sseUp.close()
  for (const s of silentSockets) s.destroy()
  silent.close()
  await as.close()
})

const alice = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })
const bob = await as.clientCredentialsToken({ clientId: as.clients.gatewayExchange.id, clientSecret: as.clients.gatewayExchange.secret, resource: RESOURCE, scope: 'mcp:tools' })
const port = Number(new URL(gw.url).port)

/** Write `chunks` on a raw socket (each after `gapMs`), then read until the gateway closes it. */
async function rawExchange (chunks: string[], gapMs = 0, maxMs = 10_000): Promise<{ text: string, closedAfterMs: number }> {
  return await new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    let text = ''
    let timer: NodeJS.Timeout | undefined
    const cap = setTimeout(() => { socket.destroy(); reject(new Error(`socket still open after ${maxMs} ms`)) }, maxMs)
    socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
    socket.on('error', () => { /* a reset after the answer is fine */ })
    socket.on('close', () => {
      clearTimeout(cap)
      clearInterval(timer)
      resolve({ text, closedAfterMs: Date.now() - started })
    })
    socket.on('connect', () => {
      let i = 0
      const next = (): void => {
        if (i >= chunks.length || socket.destroyed) { clearInterval(timer); return }
        socket.write(chunks[i++]!)
      }
      if (gapMs === 0) { while (i < chunks.length) next() } else { next(); timer = setInterval(next, gapMs) }
    })
  })
}

t.test('body: limits.maxBodyBytes → 413, never forwarded; at the limit it passes', async (t) => {
  const before = up.requests.length
  const body = (n: number): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(n) } })
  const fits = body(2048 - body(0).length)
  t.equal(Buffer.byteLength(fits), 2048)
  const ok = await fetch(`${gw.url}/mcp/mcp`, { method: 'POST', headers: mcpHeaders(alice), body: fits })
  t.equal(ok.status, 200, 'exactly maxBodyBytes is forwarded')
  const over = await fetch(`${gw.url}/mcp/mcp`, { method: 'POST', headers: mcpHeaders(alice), body: body(2049 - body(0).length) })
  t.equal(over.status, 413)
  t.strictSame(await over.json(), { error: 'payload_too_large', error_description: 'The request body exceeds the configured limit' })
  t.equal(up.requests.length, before + 1, 'only the request within the limit reached the upstream')
})

t.test('request head: limits.maxHeaderBytes → 431 and the connection closes', async (t) => {
  const head = (n: number): string => `GET /mcp/headers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${alice}\r\nX-Pad: ${'a'.repeat(n)}\r\nConnection: close\r\n\r\n`
  const small = await rawExchange([head(3000)])
  t.match(small.text, /^HTTP\/1\.1 200 /, 'a head under the limit is served')
  const big = await rawExchange([head(9000)])
  t.match(big.text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/)
  t.match(big.text, /\{"error":"invalid_request","error_description":"The request headers are too large"\}$/)
})

t.test('slowloris: headers sent a byte at a time get 408 within limits.headersTimeoutSeconds, and the socket is closed', async (t) => {
  const head = 'GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(200)
  // One byte every 50 ms would take 12 s; the bound is 1 s (checked every second).
  const r = await rawExchange(head.split(''), 50, 8000)
  t.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/, '408')
  t.match(r.text, /"error":"request_timeout"/)
  t.ok(r.closedAfterMs >= 900 && r.closedAfterMs <= 3000, `closed after ${r.closedAfterMs} ms (bound 1 s + check interval 1 s)`)
})

t.test('slow body: the whole request must arrive within limits.requestTimeoutSeconds (408)', async (t) => {
  const before = up.requests.length
  const head = `POST /mcp/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${alice}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`
  // Headers at once (the token is accepted), then one body byte every 200 ms: 20 s for 100 bytes.
  const r = await rawExchange([head, ...'{"jsonrpc":"2.0"'.split('')], 200, 8000)
  t.match(r.text, /^HTTP\/1\.1 408 /, '408')
  t.ok(r.closedAfterMs >= 1900 && r.closedAfterMs <= 4000, `closed after ${r.closedAfterMs} ms (bound 2 s + check interval 1 s)`)
  t.equal(up.requests.length, before, 'the partial request never reached the upstream')
})

t.test('SSE streams: limits.maxStreamsPerPrincipal → 429, limits.maxStreams → 503, slots come back when streams end', async (t) => {
  const open: AbortController[] = []
  t.teardown(() => { for (const ac of open) ac.abort() })
  const stream = async (token: string): Promise<{ status: number, headers: Headers, body?: unknown, ac: AbortController }> => {
    const ac = new AbortController()
    const res = await fetch(`${gw.url}/mcp/ticks?n=2&interval=3000`, { headers: { authorization: `Bearer ${token}`, origin: gw.url }, signal: ac.signal })
    if (res.status === 200) {
      open.push(ac)
      await res.body!.getReader().read()
      return { status: 200, headers: res.headers, ac }
    }
    return { status: res.status, headers: res.headers, body: await res.json(), ac }
  }
  t.equal((await stream(alice)).status, 200, 'alice stream 1')
  const second = await stream(alice)
  t.equal(second.status, 200, 'alice stream 2')
  const third = await stream(alice)
  t.equal(third.status, 429, 'alice stream 3: over the per-caller limit')
  t.strictSame(third.body, { error: 'too_many_streams', error_description: 'Too many open streams for this caller; close one and retry' })
  t.equal(third.headers.get('retry-after'), '5')
  t.equal(third.headers.get('access-control-allow-origin'), gw.url, 'readable by an allowed browser origin')
  // A POST may be answered with a stream, so a caller at its stream limit cannot start one.
  const postsBefore = up.requests.filter((r) => r.method === 'POST').length
  const post = await fetch(`${gw.url}/mcp/mcp`, { method: 'POST', headers: mcpHeaders(alice), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })
  t.equal(post.status, 429, 'a POST of a caller at its stream limit: 429')
  t.equal(up.requests.filter((r) => r.method === 'POST').length, postsBefore, 'the refused POST never reached the upstream')
  t.equal((await fetch(`${gw.url}/mcp/mcp`, { method: 'POST', headers: mcpHeaders(bob), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })).status, 200, 'another caller under its limit: POST unaffected')
  t.equal((await stream(bob)).status, 200, 'bob stream 1 (3 open in total)')
  const total = await stream(bob)
  t.equal(total.status, 503, 'bob stream 2: over the gateway total')
  t.strictSame(total.body, { error: 'too_many_streams', error_description: 'The gateway has too many open streams; retry later' })
  t.equal(total.headers.get('retry-after'), '5')
  second.ac.abort()
  let again = 0
  const deadline = Date.now() + 3000
  while (Date.now() < deadline && (again = (await stream(alice)).status) !== 200) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(again, 200, 'a closed stream gives its slot back')
  t.ok(gw.requestLogs().filter((l) => l.outcome === 'too_many_streams').length >= 2, 'refusals logged as too_many_streams')
})

t.test('SSE answers to POSTs hold a stream slot while they stream (regression: they were not counted)', async (t) => {
  const open: AbortController[] = []
  t.teardown(() => { for (const ac of open) ac.abort() })
  // Slots from the previous test come back asynchronously once its streams are aborted.
  const getStatus = async (token: string): Promise<number> => {
    const ac = new AbortController()
    const res = await fetch(`${gw.url}/mcp/ticks?n=2&interval=3000`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
    if (res.status === 200) open.push(ac)
    else await res.arrayBuffer()
    return res.status
  }
  let first = 0
  const deadline = Date.now() + 3000
  while (Date.now() < deadline && (first = await getStatus(alice)) !== 200) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(first, 200, 'alice: one GET stream open')
  // A tools/call answered as SSE: progress every 1 s, so the answer stays open.
  const sseCall = async (token: string, id: number): Promise<{ status: number, ac: AbortController, type: string | null }> => {
    const ac = new AbortController()
    const res = await fetch(`${gw.url}/sse-post/mcp`, {
      method: 'POST',
      headers: mcpHeaders(token),
      signal: ac.signal,
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'slow_progress', arguments: { steps: 20, intervalMs: 1000 }, _meta: { progressToken: id } } })
    })
    if (res.status === 200) {
      open.push(ac)
      await res.body!.getReader().read()
    } else await res.arrayBuffer()
    return { status: res.status, ac, type: res.headers.get('content-type') }
  }
  const call = await sseCall(alice, 10)
  t.equal(call.status, 200, 'alice: a POST answered with a stream')
  t.match(call.type, /^text\/event-stream/, 'the answer is SSE')
  t.equal(await getStatus(alice), 429, 'alice: the streaming POST answer took her second slot, a GET stream is refused')
  const refused = await sseCall(alice, 11)
  t.equal(refused.status, 429, 'alice: a further POST is refused while both slots stream')
  t.equal(await getStatus(bob), 200, 'bob: the third slot of the gateway total')
  t.equal((await sseCall(bob, 12)).status, 503, 'bob: a POST over the gateway total → 503')
  call.ac.abort()
  let again = 0
  const until = Date.now() + 3000
  while (Date.now() < until && (again = await getStatus(alice)) !== 200) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(again, 200, 'the streaming answer gave its slot back when it ended')
})

t.test('upstream connect timeout (routes[].timeouts.connectSeconds) → 504', async (t) => {
  const started = Date.now()
  const res = await fetch(`${gw.url}/tls-silent`, { method: 'POST', headers: mcpHeaders(alice), body: JSON.stringify({ jsonrpc: '2.0', id: 'c1', method: 'tools/list' }) })
  const took = Date.now() - started
  t.equal(res.status, 504)
  t.strictSame(await res.json(), { jsonrpc: '2.0', id: 'c1', error: { code: -32001, message: 'The upstream MCP server did not respond in time' } })
  t.ok(took >= 450 && took < 3000, `answered after ${took} ms (bound 0.5 s)`)
  t.ok(silentSockets.length >= 1, 'the gateway did connect at the TCP level: the TLS handshake is what timed out')
})

t.test('upstream first-byte timeout (routes[].timeouts.headersSeconds) → 504', async (t) => {
  const started = Date.now()
  const res = await fetch(`${gw.url}/first-byte/hang`, { method: 'POST', headers: mcpHeaders(alice), body: JSON.stringify({ jsonrpc: '2.0', id: 'h1', method: 'tools/call' }) })
  const took = Date.now() - started
  t.equal(res.status, 504)
  t.strictSame(await res.json(), { jsonrpc: '2.0', id: 'h1', error: { code: -32001, message: 'The upstream MCP server did not respond in time' } })
  t.ok(took >= 350 && took < 3000, `answered after ${took} ms (bound 0.4 s)`)
})

t.test('token size: limits.maxTokenBytes → 401 invalid_token before any parsing', async (t) => {
  const rows: Array<{ name: string, token: string, description: string }> = [
    { name: 'one byte over the limit', token: 'a'.repeat(2049), description: 'The access token is too large' },
    { name: 'a real JWT padded over the limit', token: alice + 'A'.repeat(2049 - alice.length), description: 'The access token is too large' },
    { name: 'at the limit: parsed (and refused as malformed)', token: 'a'.repeat(2048), description: 'The access token is malformed' }
  ]
  for (const row of rows) {
    const res = await fetch(`${gw.url}/mcp/mcp`, { method: 'POST', headers: mcpHeaders(row.token), body: '{}' })
    t.equal(res.status, 401, `${row.name}: 401`)
    t.equal(((await res.json()) as { error_description: string }).error_description, row.description, `${row.name}: ${row.description}`)
  }
})
