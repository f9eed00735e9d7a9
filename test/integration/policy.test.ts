/**
 * Issue 4 items 5 and 6: per-operation policy and filtered tools/list, through
 * a real gateway (YAML config through the real loader) in front of real SDK
 * upstreams (stateless Streamable HTTP in SSE and JSON mode, legacy HTTP+SSE),
 * with tokens from the real oidc-provider AS. A bare HTTP upstream stands in
 * only for what an SDK server never sends (gzip, oversized answers).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { z } from 'zod'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { startAuthServer } from '../helpers/as.js'
import { startLegacySseUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

/** The upstream MCP server: tools with admin, glob and plain policies, a resource template, a prompt. */
function buildPolicyServer (): McpServer {
  const s = new McpServer({ name: 'policy-upstream', version: '1.0.0' })
  s.registerTool('echo', { description: 'Returns the text', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }))
  s.registerTool('delete_node', { description: 'Deletes a node', inputSchema: { id: z.number() } }, async ({ id }) => ({ content: [{ type: 'text', text: `deleted ${id}` }] }))
  s.registerTool('search_docs', { description: 'Searches', inputSchema: { q: z.string() } }, async ({ q }) => ({ content: [{ type: 'text', text: `found ${q}` }] }))
  s.registerTool('progress_ticks', {
    description: 'Sends `steps` progress notifications intervalMs apart, then returns "done"',
    inputSchema: { steps: z.number().int(), intervalMs: z.number().int() }
  }, async ({ steps, intervalMs }, extra) => {
    const progressToken = extra._meta?.progressToken
    for (let i = 1; i <= steps; i++) {
      if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: i, total: steps } })
      await sleep(intervalMs)
    }
    return { content: [{ type: 'text', text: 'done' }] }
  })
  s.registerResource('node', new ResourceTemplate('drupal://node/{id}', { list: undefined }), {}, async (uri) => ({ contents: [{ uri: uri.href, text: `node at ${uri.href}` }] }))
  s.registerPrompt('summarize', { description: 'Summarise' }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'summarise this' } }] }))
  return s
}

interface Seen { url: string, headers: IncomingHttpHeaders, body: string }

/** SDK servers at /mcp (SSE answers) and /mcp-json (JSON answers); bare answers under /raw. Records every body as received. */
async function startPolicyUpstream (): Promise<{ origin: string, seen: Seen[], server: Server }> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const url = req.url ?? ''
      seen.push({ url, headers: req.headers, body })
      if (url.startsWith('/raw/echo')) {
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' })
        res.end(body)
        return
      }
      if (url.startsWith('/raw/gzip')) {
        const id = (JSON.parse(body) as { id: number }).id
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
        res.end(gzipSync(JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'delete_node' }] } })))
        return
      }
      if (url.startsWith('/raw/huge-json')) {
        const id = (JSON.parse(body) as { id: number }).id
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'echo', description: 'x'.repeat(9 * 1024 * 1024) }] } }))
        return
      }
      if (url.startsWith('/raw/huge-sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"first"}}\n\n')
        // One event that never ends within the cap.
        setTimeout(() => { res.end('data: ' + 'x'.repeat(9 * 1024 * 1024)) }, 100)
        return
      }
      if (url.startsWith('/mcp')) {
        if (req.method !== 'POST') {
          res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","error":{"code":-32000,"message":"Method not allowed."},"id":null}')
          return
        }
        let parsed: unknown
        try {
          parsed = JSON.parse(body)
        } catch {
          res.writeHead(400).end()
          return
        }
        const mcp = buildPolicyServer()
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: url.startsWith('/mcp-json') })
        res.on('close', () => { void transport.close(); void mcp.close() })
        void mcp.connect(transport).then(async () => { await transport.handleRequest(req, res, parsed) })
        return
      }
      res.writeHead(404).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

const as = await startAuthServer()
const up = await startPolicyUpstream()
const legacy = await startLegacySseUpstream()

const POLICY = {
  default: ['mcp:access'],
  methods: { 'tools/call': ['mcp:tools'], 'resources/read': ['mcp:read'] },
  tools: { delete_node: ['mcp:admin'], 'search_*': ['mcp:read'] },
  resources: { 'drupal://node/*': ['mcp:read'] },
  prompts: { summarize: ['mcp:tools'] }
}
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [
    { path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:access'], policy: POLICY },
    { path: '/mcp-json', upstream: `${up.origin}/mcp-json`, scopes: ['mcp:access'], policy: POLICY },
    { path: '/mcp-nofilter', upstream: `${up.origin}/mcp-json`, scopes: ['mcp:access'], policy: { ...POLICY, filterToolsList: false } },
    { path: '/legacy', upstream: legacy.origin, scopes: ['mcp:access'], policy: { default: ['mcp:access'], tools: { whoami: ['mcp:admin'] } } },
    { path: '/raw', upstream: `${up.origin}/raw`, scopes: ['mcp:access'], policy: POLICY },
    { path: '/plain', upstream: `${up.origin}/raw`, scopes: ['mcp:access'] }
  ]
}))
t.teardown(async () => {
  await gw.close()
  await Promise.all([legacy.close(), as.close()])
  up.server.closeAllConnections()
  up.server.close()
})

const ROUTES = ['/mcp', '/mcp-json', '/mcp-nofilter', '/legacy', '/raw', '/plain']
for (const r of ROUTES) as.registerResource({ url: gw.url + r, scope: 'mcp:access mcp:tools mcp:read mcp:admin' })
const tokens = new Map<string, string>()
async function token (route: string, scope: string): Promise<string> {
  const key = `${route} ${scope}`
  let v = tokens.get(key)
  if (v === undefined) {
    v = await as.clientCredentialsToken({ resource: gw.url + route, scope })
    tokens.set(key, v)
  }
  return v
}
const ACCESS = 'mcp:access'
const TOOLS = 'mcp:access mcp:tools'
const READ = 'mcp:access mcp:tools mcp:read'
const ADMIN = 'mcp:access mcp:tools mcp:read mcp:admin'
const PRM = (route: string): string => `${gw.url}/.well-known/oauth-protected-resource${route}`
const denied = (route: string, scope: string): string =>
  `Bearer error="insufficient_scope", error_description="The access token lacks a scope this operation requires", scope="${scope}", resource_metadata="${PRM(route)}"`

interface Answer { status: number, headers: Headers, text: string }
async function post (route: string, tok: string | undefined, body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(gw.url + route, {
    method: 'POST',
    // A browser page on the gateway's own origin (allowed by default), so CORS headers show on every answer.
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', origin: gw.url, ...(tok !== undefined ? { authorization: `Bearer ${tok}` } : {}), ...headers },
    body
  })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

/** JSON-RPC messages of a JSON or SSE answer. */
function messagesOf (a: Answer): unknown[] {
  if ((a.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const out: unknown[] = []
    for (const ev of a.text.split(/\r?\n\r?\n/)) {
      const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n')
      if (data !== '') out.push(JSON.parse(data))
    }
    return out
  }
  const v = JSON.parse(a.text) as unknown
  return Array.isArray(v) ? v : [v]
}

const rpc = (id: string | number, method: string, params?: Record<string, unknown>): Record<string, unknown> =>
  ({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) })
const call = (id: string, name: string, args: Record<string, unknown> = {}): Record<string, unknown> => rpc(id, 'tools/call', { name, arguments: args })
const reached = (marker: string): boolean => up.seen.some((s) => s.body.includes(`"${marker}"`))

t.test('decisions: status, exact challenge, JSON-RPC body, and whether the upstream saw it', async (t) => {
  interface Row {
    name: string
    scope: string
    body: unknown
    raw?: string
    headers?: Record<string, string>
    status: number
    challenge?: string
    /** Expected JSON body, for refusals. */
    json?: unknown
    /** For 200s: the result is a success (no JSON-RPC error). */
    ok?: boolean
    reaches: boolean
  }
  const e = (id: unknown, code: number, message: string): unknown => ({ jsonrpc: '2.0', id, error: { code, message } })
  const rows: Row[] = [
    { name: 'tools/list with the default scope', scope: ACCESS, body: rpc('r1', 'tools/list'), status: 200, ok: true, reaches: true },
    { name: 'echo with mcp:tools', scope: TOOLS, body: call('r2', 'echo', { text: 'hi' }), status: 200, ok: true, reaches: true },
    { name: 'echo without mcp:tools', scope: ACCESS, body: call('r3', 'echo', { text: 'hi' }), status: 403, challenge: denied('/mcp-json', 'mcp:access mcp:tools'), json: e('r3', -31403, 'Insufficient scope'), reaches: false },
    { name: 'delete_node without mcp:admin', scope: READ, body: call('r4', 'delete_node', { id: 1 }), status: 403, challenge: denied('/mcp-json', 'mcp:access mcp:tools mcp:admin'), json: e('r4', -31403, 'Insufficient scope'), reaches: false },
    { name: 'delete_node with mcp:admin', scope: ADMIN, body: call('r5', 'delete_node', { id: 1 }), status: 200, ok: true, reaches: true },
    { name: 'search_docs (glob search_*) without mcp:read', scope: TOOLS, body: call('r6', 'search_docs', { q: 'x' }), status: 403, challenge: denied('/mcp-json', 'mcp:access mcp:tools mcp:read'), json: e('r6', -31403, 'Insufficient scope'), reaches: false },
    { name: 'search_docs (glob) with mcp:read', scope: READ, body: call('r7', 'search_docs', { q: 'x' }), status: 200, ok: true, reaches: true },
    { name: 'resources/read drupal://node/1 without mcp:read', scope: TOOLS, body: rpc('r8', 'resources/read', { uri: 'drupal://node/1' }), status: 403, challenge: denied('/mcp-json', 'mcp:access mcp:read'), json: e('r8', -31403, 'Insufficient scope'), reaches: false },
    { name: 'resources/read with mcp:read', scope: READ, body: rpc('r9', 'resources/read', { uri: 'drupal://node/1' }), status: 200, ok: true, reaches: true },
    { name: 'prompts/get summarize without mcp:tools', scope: ACCESS, body: rpc('r10', 'prompts/get', { name: 'summarize' }), status: 403, challenge: denied('/mcp-json', 'mcp:access mcp:tools'), json: e('r10', -31403, 'Insufficient scope'), reaches: false },
    { name: 'prompts/get summarize with mcp:tools', scope: TOOLS, body: rpc('r11', 'prompts/get', { name: 'summarize' }), status: 200, ok: true, reaches: true },
    { name: 'a token without the route scope', scope: 'mcp:tools', body: rpc('r12', 'tools/list'), status: 403, challenge: denied('/mcp-json', 'mcp:access'), json: e('r12', -31403, 'Insufficient scope'), reaches: false },
    {
      name: 'batch with one denied element: all refused, one error per request',
      scope: TOOLS,
      body: [call('r13a', 'echo', { text: 'a' }), { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'zz' } }, call('r13b', 'delete_node', { id: 2 })],
      status: 403,
      challenge: denied('/mcp-json', 'mcp:access mcp:tools mcp:admin'),
      json: [e('r13a', -31403, 'Not processed: another message in the batch was refused'), e('r13b', -31403, 'Insufficient scope')],
      reaches: false
    },
    { name: 'batch of allowed elements', scope: TOOLS, body: [call('r14a', 'echo', { text: 'a' }), rpc('r14b', 'tools/list')], status: 200, ok: true, reaches: true },
    { name: 'invalid JSON', scope: ADMIN, body: undefined, raw: '{"jsonrpc":"2.0","id":"r15","method":"tools/list"', status: 400, json: e(null, -32700, 'Parse error'), reaches: false },
    { name: 'not a JSON-RPC message', scope: ADMIN, body: { jsonrpc: '2.0', id: 'r16' }, status: 400, json: e(null, -32600, 'Invalid Request'), reaches: false },
    { name: 'empty batch', scope: ADMIN, body: [], status: 400, json: e(null, -32600, 'Invalid Request'), reaches: false },
    { name: 'batch with one invalid element', scope: ADMIN, body: [rpc('r17', 'tools/list'), { jsonrpc: '1.0', id: 2, method: 'x' }], status: 400, json: e(null, -32600, 'Invalid Request'), reaches: false },
    { name: 'tools/call whose name is not a string', scope: ADMIN, body: rpc('r18', 'tools/call', { name: 7 }), status: 400, json: e('r18', -32602, 'Invalid params: params.name must be a string'), reaches: false },
    { name: 'Mcp-Method header disagrees with the body', scope: ADMIN, body: call('r19', 'echo', { text: 'x' }), headers: { 'mcp-method': 'tools/list' }, status: 400, json: e('r19', -32020, 'Header mismatch: the Mcp-Method header does not match the body method'), reaches: false },
    { name: 'Mcp-Name header disagrees with the body', scope: ADMIN, body: call('r20', 'delete_node', { id: 3 }), headers: { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, status: 400, json: e('r20', -32020, 'Header mismatch: the Mcp-Name header does not match the body'), reaches: false },
    { name: 'Mcp-Name on a batch', scope: ADMIN, body: [rpc('r21', 'tools/list')], headers: { 'mcp-method': 'tools/list' }, status: 400, json: e(null, -32020, 'Header mismatch: Mcp-Method and Mcp-Name describe a single message, not a batch'), reaches: false },
    { name: 'matching Mcp-Method and Base64 Mcp-Name', scope: TOOLS, body: call('r22', 'echo', { text: 'x' }), headers: { 'mcp-method': 'tools/call', 'mcp-name': `=?base64?${Buffer.from('echo').toString('base64')}?=` }, status: 200, ok: true, reaches: true },
    { name: 'a notification with the default scope', scope: ACCESS, body: { jsonrpc: '2.0', method: 'notifications/initialized', params: { marker: 'r23' } }, status: 202, reaches: true }
  ]
  for (const row of rows) {
    const tok = await token('/mcp-json', row.scope)
    const before = up.seen.length
    const a = await post('/mcp-json', tok, row.raw ?? JSON.stringify(row.body), row.headers)
    t.equal(a.status, row.status, `${row.name}: status ${row.status}`)
    t.equal(a.headers.get('www-authenticate') ?? undefined, row.challenge, `${row.name}: challenge`)
    if (row.json !== undefined) {
      t.strictSame(JSON.parse(a.text), row.json, `${row.name}: JSON-RPC error body`)
      t.match(a.headers.get('content-type'), /^application\/json/, `${row.name}: JSON body`)
      t.equal(a.headers.get('access-control-allow-origin'), gw.url, `${row.name}: readable by browser clients`)
    }
    if (row.ok === true) {
      const msgs = messagesOf(a) as Array<{ result?: unknown, error?: unknown }>
      t.ok(msgs.length > 0 && msgs.every((m) => m.result !== undefined && m.error === undefined), `${row.name}: upstream results`)
    }
    const marker = (row.raw ?? JSON.stringify(row.body)).match(/r\d+[ab]?/)?.[0]
    const seen = marker !== undefined ? reached(marker) : up.seen.length > before
    t.equal(seen, row.reaches, `${row.name}: ${row.reaches ? 'reached' : 'never reached'} the upstream`)
  }
  const outcomes = gw.requestLogs().filter((l) => l.route === '/mcp-json').map((l) => l.outcome)
  for (const o of ['insufficient_scope', 'invalid_request', 'header_mismatch', 'ok']) t.ok(outcomes.includes(o), `request log has outcome ${o}`)
  for (const tok of tokens.values()) t.notOk(gw.logs.some((l) => l.includes(tok)), 'no token in any log line')
})

t.test('415 for a body that is not declared JSON, with the gateway error body', async (t) => {
  const tok = await token('/mcp-json', ADMIN)
  for (const [name, type] of [['text/plain', 'text/plain'], ['form', 'application/x-www-form-urlencoded'], ['json-seq', 'application/json-seq']] as const) {
    const a = await post('/mcp-json', tok, JSON.stringify(rpc(`m-${name}`, 'tools/list')), { 'content-type': type })
    t.equal(a.status, 415, `${name}: 415`)
    t.strictSame(JSON.parse(a.text), { error: 'unsupported_media_type', error_description: 'The request content type is not supported' }, `${name}: body`)
    t.notOk(reached(`m-${name}`), `${name}: never forwarded`)
  }
  const charset = await post('/mcp-json', tok, JSON.stringify(rpc('m-charset', 'tools/list')), { 'content-type': 'Application/JSON; charset=utf-8' })
  t.equal(charset.status, 200, 'application/json with parameters, any case: accepted')
  const none = await fetch(gw.url + '/mcp-json', { method: 'POST', headers: { authorization: `Bearer ${tok}` } })
  t.equal(none.status, 415, 'a POST with no body and no content type')
})

t.test('body-less requests need the route scopes and default', async (t) => {
  const ok = await fetch(gw.url + '/mcp', { headers: { authorization: `Bearer ${await token('/mcp', ACCESS)}`, accept: 'text/event-stream' } })
  t.equal(ok.status, 405, 'GET with mcp:access reaches the upstream (which has no GET stream)')
  await ok.text()
  const del = await fetch(gw.url + '/mcp', { method: 'DELETE', headers: { authorization: `Bearer ${await token('/mcp', ACCESS)}` } })
  t.equal(del.status, 405, 'DELETE with mcp:access reaches the upstream')
  await del.text()
  const no = await fetch(gw.url + '/mcp', { headers: { authorization: `Bearer ${await token('/mcp', 'mcp:tools')}` } })
  t.equal(no.status, 403)
  t.equal(no.headers.get('www-authenticate'), denied('/mcp', 'mcp:access'))
  t.strictSame(await no.json(), { jsonrpc: '2.0', id: null, error: { code: -31403, message: 'Insufficient scope' } })
})

t.test('what is authorised is exactly what is forwarded: the re-serialised body', async (t) => {
  const tok = await token('/mcp-json', TOOLS)
  // Spacing, escapes, a big integer, and a duplicate key: a parser differential would let "delete_node" through.
  const sent = '{ "jsonrpc" : "2.0", "id" : "fwd-1", "method" : "tools/call",\n "params" : { "name" : "delete_node", "name" : "\\u0065cho", "arguments" : { "text" : "caf\\u00e9", "n" : 12345678901234567890 } } }'
  const a = await post('/mcp-json', tok, sent)
  t.equal(a.status, 200, 'authorised as echo (the last of the duplicate keys)')
  t.strictSame(messagesOf(a), [{ jsonrpc: '2.0', id: 'fwd-1', result: { content: [{ type: 'text', text: 'café' }] } }], 'and the upstream ran echo')
  const seen = up.seen.filter((s) => s.body.includes('"fwd-1"'))
  t.equal(seen.length, 1)
  const expected = JSON.stringify(JSON.parse(sent))
  t.equal(seen[0]!.body, expected, 'the upstream received JSON.stringify(JSON.parse(body))')
  t.equal(seen[0]!.body, '{"jsonrpc":"2.0","id":"fwd-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"café","n":12345678901234567000}}}', 'exactly')
  t.equal(seen[0]!.headers['content-length'], String(Buffer.byteLength(expected)), 'with a matching Content-Length')
  t.equal(seen[0]!.headers['transfer-encoding'], undefined, 'not chunked')

  const plain = await post('/plain/echo', await token('/plain', ACCESS), '{ "not" : json,, }', { 'content-type': 'application/json' })
  t.equal(plain.text, '{ "not" : json,, }', 'a route without a policy still forwards bodies byte for byte, unparsed')
})

const toolNames = (a: Answer, id: string): string[] => {
  const m = (messagesOf(a) as Array<{ id?: unknown, result?: { tools: Array<{ name: string }> } }>).find((x) => x.id === id)
  return m!.result!.tools.map((x) => x.name).sort()
}

t.test('filtered tools/list: JSON and SSE answers, by the caller\'s scopes', async (t) => {
  const rows: Array<[string, string, string[]]> = [
    ['mcp:access only', ACCESS, []],
    ['mcp:tools', TOOLS, ['echo', 'progress_ticks']],
    ['mcp:read', READ, ['echo', 'progress_ticks', 'search_docs']],
    ['mcp:admin', ADMIN, ['delete_node', 'echo', 'progress_ticks', 'search_docs']]
  ]
  for (const route of ['/mcp', '/mcp-json']) {
    for (const [name, scope, expected] of rows) {
      const a = await post(route, await token(route, scope), JSON.stringify(rpc(`list-${name}`, 'tools/list')))
      t.equal(a.status, 200)
      t.match(a.headers.get('content-type'), route === '/mcp' ? /^text\/event-stream/ : /^application\/json/, `${route}: ${route === '/mcp' ? 'SSE' : 'JSON'} answer`)
      t.strictSame(toolNames(a, `list-${name}`), expected, `${route} ${name}: ${expected.join(', ') || 'no tools'}`)
      if (route === '/mcp-json') t.equal(a.headers.get('content-length'), String(Buffer.byteLength(a.text)), `${route} ${name}: Content-Length of the filtered body`)
    }
  }
  const batch = await post('/mcp-json', await token('/mcp-json', TOOLS), JSON.stringify([rpc('b-1', 'tools/list'), call('b-2', 'echo', { text: 'x' }), rpc('b-3', 'tools/list', { cursor: undefined })]))
  t.strictSame(toolNames(batch, 'b-1'), ['echo', 'progress_ticks'], 'batch: first tools/list filtered')
  t.strictSame(toolNames(batch, 'b-3'), ['echo', 'progress_ticks'], 'batch: second tools/list filtered')
  const off = await post('/mcp-nofilter', await token('/mcp-nofilter', TOOLS), JSON.stringify(rpc('nf', 'tools/list')))
  t.strictSame(toolNames(off, 'nf'), ['delete_node', 'echo', 'progress_ticks', 'search_docs'], 'filterToolsList: false lists every tool')
  const listSeen = up.seen.filter((s) => s.body.includes('"list-mcp:tools"'))
  t.ok(listSeen.length === 2 && listSeen.every((s) => s.headers['accept-encoding'] === undefined), 'filtered requests ask the upstream for no content coding')
})

t.test('SSE: other events still stream while the tools/list answer is filtered', async (t) => {
  const tok = await token('/mcp', TOOLS)
  const started = Date.now()
  const res = await fetch(gw.url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tok}` },
    body: JSON.stringify([
      { jsonrpc: '2.0', id: 'ticks', method: 'tools/call', params: { name: 'progress_ticks', arguments: { steps: 3, intervalMs: 250 }, _meta: { progressToken: 'pt' } } },
      rpc('list', 'tools/list')
    ])
  })
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  const arrivals: Array<{ at: number, msg: Record<string, unknown> }> = []
  const decoder = new TextDecoder()
  let buf = ''
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true })
    let end: number
    while ((end = buf.indexOf('\n\n')) !== -1) {
      const ev = buf.slice(0, end)
      buf = buf.slice(end + 2)
      const data = ev.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n')
      if (data !== '') arrivals.push({ at: Date.now() - started, msg: JSON.parse(data) as Record<string, unknown> })
    }
  }
  const progress = arrivals.filter((a) => a.msg.method === 'notifications/progress')
  const final = arrivals.find((a) => a.msg.id === 'ticks')!
  const list = arrivals.find((a) => a.msg.id === 'list')!
  t.strictSame((list.msg.result as { tools: Array<{ name: string }> }).tools.map((x) => x.name).sort(), ['echo', 'progress_ticks'], 'the tools/list answer in the stream is filtered')
  t.strictSame(progress.map((p) => (p.msg.params as { progress: number }).progress), [1, 2, 3], 'every progress notification passed')
  t.ok(progress[0]!.at < final.at - 400, `the first progress arrived ${final.at - progress[0]!.at} ms before the result: streamed, not buffered`)
  t.ok(progress[2]!.at - progress[0]!.at >= 400, `progress events arrived spread out (${progress.map((p) => p.at).join(', ')} ms)`)
})

t.test('the SDK client through policy routes (Streamable HTTP, SSE and JSON)', async (t) => {
  for (const route of ['/mcp', '/mcp-json']) {
    const client = new Client({ name: 'policy-test', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.url + route), { requestInit: { headers: { Authorization: `Bearer ${await token(route, TOOLS)}` } } }))
    t.strictSame((await client.listTools()).tools.map((x) => x.name).sort(), ['echo', 'progress_ticks'], `${route}: listTools is filtered`)
    const r = await client.callTool({ name: 'echo', arguments: { text: 'through policy' } }) as { content: Array<{ text: string }> }
    t.equal(r.content[0]!.text, 'through policy', `${route}: allowed tool called`)
    await t.rejects(client.callTool({ name: 'delete_node', arguments: { id: 1 } }), /403|insufficient|scope/i, `${route}: admin tool refused`)
    await client.close()
  }
})

t.test('legacy HTTP+SSE under a policy: endpoint still rewritten, tools/list on the GET stream filtered', async (t) => {
  for (const [scope, expected] of [[TOOLS, ['echo', 'slow_progress']], [ADMIN, ['echo', 'slow_progress', 'whoami']]] as const) {
    const tok = await token('/legacy', scope)
    const transport = new SSEClientTransport(new URL(`${gw.url}/legacy/sse`), {
      eventSourceInit: { fetch: async (url, init) => await fetch(url, { ...init, headers: { ...init?.headers, Authorization: `Bearer ${tok}` } }) },
      requestInit: { headers: { Authorization: `Bearer ${tok}` } }
    })
    const client = new Client({ name: 'legacy-policy', version: '1.0.0' })
    await client.connect(transport)
    t.strictSame((await client.listTools()).tools.map((x) => x.name).sort(), [...expected], `${scope}: ${expected.join(', ')}`)
    await client.close()
  }
})

t.test('answers that cannot be filtered are never sent unfiltered', async (t) => {
  const tok = await token('/raw', ADMIN.replace(' mcp:admin', ''))
  const gz = await post('/raw/gzip', tok, JSON.stringify(rpc('gz', 'tools/list')), { 'accept-encoding': 'gzip' })
  t.equal(gz.status, 502, 'gzip-coded answer: 502')
  t.strictSame(JSON.parse(gz.text), { jsonrpc: '2.0', id: 'gz', error: { code: -32000, message: 'The upstream response could not be filtered for this caller' } })
  t.equal(up.seen.find((s) => s.body.includes('"gz"'))!.headers['accept-encoding'], undefined, 'the client\'s Accept-Encoding was not forwarded')

  const huge = await post('/raw/huge-json', tok, JSON.stringify(rpc('hj', 'tools/list')))
  t.equal(huge.status, 502, 'JSON answer over the cap: 502')
  t.strictSame(JSON.parse(huge.text), { jsonrpc: '2.0', id: 'hj', error: { code: -32000, message: 'The upstream response could not be filtered for this caller' } })

  const res = await fetch(gw.url + '/raw/huge-sse', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tok}` },
    body: JSON.stringify(rpc('hs', 'tools/list'))
  })
  t.equal(res.status, 200, 'SSE headers were already sent')
  let received = ''
  let failed = false
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) received += Buffer.from(chunk).toString('utf8')
  } catch {
    failed = true
  }
  t.ok(failed, 'an SSE event over the cap cuts the stream')
  t.ok(received.includes('"first"'), 'events before it were delivered')
  t.ok(received.length < 1024 * 1024, `none of the oversized event was delivered (${received.length} bytes)`)
  await sleep(50)
  const line = gw.requestLogs().find((l) => l.path === '/raw/huge-sse')
  t.equal(line?.outcome, 'upstream_error', 'logged as an upstream error')

  const notList = await post('/raw/echo', tok, JSON.stringify(call('not-list', 'echo', { text: 'x' })), { 'accept-encoding': 'gzip' })
  t.equal(notList.status, 200, 'no tools/list in the body: no filter, the answer passes as is')
  t.equal(up.seen.find((s) => s.body.includes('"not-list"'))!.headers['accept-encoding'], 'gzip', 'and Accept-Encoding is forwarded')
})
