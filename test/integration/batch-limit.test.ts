/**
 * limits.maxBatchMessages through a real gateway (YAML through the real
 * loader), tokens from the real oidc-provider AS, and a real SDK upstream for
 * single messages. A plain node:http upstream records the exact bodies that
 * reach it, because the assertion is "nothing was forwarded", and it answers
 * batches (the SDK server refuses them for 2025-06-18 and later).
 *
 * Both request paths are covered: the first request with a token goes through
 * Fastify (cache miss); later ones with the same token take the lane
 * (plugins/lane.ts).
 */
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startRecordingUpstream, startStatelessUpstream } from '../helpers/upstream.js'
import { startGateway, mcpHeaders } from '../helpers/gateway.js'
import { eventually } from '../helpers/cli.js'

const RESOURCE = 'https://mcp.batch.test/mcp'
const CAP = 5
const as = await startAuthServer()
as.registerResource({ url: RESOURCE, scope: 'mcp:tools mcp:admin' })
const sdk = await startStatelessUpstream({ jsonResponse: true })

/** The recording upstream: one JSON-RPC result per request of the body it got. */
const recorder = await startRecordingUpstream((body) => {
  const parsed = JSON.parse(body.toString('utf8')) as unknown
  const answer = (m: { id?: unknown }): unknown => ({ jsonrpc: '2.0', id: m.id, result: {} })
  return JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed as { id?: unknown }))
})
const received = recorder.bodies
const recorderOrigin = recorder.origin

const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer, audience: RESOURCE }],
  limits: { maxBatchMessages: CAP },
  routes: [
    { path: '/policy', upstream: `${recorderOrigin}/policy`, scopes: ['mcp:tools'], policy: { default: [], tools: { admin_reset: ['mcp:admin'] } } },
    { path: '/plain', upstream: `${recorderOrigin}/plain`, scopes: ['mcp:tools'] },
    { path: '/sdk', upstream: `${sdk.origin}/mcp`, scopes: ['mcp:tools'], policy: { default: [] } }
  ]
}))
t.teardown(async () => {
  await gw.close()
  await sdk.close()
  await recorder.close()
  await as.close()
})

let nextId = 1
const call = (name: string): Record<string, unknown> => ({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: {} } })
const calls = (n: number, name = 'echo'): Array<Record<string, unknown>> => Array.from({ length: n }, () => call(name))

/** POST, then the request line it produced (requests here are sequential). */
async function post (path: string, token: string, body: unknown): Promise<{ status: number, text: string, line: Record<string, unknown> }> {
  const before = gw.requestLogs().length
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: mcpHeaders(token, { 'mcp-protocol-version': '2025-03-26' }), body: typeof body === 'string' ? body : JSON.stringify(body) })
  const text = await res.text()
  await eventually(() => gw.requestLogs().length > before, 3000)
  return { status: res.status, text, line: gw.requestLogs()[before]! }
}

const refusal = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: a batch may hold at most ${CAP} messages` } })

t.test('a policy route refuses a batch longer than the cap, on the Fastify path and in the lane', async (t) => {
  const { accessToken } = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools' })
  // [case, body, status, forwarded]
  const rows: Array<[string, unknown, number, boolean]> = [
    // The first request with this token: a cache miss, so Fastify's path.
    [`${CAP + 1} allowed messages (first use of the token: Fastify)`, calls(CAP + 1), 400, false],
    [`${CAP} allowed messages`, calls(CAP), 200, true],
    [`${CAP + 1} allowed messages (cached token: the lane)`, calls(CAP + 1), 400, false],
    ['1 message in a batch', calls(1), 200, true],
    ['a single message', call('echo'), 200, true],
    [`${CAP + 1} messages, one of them denied by the policy: the cap answers, not the policy`, [...calls(CAP), call('admin_reset')], 400, false],
    [`${CAP + 1} messages, one invalid: the cap answers before any message is read`, [...calls(CAP), { jsonrpc: '1.0', id: 'x' }], 400, false],
    ['40,000 denied messages (3.9 MB, under maxBodyBytes)', calls(40_000, 'admin_reset'), 400, false]
  ]
  for (const [name, body, status, forwarded] of rows) {
    const before = received.length
    const r = await post('/policy', accessToken, body)
    t.equal(r.status, status, `${name}: ${status}`)
    if (forwarded) {
      t.equal(received.length, before + 1, `${name}: forwarded once`)
      t.same(JSON.parse(received.at(-1)!.body.toString('utf8')), body, `${name}: the upstream got the authorised body`)
    } else {
      t.equal(received.length, before, `${name}: nothing reached the upstream`)
      t.equal(r.text, refusal, `${name}: one -32600 error, id null, naming the cap`)
      t.match(r.line, { route: '/policy', status: 400, outcome: 'batch_too_long' }, `${name}: the request line says why`)
    }
  }
})

t.test('routes without a policy forward batches of any length as received', async (t) => {
  const { accessToken } = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools' })
  for (const n of [CAP + 1, 500]) {
    const before = received.length
    const body = JSON.stringify(calls(n, 'admin_reset'))
    const r = await post('/plain', accessToken, body)
    t.equal(r.status, 200, `${n} messages: the upstream's answer`)
    t.equal(received.length, before + 1, `${n} messages: forwarded`)
    t.equal(received.at(-1)!.body.toString('utf8'), body, `${n} messages: byte for byte`)
  }
})

t.test('under the cap, a real SDK upstream answers through a policy route', async (t) => {
  const { accessToken } = await as.userTokens({ resource: RESOURCE, scope: 'mcp:tools' })
  const res = await fetch(`${gw.url}/sdk`, {
    method: 'POST',
    headers: mcpHeaders(accessToken, { 'mcp-protocol-version': '2025-06-18' }),
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text: 'under the cap' } } })
  })
  t.equal(res.status, 200)
  const body = await res.json() as { id: number, result: { content: Array<{ text: string }> } }
  t.equal(body.id, 7)
  t.equal(body.result.content[0]!.text, 'under the cap')
  const tooLong = await post('/sdk', accessToken, calls(CAP + 1))
  t.equal(tooLong.status, 400, 'and a batch over the cap never reaches it')
  t.equal(tooLong.text, refusal)
})
