/**
 * Section 6 and 7 of the core issue: streaming, transparency, failures and
 * identity, through a real gateway to real SDK-built MCP upstreams, with the
 * real SDK client. Tokens come from the real oidc-provider AS.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { startAuthServer } from '../helpers/as.js'
import { startStatefulUpstream, startStatelessUpstream, startLegacySseUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'

/** A bare upstream for what the SDK servers cannot show: byte-exact bodies and disconnects. */
interface RawUpstream { origin: string, closed: string[], bodies: Buffer[], server: Server }
async function startRawUpstream (): Promise<RawUpstream> {
  const closed: string[] = []
  const bodies: Buffer[] = []
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url?.startsWith('/echo-body') === true) {
        const body = Buffer.concat(chunks)
        bodies.push(body)
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' })
        res.end(body)
      } else if (req.url?.startsWith('/slow') === true) {
        // Answer only after 5 s; the test disconnects first.
        res.on('close', () => { if (!res.writableFinished) closed.push(req.url ?? '') })
        setTimeout(() => { if (!res.destroyed) res.end('late') }, 5000).unref()
      } else if (req.url?.startsWith('/keepalive') === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        let n = 0
        const timer = setInterval(() => {
          n++
          if (n < 12) res.write(': keepalive\n\n')
          else { clearInterval(timer); res.end('data: done\n\n') }
        }, 100)
        res.on('close', () => { clearInterval(timer) })
      } else if (req.url?.startsWith('/bad-header') === true) {
        // An invalid header value (a control character), written raw on the socket.
        req.socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\n{}')
      } else if (req.url?.startsWith('/hop') === true) {
        res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-hop-secret', 'x-hop-secret': 'internal', 'keep-alive': 'timeout=5', 'x-kept': 'yes' })
        res.end('{}')
      } else if (req.url?.startsWith('/cut') === true) {
        // Headers and one event, then the upstream dies mid-stream.
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: partial\n\n')
        setTimeout(() => { res.socket?.destroy() }, 50)
      } else if (req.url?.startsWith('/forever') === true) {
        // One event, then a comment every 100 ms until the gateway hangs up.
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: first\n\n')
        const timer = setInterval(() => { res.write(': ping\n\n') }, 100)
        res.on('close', () => { clearInterval(timer); closed.push(req.url ?? '') })
      } else if (req.url?.startsWith('/silent') === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: first\n\n')
        // then silence longer than the gateway's idle timeout
      } else {
        res.writeHead(404).end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closed, bodies, server }
}

const as = await startAuthServer()
const stateful = await startStatefulUpstream()
const stateless = await startStatelessUpstream()
const statelessJson = await startStatelessUpstream({ jsonResponse: true })
const legacyRoot = await startLegacySseUpstream()
const legacyPrefixed = await startLegacySseUpstream({ prefix: '/base' })
const raw = await startRawUpstream()
const deadPort = await freePort()

const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [
    { path: '/mcp', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'], claims: { 'X-Forwarded-Email': 'email' } },
    { path: '/stateless', upstream: `${stateless.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/stateless-json', upstream: `${statelessJson.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/legacy', upstream: legacyRoot.origin, scopes: ['mcp:tools'] },
    { path: '/tenant/legacy', upstream: `${legacyPrefixed.origin}/base`, scopes: ['mcp:tools'] },
    { path: '/plain', upstream: stateful.origin, scopes: ['mcp:tools'], timeouts: { headersSeconds: 0.5 } },
    { path: '/raw', upstream: raw.origin, scopes: ['mcp:tools'], timeouts: { idleSeconds: 0.4 } },
    { path: '/dead', upstream: `http://127.0.0.1:${deadPort}/mcp`, scopes: ['mcp:tools'] }
  ],
  // 150 concurrent streams of one caller below.
  limits: { maxBodyBytes: 64 * 1024, maxStreamsPerPrincipal: 200 }
}))
t.teardown(async () => {
  await gw.close()
  await Promise.all([stateful.close(), stateless.close(), statelessJson.close(), legacyRoot.close(), legacyPrefixed.close(), as.close()])
  raw.server.closeAllConnections()
  raw.server.close()
})

const routes = ['/mcp', '/stateless', '/stateless-json', '/legacy', '/tenant/legacy', '/plain', '/raw', '/dead']
for (const r of routes) as.registerResource({ url: gw.url + r, scope: 'mcp:tools' })
const tokenFor = async (route: string): Promise<string> => await as.clientCredentialsToken({ resource: gw.url + route, scope: 'mcp:tools' })

function text (result: unknown): string {
  const c = (result as { content: Array<{ type: string, text: string }> }).content[0]!
  return c.text
}

t.test('Streamable HTTP, stateful: initialize, tools/list, tools/call with streamed progress, GET stream, DELETE', async (t) => {
  const token = await tokenFor('/mcp')
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}`, 'X-Forwarded-User': 'mallory', 'X-Forwarded-Issuer': 'https://evil.example.com' } }
  })
  const client = new Client({ name: 'test', version: '1.0.0' })
  await client.connect(transport)
  t.ok(transport.sessionId, 'session id came back through the gateway')

  const tools = await client.listTools()
  t.same(tools.tools.map((x) => x.name).sort(), ['echo', 'slow_progress', 'whoami'])
  t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'héllo ✓' } })), 'héllo ✓', 'UTF-8 round trip')

  const progress: Array<{ progress: number, at: number }> = []
  const started = Date.now()
  const result = await client.callTool({ name: 'slow_progress', arguments: { steps: 3, intervalMs: 150 } }, undefined, {
    onprogress: (p) => { progress.push({ progress: p.progress, at: Date.now() - started }) }
  })
  t.equal(text(result), 'done')
  t.same(progress.map((p) => p.progress), [1, 2, 3], 'every progress notification arrived')
  t.ok(progress[0]!.at < 120, `first progress arrived before the call finished (${progress[0]!.at} ms)`)

  const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, string>
  t.equal(who.authorization, undefined, 'Authorization is never forwarded')
  t.equal(who['x-forwarded-user'], as.clients.m2m.id, 'subject header set from the token (client_credentials sub = client id)')
  t.equal(who['x-forwarded-client-id'], as.clients.m2m.id)
  t.equal(who['x-forwarded-scopes'], 'mcp:tools')
  t.equal(who['x-forwarded-issuer'], as.issuer, 'spoofed issuer header replaced')
  t.notOk(JSON.stringify(who).includes('mallory'), 'spoofed X-Forwarded-User never arrives')
  t.equal(who['mcp-session-id'], transport.sessionId, 'Mcp-Session-Id forwarded')
  t.ok(who['mcp-protocol-version'], 'MCP-Protocol-Version forwarded')

  const getStreams = stateful.requests.filter((r) => r.method === 'GET' && r.headers['mcp-session-id'] === transport.sessionId)
  t.ok(getStreams.length >= 1, 'the client opened the GET SSE stream through the gateway')

  await transport.terminateSession()
  const deletes = stateful.requests.filter((r) => r.method === 'DELETE')
  t.equal(deletes.length, 1, 'DELETE reached the upstream')
  await client.close()

  // After DELETE, the session is gone upstream: 404 passes through unchanged.
  const res = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: mcpHeaders(token, { 'mcp-session-id': transport.sessionId ?? 'x', 'mcp-protocol-version': '2025-06-18' }), body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }) })
  t.equal(res.status, 404, 'expired session gives 404 so the client re-initialises')
})

for (const route of ['/stateless', '/stateless-json']) {
  t.test(`Streamable HTTP, stateless (${route})`, async (t) => {
    const token = await tokenFor(route)
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}${route}`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
    const client = new Client({ name: 'test', version: '1.0.0' })
    await client.connect(transport)
    t.equal(transport.sessionId, undefined, 'no session')
    t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'x' } })), 'x')
    const progress: number[] = []
    await client.callTool({ name: 'slow_progress', arguments: { steps: 2, intervalMs: 50 } }, undefined, { onprogress: (p) => progress.push(p.progress) })
    t.same(progress, route === '/stateless' ? [1, 2] : [], route === '/stateless' ? 'progress streamed over the POST SSE response' : 'JSON responses carry no progress')
    await client.close()
  })
}

for (const [route, up] of [['/legacy', legacyRoot], ['/tenant/legacy', legacyPrefixed]] as const) {
  t.test(`legacy HTTP+SSE under the prefix ${route}`, async (t) => {
    const token = await tokenFor(route)
    const auth = { Authorization: `Bearer ${token}` }
    const transport = new SSEClientTransport(new URL(`${gw.url}${route}/sse`), {
      requestInit: { headers: auth },
      eventSourceInit: { fetch: async (url, init) => await fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth } }) }
    })
    const client = new Client({ name: 'test', version: '1.0.0' })
    await client.connect(transport)
    t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'legacy' } })), 'legacy')
    const progress: number[] = []
    await client.callTool({ name: 'slow_progress', arguments: { steps: 2, intervalMs: 80 } }, undefined, { onprogress: (p) => progress.push(p.progress) })
    t.same(progress, [1, 2], 'progress over the legacy stream')
    const posts = up.requests.filter((r) => r.method === 'POST')
    t.ok(posts.length >= 3, 'the client POSTed to the rewritten endpoint, which the gateway mapped back upstream')
    t.ok(posts.every((r) => r.url.startsWith(route === '/legacy' ? '/messages?sessionId=' : '/base/messages?sessionId=')), 'upstream saw its own endpoint path')
    t.ok(posts.every((r) => r.headers.authorization === undefined), 'no Authorization upstream')
    await client.close()
  })
}

t.test('the endpoint event is rewritten to stay under the route prefix', async (t) => {
  const token = await tokenFor('/tenant/legacy')
  const ac = new AbortController()
  const res = await fetch(`${gw.url}/tenant/legacy/sse`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
  const reader = res.body!.getReader()
  let buf = ''
  while (!buf.includes('\n\n')) buf += new TextDecoder().decode((await reader.read()).value)
  ac.abort()
  t.match(buf, /^event: endpoint\ndata: \/tenant\/legacy\/messages\?sessionId=[0-9a-f-]+\n\n/)
})

t.test('no buffering: events 200 ms apart arrive about 200 ms apart', async (t) => {
  const token = await tokenFor('/plain')
  const started = Date.now()
  const res = await fetch(`${gw.url}/plain/ticks?n=5&interval=200`, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip, br' } })
  t.equal(res.status, 200)
  t.equal(res.headers.get('x-accel-buffering'), 'no')
  t.equal(res.headers.get('content-encoding'), null, 'never compressed')
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  const arrivals: number[] = []
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let pending = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    pending += decoder.decode(value, { stream: true })
    let i
    while ((i = pending.indexOf('\n\n')) !== -1) {
      arrivals.push(Date.now() - started)
      pending = pending.slice(i + 2)
    }
  }
  t.equal(arrivals.length, 5, 'five events')
  t.ok(arrivals[0]! < 150, `first event at ${arrivals[0]} ms`)
  const gaps = arrivals.slice(1).map((a, i) => a - arrivals[i]!)
  t.comment(`inter-arrival gaps through the gateway: ${gaps.join(', ')} ms`)
  for (const g of gaps) t.ok(g >= 120 && g <= 320, `gap ${g} ms is about 200 ms`)
})

t.test('long streams survive idle timeouts while the upstream sends keep-alives', async (t) => {
  const token = await tokenFor('/raw')
  // idleSeconds is 0.4 on /raw; the stream lasts 1.2 s with a comment every 100 ms.
  const res = await fetch(`${gw.url}/raw/keepalive`, { headers: { authorization: `Bearer ${token}` } })
  const body = await res.text()
  t.equal(res.status, 200)
  t.match(body, /data: done\n\n$/, 'stream completed')
  t.equal(body.split(': keepalive').length - 1, 11, 'every keep-alive comment passed through')
})

t.test('a silent stream is cut after the idle timeout', async (t) => {
  const token = await tokenFor('/raw')
  const res = await fetch(`${gw.url}/raw/silent`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 200)
  const started = Date.now()
  const outcome = await res.text().then(() => 'ended', () => 'errored')
  t.ok(Date.now() - started < 3000, 'cut within a few seconds')
  t.ok(outcome === 'ended' || outcome === 'errored', `the stream was closed (${outcome})`)
})

t.test('status codes, bodies and MCP headers pass through unchanged', async (t) => {
  const token = await tokenFor('/plain')
  for (const code of [202, 400, 404, 405, 406, 409, 415]) {
    const res = await fetch(`${gw.url}/plain/status/${code}`, { headers: { authorization: `Bearer ${token}` } })
    t.equal(res.status, code, `${code} passes through`)
    if (code !== 202) t.same(await res.json(), { status: code }, `${code} body passes through`)
    t.equal(res.headers.get('mcp-session-id'), 'test-session', 'Mcp-Session-Id passes back')
  }
  const sent = {
    'mcp-protocol-version': '2025-11-25',
    'mcp-session-id': 'abc',
    'last-event-id': '42',
    'mcp-method': 'tools/call',
    'mcp-name': 'echo',
    'mcp-param-region': 'eu',
    accept: 'application/json, text/event-stream'
  }
  // node:http rather than fetch: fetch refuses to send a Connection header.
  const seen = await new Promise<Record<string, string>>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/plain/headers`, { headers: { authorization: `Bearer ${token}`, ...sent, connection: 'keep-alive, x-forwarded-user', 'x-forwarded-user': 'mallory', 'x-forwarded-scopes': 'admin', 'proxy-authorization': 'Basic eDp5' } }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve(JSON.parse(body) as Record<string, string>) })
    })
    req.on('error', reject)
    req.end()
  })
  for (const [k, v] of Object.entries(sent)) t.equal(seen[k], v, `${k} forwarded unchanged`)
  t.equal(seen.authorization, undefined, 'no Authorization')
  t.equal(seen['proxy-authorization'], undefined, 'no Proxy-Authorization')
  t.equal(seen['x-forwarded-user'], as.clients.m2m.id, 'identity set even when the client named it in Connection')
  t.equal(seen['x-forwarded-scopes'], 'mcp:tools', 'spoofed scopes replaced')
})

t.test('forwarding headers are the gateway\'s, and Expect: 100-continue works', async (t) => {
  const token = await tokenFor('/raw')
  const res = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/raw/echo-body`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', expect: '100-continue', 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', te: 'trailers' }
    }, (r) => {
      let body = ''
      r.on('data', (c: Buffer) => { body += c.toString() })
      r.on('end', () => { resolve({ status: r.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.on('continue', () => { req.end('{"jsonrpc":"2.0","id":1}') })
  })
  t.equal(res.status, 200, 'a client that waits for 100 Continue is served (curl does this for large bodies)')
  t.equal(res.body, '{"jsonrpc":"2.0","id":1}')
  const seen = await (await fetch(`${gw.url}/plain/headers`, { headers: { authorization: `Bearer ${await tokenFor('/plain')}`, 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example.com' } })).json() as Record<string, string>
  t.equal(seen['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the client socket address')
  t.equal(seen['x-forwarded-host'], new URL(gw.url).host, 'X-Forwarded-Host is the public host')
  t.equal(seen['x-forwarded-proto'], 'http')
  t.equal(seen.forwarded, undefined)
})

t.test('hop-by-hop response headers, and those the upstream names in Connection, are not passed on', async (t) => {
  const token = await tokenFor('/raw')
  const res = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
    httpRequest(`${gw.url}/raw/hop`, { headers: { authorization: `Bearer ${token}`, origin: gw.url } }, (r) => { r.resume(); resolve(r.headers) }).on('error', reject).end()
  })
  t.equal(res['x-hop-secret'], undefined, 'named in Connection: dropped')
  t.not(res['keep-alive'], 'timeout=5', 'the upstream Keep-Alive is dropped (Node sets its own for the client connection)')
  t.equal(res['x-kept'], 'yes', 'end-to-end headers kept')
  t.equal(res['access-control-allow-origin'], gw.url, 'CORS added for the allowed origin')
})

t.test('an upstream response with an invalid header gives a 502, logged as upstream_error', async (t) => {
  const token = await tokenFor('/raw')
  const res = await fetch(`${gw.url}/raw/bad-header`, { method: 'POST', headers: mcpHeaders(token), body: '{"jsonrpc":"2.0","id":5,"method":"x"}' })
  t.equal(res.status, 502)
  t.same(await res.json(), { jsonrpc: '2.0', id: 5, error: { code: -32000, message: 'The upstream MCP server is unreachable' } })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(gw.requestLogs().some((l) => l.path === '/raw/bad-header' && l.outcome === 'upstream_error' && l.status === 502), 'logged as upstream_error')
})

t.test('an upstream that dies mid-stream cuts the response and still gets a log line', async (t) => {
  const token = await tokenFor('/raw')
  const res = await fetch(`${gw.url}/raw/cut`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 200)
  const body = await res.text().then((b) => b, () => 'cut')
  t.ok(body === 'cut' || body === 'data: partial\n\n', 'the client sees the stream end where the upstream died')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(gw.requestLogs().some((l) => l.path === '/raw/cut' && l.outcome === 'upstream_error'), 'logged as upstream_error')
})

t.test('request bodies are forwarded byte for byte', async (t) => {
  const token = await tokenFor('/raw')
  // Whitespace, key order, a big integer and a duplicate key survive: the gateway does not re-serialise.
  const body = '{ "jsonrpc":"2.0",  "id": 12345678901234567890, "method":"tools/call","params":{"a":1,"a":2}}\n'
  const res = await fetch(`${gw.url}/raw/echo-body`, { method: 'POST', headers: mcpHeaders(token), body })
  t.equal(await res.text(), body)
  t.equal(raw.bodies.at(-1)?.toString('utf8'), body)
  const bin = Buffer.from([0, 1, 2, 255, 254])
  const res2 = await fetch(`${gw.url}/raw/echo-body`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: bin })
  t.same(Buffer.from(await res2.arrayBuffer()), bin, 'binary body intact')
})

t.test('an oversized body gets 413, and is never proxied', async (t) => {
  const token = await tokenFor('/raw')
  const before = raw.bodies.length
  const res = await fetch(`${gw.url}/raw/echo-body`, { method: 'POST', headers: { ...mcpHeaders(token), origin: gw.url }, body: 'x'.repeat(70 * 1024) })
  t.equal(res.status, 413)
  t.same(await res.json(), { error: 'payload_too_large', error_description: 'The request body exceeds the configured limit' })
  t.equal(res.headers.get('access-control-allow-origin'), gw.url, 'readable by browser clients')
  t.equal(raw.bodies.length, before)
})

t.test('unreachable upstream: 502 with a JSON-RPC error carrying the request id', async (t) => {
  const token = await tokenFor('/dead')
  const res = await fetch(`${gw.url}/dead`, { method: 'POST', headers: mcpHeaders(token), body: JSON.stringify({ jsonrpc: '2.0', id: 'req-7', method: 'tools/list' }) })
  t.equal(res.status, 502)
  t.same(await res.json(), { jsonrpc: '2.0', id: 'req-7', error: { code: -32000, message: 'The upstream MCP server is unreachable' } })
  const noId = await fetch(`${gw.url}/dead`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(noId.status, 502)
  t.equal((await noId.json() as { id: unknown }).id, null, 'GET has no id: null')
})

t.test('upstream timeout: 504 with a JSON-RPC error carrying the request id, and no retry', async (t) => {
  const token = await tokenFor('/plain')
  const before = stateful.requests.filter((r) => r.url === '/hang').length
  const res = await fetch(`${gw.url}/plain/hang`, { method: 'POST', headers: mcpHeaders(token), body: JSON.stringify({ jsonrpc: '2.0', id: 31, method: 'tools/call' }) })
  t.equal(res.status, 504)
  t.same(await res.json(), { jsonrpc: '2.0', id: 31, error: { code: -32001, message: 'The upstream MCP server did not respond in time' } })
  const getRes = await fetch(`${gw.url}/plain/hang`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(getRes.status, 504, 'GET times out too')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(stateful.requests.filter((r) => r.url === '/hang').length - before, 2, 'each request reached the upstream exactly once (POST and GET never retried)')
})

t.test('a client disconnect aborts the upstream request', async (t) => {
  const token = await tokenFor('/raw')
  const ac = new AbortController()
  const pending = fetch(`${gw.url}/raw/slow?n=1`, { method: 'POST', headers: mcpHeaders(token), body: '{}', signal: ac.signal }).catch(() => 'aborted')
  await new Promise((resolve) => setTimeout(resolve, 200))
  ac.abort()
  t.equal(await pending, 'aborted')
  const deadline = Date.now() + 2000
  while (raw.closed.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(raw.closed, ['/slow?n=1'], 'upstream saw the request closed before it answered')
  t.ok(gw.requestLogs().some((l) => l.outcome === 'client_closed' && l.path === '/raw/slow'), 'the aborted request still gets its log line')
})

t.test('regression: many open SSE streams do not queue new requests behind them', async (t) => {
  // /plain has the default idle timeout: these streams stay open (one event, then 10 s of silence).
  const token = await tokenFor('/plain')
  const controllers: AbortController[] = []
  const within = async <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
    await Promise.race([p, new Promise<'timeout'>((resolve) => setTimeout(() => { resolve('timeout') }, ms))])
  const opened = await within(Promise.all(Array.from({ length: 150 }, async () => {
    const ac = new AbortController()
    controllers.push(ac)
    const res = await fetch(`${gw.url}/plain/ticks?n=2&interval=10000`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
    return res.status
  })), 5000)
  t.teardown(() => { for (const ac of controllers) ac.abort() })
  t.ok(opened !== 'timeout' && opened.every((s) => s === 200), '150 long-lived streams open at once')
  const call = await within(fetch(`${gw.url}/plain/headers`, { method: 'POST', headers: mcpHeaders(token), body: '{"id":1}' }).then((r) => r.status), 2000)
  t.equal(call, 200, 'a tool call is not queued behind the streams')
})

t.test('a client leaving mid-stream closes the upstream stream too', async (t) => {
  const token = await tokenFor('/raw')
  const ac = new AbortController()
  const res = await fetch(`${gw.url}/raw/forever`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
  const reader = res.body!.getReader()
  await reader.read()
  const before = raw.closed.filter((u) => u === '/forever').length
  ac.abort()
  const deadline = Date.now() + 2000
  while (raw.closed.filter((u) => u === '/forever').length === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(raw.closed.filter((u) => u === '/forever').length, before + 1, 'the upstream saw its stream closed')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(gw.requestLogs().some((l) => l.path === '/raw/forever' && l.outcome === 'client_closed'), 'logged as client_closed')
})

t.test('regression: clients leaving mid-stream leave no upstream connections behind (nodejs/undici#5845)', async (t) => {
  const token = await tokenFor('/raw')
  let connects = 0
  const onConnection = (): void => { connects++ }
  raw.server.on('connection', onConnection)
  t.teardown(() => { raw.server.off('connection', onConnection) })
  const controllers = Array.from({ length: 20 }, () => new AbortController())
  await Promise.all(controllers.map(async (ac) => {
    const res = await fetch(`${gw.url}/raw/forever`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
    await res.body!.getReader().read()
  }))
  const opened = connects
  t.ok(opened >= 20, `the streams opened upstream connections (${opened})`)
  for (const ac of controllers) ac.abort()
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(connects, opened, 'no replacement connection is opened after the aborts')
  const open = await new Promise<number>((resolve) => { raw.server.getConnections((_e, n) => { resolve(n) }) })
  t.ok(open <= 2, `upstream connections closed (${open} open)`)
})

t.test('one log line per request with the required fields', async (t) => {
  const logs = gw.requestLogs()
  t.ok(logs.length > 20)
  const ok = logs.find((l) => l.outcome === 'ok' && l.route === '/mcp')
  t.ok(ok, 'an ok line for /mcp')
  for (const key of ['route', 'method', 'status', 'subject', 'clientId', 'outcome', 'durationMs']) t.ok(ok !== undefined && key in ok, `field ${key}`)
  t.ok(logs.some((l) => l.outcome === 'upstream_error' && l.status === 502), 'upstream_error logged')
  t.ok(logs.some((l) => l.outcome === 'upstream_error' && l.status === 504), 'timeout logged as upstream_error')
  t.notOk(gw.logs.some((l) => /Bearer|eyJ[A-Za-z0-9_-]{10,}/.test(l)), 'no token or Authorization value in any log line')
})

t.test('INITIALIZE without token under every route gets the route-specific challenge', async (t) => {
  for (const r of routes) {
    const res = await fetch(gw.url + r, { method: 'POST', headers: mcpHeaders(), body: INITIALIZE_BODY })
    t.equal(res.status, 401)
    t.equal(res.headers.get('www-authenticate'), `Bearer scope="mcp:tools", resource_metadata="${gw.url}/.well-known/oauth-protected-resource${r}"`)
  }
})
