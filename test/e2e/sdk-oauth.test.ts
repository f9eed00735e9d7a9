/**
 * The official MCP SDK client, end to end through the gateway, with its real
 * built-in OAuth: 401 → protected-resource metadata → AS metadata → DCR →
 * PKCE (S256) with `resource` → dev login → token → MCP calls. The AS is the
 * real oidc-provider; upstreams are SDK-built servers and the unmodified
 * @modelcontextprotocol/server-everything.
 */
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import { decodeJwt } from 'jose'
import { startAuthServer } from '../helpers/as.js'
import { MemoryOAuthProvider } from '../helpers/oauth-client.js'
import { startStatefulUpstream, startLegacySseUpstream, startEverything } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

const as = await startAuthServer()
const stateful = await startStatefulUpstream()
const legacy = await startLegacySseUpstream()
const everything = await startEverything('streamableHttp')
const everythingSse = await startEverything('sse')
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [
    { path: '/mcp', upstream: `${stateful.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/team-a/legacy', upstream: legacy.origin, scopes: ['mcp:tools'] },
    { path: '/everything', upstream: `${everything.origin}/mcp`, scopes: ['mcp:tools'] },
    { path: '/everything-sse', upstream: everythingSse.origin, scopes: ['mcp:tools'] }
  ]
}))
t.teardown(async () => {
  await gw.close()
  await Promise.all([stateful.close(), legacy.close(), everything.close(), everythingSse.close(), as.close()])
})
for (const r of ['/mcp', '/team-a/legacy', '/everything', '/everything-sse']) as.registerResource({ url: gw.url + r, scope: 'mcp:tools' })

/** Records every HTTP exchange the SDK client makes (its transport and its auth() share this fetch). */
function recordingFetch (log: Array<{ method: string, url: string, status: number }>): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init)
    log.push({ method: init?.method ?? 'GET', url: String(input instanceof Request ? input.url : input), status: res.status })
    return res
  }
}

/**
 * Connect the way an MCP host does: try, and on UnauthorizedError finish the
 * authorization with the code the "browser" obtained, then connect again.
 */
async function connectWithOAuth (makeTransport: () => Transport & { finishAuth: (code: string) => Promise<void> }, provider: MemoryOAuthProvider): Promise<{ client: Client, transport: Transport }> {
  let transport = makeTransport()
  let client = new Client({ name: 'e2e', version: '1.0.0' })
  try {
    await client.connect(transport)
    return { client, transport }
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err
  }
  await transport.finishAuth(provider.takeAuthorizationCode())
  transport = makeTransport()
  client = new Client({ name: 'e2e', version: '1.0.0' })
  await client.connect(transport)
  return { client, transport }
}

function text (result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text
}

t.test('Streamable HTTP: the full OAuth flow, then initialize, tools/list and a streaming tools/call', async (t) => {
  const log: Array<{ method: string, url: string, status: number }> = []
  const provider = new MemoryOAuthProvider()
  const fetchFn = recordingFetch(log)
  const url = new URL(`${gw.url}/mcp`)
  const { client } = await connectWithOAuth(() => new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: fetchFn }), provider)

  // The flow, step by step, as the client performed it.
  const steps = log.map((e) => `${e.method} ${e.url.replace(gw.url, 'GW').replace(as.issuer, 'AS').replace(/\?.*$/, '')} ${e.status}`)
  t.equal(steps[0], 'POST GW/mcp 401', 'first call is challenged')
  t.ok(steps.includes('GET GW/.well-known/oauth-protected-resource/mcp 200'), 'PRM fetched from the challenge URL')
  t.ok(steps.some((s) => /^GET AS\/\.well-known\/(oauth-authorization-server|openid-configuration) 200$/.test(s)), 'AS metadata discovered')
  t.ok(steps.includes('POST AS/reg 201'), 'dynamic client registration')
  t.ok(steps.includes('POST AS/token 200'), 'code exchanged for a token')
  t.ok(steps.indexOf('POST AS/token 200') < steps.lastIndexOf('POST GW/mcp 200'), 'MCP calls succeed after the token')

  const authz = provider.authorizationUrls[0]!
  t.equal(authz.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256')
  t.ok(authz.searchParams.get('code_challenge'), 'PKCE challenge sent')
  t.equal(authz.searchParams.get('resource'), `${gw.url}/mcp`, 'RFC 8707 resource = the PRM resource')
  t.equal(authz.searchParams.get('scope'), 'mcp:tools', 'scope from the challenge')

  const token = provider.tokens()!.access_token
  const claims = decodeJwt(token)
  t.equal(claims.aud, `${gw.url}/mcp`, 'token audience is the route resource')
  t.equal(claims.sub, 'alice', 'user token')

  t.same((await client.listTools()).tools.map((x) => x.name).sort(), ['echo', 'slow_progress', 'whoami'])
  const progress: number[] = []
  const res = await client.callTool({ name: 'slow_progress', arguments: { steps: 3, intervalMs: 100 } }, undefined, { onprogress: (p) => progress.push(p.progress) })
  t.equal(text(res), 'done')
  t.same(progress, [1, 2, 3], 'progress notifications streamed')
  const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, string>
  t.equal(who['x-forwarded-user'], 'alice', 'upstream sees the user')
  t.equal(who.authorization, undefined, 'upstream never sees the token')
  await client.close()
})

t.test('legacy HTTP+SSE session under a path prefix, with the OAuth flow', async (t) => {
  const provider = new MemoryOAuthProvider()
  const url = new URL(`${gw.url}/team-a/legacy/sse`)
  const { client } = await connectWithOAuth(() => new SSEClientTransport(url, { authProvider: provider }), provider)
  t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'via legacy' } })), 'via legacy')
  const progress: number[] = []
  await client.callTool({ name: 'slow_progress', arguments: { steps: 2, intervalMs: 100 } }, undefined, { onprogress: (p) => progress.push(p.progress) })
  t.same(progress, [1, 2])
  t.ok(legacy.requests.some((r) => r.method === 'POST' && r.url.startsWith('/messages?sessionId=')), 'POSTs reached the upstream endpoint through the rewritten prefix')
  t.equal(decodeJwt(provider.tokens()!.access_token).aud, `${gw.url}/team-a/legacy`, 'resource is the route, not the /sse sub-path')
  await client.close()
})

t.test('the unmodified reference server (server-everything), Streamable HTTP and SSE', async (t) => {
  for (const [path, make] of [
    ['/everything', (p: MemoryOAuthProvider) => new StreamableHTTPClientTransport(new URL(`${gw.url}/everything`), { authProvider: p })],
    ['/everything-sse', (p: MemoryOAuthProvider) => new SSEClientTransport(new URL(`${gw.url}/everything-sse/sse`), { authProvider: p })]
  ] as const) {
    const provider = new MemoryOAuthProvider()
    const { client } = await connectWithOAuth(() => make(provider), provider)
    const tools = (await client.listTools()).tools.map((x) => x.name)
    t.ok(tools.includes('echo'), `${path}: tools listed (${tools.length})`)
    const echoed = text(await client.callTool({ name: 'echo', arguments: { message: 'hi' } }))
    t.match(echoed, /hi/, `${path}: echo tool called`)
    if (tools.includes('trigger-long-running-operation')) {
      const progress: number[] = []
      await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) })
      t.ok(progress.length >= 2, `${path}: progress notifications from server-everything (${progress.length})`)
    }
    await client.close()
  }
})
