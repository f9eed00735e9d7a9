/**
 * The audit log (issue 6 item 3) through a real gateway, the real
 * oidc-provider AS and the real SDK upstream, written to a file in a temp
 * dir: one line per MCP operation, with the caller, the tool, resource or
 * prompt, the decision (and the scopes a denied one lacked), the upstream
 * status and the latency; batches give one line per message; routes without
 * a policy are parsed for the audit only (a plain node:http upstream records
 * the bytes it got: a body that is not JSON-RPC arrives unchanged); arguments
 * only on opt-in; never a token.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { stringify } from 'yaml'
import { startAuthServer } from '../helpers/as.js'
import { startRecordingUpstream, startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders, type RunningGateway } from '../helpers/gateway.js'
import { eventually } from '../helpers/cli.js'
import { parseConfig } from '../../src/config/load.js'
import { createGateway } from '../../src/gateway.js'
import { createLoggers } from '../../src/observability/logger.js'
import { AuditOpenError } from '../../src/observability/audit.js'
import { AUDIT_MAX_LINES_PER_REQUEST } from '../../src/config/defaults.js'

const RESOURCE = 'https://mcp.audit.test/mcp'
const PROTOCOL = '2025-06-18'
const dir = mkdtempSync(join(tmpdir(), 'gw-audit-'))
const as = await startAuthServer()
as.registerResource({ url: RESOURCE, scope: 'mcp:tools mcp:admin' })
const up = await startStatelessUpstream({ jsonResponse: true })

/** A plain upstream that records each request's exact body bytes and answers 200 {}. */
const raw = await startRecordingUpstream()
const rawBodies = raw.bodies
const rawOrigin = raw.origin
t.teardown(async () => {
  await up.close()
  await raw.close()
  await as.close()
  rmSync(dir, { recursive: true, force: true })
})

const ALICE = `audit-alice-${randomBytes(4).toString('hex')}`
const alice = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools', user: ALICE })

function routes (): Array<Record<string, unknown>> {
  return [
    { path: '/policy', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'], policy: { default: [], tools: { admin_reset: ['mcp:admin'] } } },
    { path: '/plain', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/raw', upstream: rawOrigin, scopes: ['mcp:tools'] },
    // Nothing listens on port 9: every forwarded request gets a 502 from the gateway.
    { path: '/down', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }
  ]
}

async function auditedGateway (file: string, includeArguments: boolean): Promise<RunningGateway> {
  return await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer, audience: RESOURCE }],
    routes: routes(),
    audit: { enabled: true, destination: { file }, includeArguments }
  }))
}

const file = join(dir, 'audit.log')
const gw = await auditedGateway(file, false)
t.teardown(async () => { await gw.close() })

type Line = Record<string, unknown>
const readLines = (f: string): Line[] => existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line) : []

let nextId = 1
const rpc = (method: string, params?: Record<string, unknown>): Record<string, unknown> => ({ jsonrpc: '2.0', id: nextId++, method, ...(params === undefined ? {} : { params }) })

/** POST and return the audit lines it produced (the lines appear once the exchange has ended and the file is written). */
async function exchange (g: RunningGateway, f: string, path: string, body: string | Buffer, opts: { lines?: number, headers?: Record<string, string> } = {}): Promise<{ status: number, lines: Line[] }> {
  const before = readLines(f).length
  const res = await fetch(`${g.url}${path}`, { method: 'POST', headers: { ...mcpHeaders(alice.accessToken, { 'mcp-protocol-version': PROTOCOL }), ...opts.headers }, body })
  await res.arrayBuffer()
  const want = opts.lines ?? 1
  await eventually(() => readLines(f).length >= before + want, 3000)
  return { status: res.status, lines: readLines(f).slice(before) }
}

t.test('an allowed tools/call on a policy route', async (t) => {
  const { status, lines } = await exchange(gw, file, '/policy', JSON.stringify(rpc('tools/call', { name: 'echo', arguments: { text: 'secret-argument' } })))
  t.equal(status, 200)
  t.equal(lines.length, 1, 'one line')
  const l = lines[0]!
  t.match(l, { audit: true, msg: 'audit', route: '/policy', subject: ALICE, clientId: 'user-app', issuer: as.issuer, method: 'tools/call', tool: 'echo', decision: 'allowed', upstreamStatus: 200 })
  t.type(l.reqId, 'string')
  t.type(l.time, 'string')
  t.type(l.latencyMs, 'number')
  t.ok((l.latencyMs as number) > 0)
  t.notOk('arguments' in l, 'no arguments by default')
  t.notOk('reason' in l || 'missingScopes' in l || 'outcome' in l, 'nothing else to say about an allowed call that ended normally')
  const reqLine = gw.requestLogs().find((r) => r.reqId === l.reqId)
  t.ok(reqLine !== undefined && reqLine.status === 200, 'the reqId ties it to the request line')
})

t.test('denied by the policy: the missing scopes, no upstream status', async (t) => {
  const before = up.requests.length
  const { status, lines } = await exchange(gw, file, '/policy', JSON.stringify(rpc('tools/call', { name: 'admin_reset', arguments: {} })))
  t.equal(status, 403)
  t.equal(up.requests.length, before, 'nothing reached the upstream')
  t.equal(lines.length, 1)
  t.match(lines[0], { method: 'tools/call', tool: 'admin_reset', decision: 'denied', reason: 'insufficient_scope', missingScopes: ['mcp:admin'], upstreamStatus: null, subject: ALICE })
})

t.test('batches: one line per message', async (t) => {
  const refused = await exchange(gw, file, '/policy', JSON.stringify([rpc('tools/list'), rpc('tools/call', { name: 'admin_reset', arguments: {} })]), { lines: 2 })
  t.equal(refused.status, 403)
  t.equal(refused.lines.length, 2)
  t.match(refused.lines[0], { method: 'tools/list', decision: 'denied', reason: 'batch_refused', upstreamStatus: null })
  t.notOk('missingScopes' in refused.lines[0]!, 'held back, not lacking anything itself')
  t.match(refused.lines[1], { method: 'tools/call', tool: 'admin_reset', decision: 'denied', reason: 'insufficient_scope', missingScopes: ['mcp:admin'] })
  t.equal(refused.lines[0]!.reqId, refused.lines[1]!.reqId, 'one request')

  // On a route without a policy: a request, a notification, and a response (not an operation: no line).
  const body = JSON.stringify([
    rpc('resources/read', { uri: 'file:///etc/x' }),
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
    { jsonrpc: '2.0', id: 'srv-1', result: {} },
    rpc('prompts/get', { name: 'greeting', arguments: { who: 'x' } })
  ])
  const plain = await exchange(gw, file, '/plain', body, { lines: 3 })
  t.equal(plain.lines.length, 3, 'three operations, three lines')
  t.strictSame(plain.lines.map((l) => l.method), ['resources/read', 'notifications/cancelled', 'prompts/get'])
  t.match(plain.lines[0], { resource: 'file:///etc/x', decision: 'allowed', upstreamStatus: plain.status })
  t.match(plain.lines[2], { prompt: 'greeting', decision: 'allowed' })
  t.notOk('arguments' in plain.lines[2]!)
})

// Regression: one 4 MiB batch of ~90,000 messages wrote 90,000 lines (26 MB) and held the event loop ~1 s.
t.test('a large batch: at most AUDIT_MAX_LINES_PER_REQUEST lines, then one line counting the rest', async (t) => {
  const cases: Array<{ path: string, messages: number, status: number, decision: string }> = [
    // Audit-only route: forwarded unchanged (the raw upstream answers 200).
    { path: '/raw', messages: 5_000, status: 200, decision: 'allowed' },
    // Policy route: ping needs no scope beyond the route's, so the whole batch is forwarded; the
    // real SDK upstream (protocol 2025-06-18, which dropped batches) answers it with 400.
    { path: '/policy', messages: 2_000, status: 400, decision: 'allowed' },
    // Exactly at the bound: no summary line.
    { path: '/raw', messages: AUDIT_MAX_LINES_PER_REQUEST, status: 200, decision: 'allowed' }
  ]
  for (const c of cases) {
    const batch = Array.from({ length: c.messages }, () => rpc('ping'))
    // A response in the batch is not an operation: it is neither itemised nor counted.
    batch.splice(3, 0, { jsonrpc: '2.0', id: 'srv-1', result: {} })
    const expected = Math.min(c.messages, AUDIT_MAX_LINES_PER_REQUEST) + (c.messages > AUDIT_MAX_LINES_PER_REQUEST ? 1 : 0)
    const { status, lines } = await exchange(gw, file, c.path, JSON.stringify(batch), { lines: expected })
    t.equal(status, c.status, `${c.path}, ${c.messages} messages: status`)
    // Wait a little longer than the flush that brought the expected lines: any extra line would show.
    await new Promise((resolve) => setTimeout(resolve, 1200))
    const all = readLines(file).filter((l) => l.reqId === lines[0]!.reqId)
    t.equal(all.length, expected, `${c.path}, ${c.messages} messages: ${expected} lines, no more`)
    t.ok(all.slice(0, AUDIT_MAX_LINES_PER_REQUEST).every((l) => l.method === 'ping' && l.decision === c.decision), 'the first lines itemise the messages')
    if (c.messages > AUDIT_MAX_LINES_PER_REQUEST) {
      t.match(all.at(-1), { method: null, decision: c.decision, omittedMessages: c.messages - AUDIT_MAX_LINES_PER_REQUEST, subject: ALICE, route: c.path, upstreamStatus: c.status }, 'the last line counts the messages not itemised')
    } else {
      t.notOk(all.some((l) => 'omittedMessages' in l), 'no summary line at the bound')
    }
  }
})

t.test('a route without a policy: the body is parsed for the audit only', async (t) => {
  const { status, lines } = await exchange(gw, file, '/plain', JSON.stringify(rpc('tools/call', { name: 'echo', arguments: { text: 'x' } })))
  t.equal(status, 200)
  t.match(lines[0], { route: '/plain', method: 'tools/call', tool: 'echo', decision: 'allowed', upstreamStatus: 200 })

  // Not JSON at all, and JSON with odd spacing: forwarded byte for byte, audited with parseError.
  for (const bytes of [Buffer.from('not json \u00e9\u0000 {', 'utf8'), Buffer.from('{ "jsonrpc" : "2.0" ,"id":1,  "method":"tools/list" }   ')]) {
    const n = rawBodies.length
    const r = await exchange(gw, file, '/raw', bytes, { headers: { 'content-type': 'text/plain' } })
    t.equal(r.status, 200)
    t.equal(rawBodies.length, n + 1, 'forwarded')
    t.ok(rawBodies.at(-1)!.body.equals(bytes), 'the upstream got the exact bytes')
    if (bytes.toString().startsWith('not json')) t.match(r.lines[0], { route: '/raw', method: null, parseError: 'Parse error', decision: 'allowed', upstreamStatus: 200 })
    else t.match(r.lines[0], { route: '/raw', method: 'tools/list', decision: 'allowed', upstreamStatus: 200 })
  }

  // A GET carries no operation: no line.
  const before = readLines(file).length
  const get = await fetch(`${gw.url}/raw`, { headers: { authorization: `Bearer ${alice.accessToken}` } })
  t.equal(get.status, 200)
  await eventually(() => gw.requestLogs().some((l) => l.method === 'GET' && l.route === '/raw'), 2000)
  t.equal(readLines(file).length, before, 'no audit line for a GET')
})

t.test('upstream failure: allowed, no upstream status, the outcome says why', async (t) => {
  const { status, lines } = await exchange(gw, file, '/down', JSON.stringify(rpc('tools/call', { name: 'echo', arguments: {} })))
  t.equal(status, 502)
  t.match(lines[0], { route: '/down', tool: 'echo', decision: 'allowed', outcome: 'upstream_error', upstreamStatus: null })
})

t.test('names from the body are cut to 256 characters', async (t) => {
  const long = 'n'.repeat(5000)
  const { lines } = await exchange(gw, file, '/plain', JSON.stringify(rpc('tools/call', { name: long, arguments: {} })))
  t.equal((lines[0]!.tool as string).length, 256)
})

t.test('includeArguments: the arguments of tools/call and prompts/get', async (t) => {
  const file2 = join(dir, 'audit-args.log')
  const withArgs = await auditedGateway(file2, true)
  t.teardown(async () => { await withArgs.close() })
  t.ok(withArgs.config.warnings.some((w) => w.startsWith('audit.includeArguments is true')), 'a startup warning says so')
  const call = await exchange(withArgs, file2, '/policy', JSON.stringify(rpc('tools/call', { name: 'echo', arguments: { text: 'kept' } })))
  t.strictSame(call.lines[0]!.arguments, { text: 'kept' })
  const list = await exchange(withArgs, file2, '/policy', JSON.stringify(rpc('tools/list')))
  t.notOk('arguments' in list.lines[0]!, 'other methods have none')
})

t.test('never a token in the audit file', async (t) => {
  const text = readFileSync(file, 'utf8')
  t.ok(text.length > 0)
  t.notOk(text.includes(alice.accessToken), 'no access token')
  t.notOk(text.includes(alice.accessToken.split('.')[1]!), 'not even its payload')
  t.notOk(text.toLowerCase().includes('authorization'), 'no headers')
  t.notOk(text.includes('secret-argument'), 'no arguments without the opt-in')
})

t.test('stdout: audit lines join the log stream, at info whatever logLevel says', async (t) => {
  const logs: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') logs.push(l); cb() } })
  const config = parseConfig(stringify({
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: 'http://127.0.0.1:1',
    logLevel: 'error',
    authorizationServers: [{ issuer: as.issuer, audience: RESOURCE }],
    routes: routes(),
    audit: { enabled: true }
  }), { env: {} })
  const g = createGateway(config, { loggers: createLoggers('error', sink) })
  const { url } = await g.listen()
  t.teardown(async () => { await g.close() })
  await g.authenticator.whenReady()
  const res = await fetch(`${url}/plain`, { method: 'POST', headers: mcpHeaders(alice.accessToken, { 'mcp-protocol-version': PROTOCOL }), body: JSON.stringify(rpc('tools/list')) })
  t.equal(res.status, 200)
  t.ok(await eventually(() => logs.some((l) => l.includes('"audit":true')), 2000), 'an audit line')
  const line = JSON.parse(logs.find((l) => l.includes('"audit":true'))!) as Line
  t.match(line, { level: 30, audit: true, msg: 'audit', method: 'tools/list', decision: 'allowed', upstreamStatus: 200 })
  t.notOk(logs.some((l) => l.includes('"msg":"request"')), 'request lines (info) stay off at logLevel error')
})

t.test('an audit file that cannot be opened at startup is an error then, not later', async (t) => {
  const gone = join(dir, 'gone')
  mkdirSync(gone)
  const config = parseConfig(stringify({
    publicUrl: 'http://127.0.0.1:1',
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/mcp', upstream: up.origin, scopes: ['mcp:tools'] }],
    audit: { enabled: true, destination: { file: join(gone, 'a.log') } }
  }), { env: {} })
  rmSync(gone, { recursive: true })
  let thrown: unknown
  try {
    createGateway(config, { loggers: createLoggers('silent') })
  } catch (err) {
    thrown = err
  }
  t.ok(thrown instanceof AuditOpenError, 'AuditOpenError from createGateway')
  t.match((thrown as Error).message, /^cannot open the audit log .*gone\/a\.log \(ENOENT\): /)
})
