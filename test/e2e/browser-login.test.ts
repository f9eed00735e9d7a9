/**
 * Issue 4 item 8: a real browser login. The official MCP SDK client (its own
 * OAuth: discovery, DCR, PKCE S256, RFC 8707 resource) opens the
 * authorization URL in real headless Chromium (Debian chromium driven by
 * playwright-core), which signs in and consents on the real oidc-provider's
 * pages; the AS redirects the browser to a loopback callback server, the
 * code goes back to the SDK (`transport.finishAuth`), and tools are called
 * through the real gateway to a real SDK upstream.
 *
 * The step-up part: a route whose policy requires mcp:admin for delete_node.
 * The client holds mcp:tools only, gets 403 insufficient_scope, the SDK
 * re-runs authorization with the challenge's scope in the same browser, and
 * the call succeeds with the wider token.
 *
 * Needs /usr/bin/chromium (or $CHROMIUM_PATH): see DEVELOPERS.md.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { decodeJwt } from 'jose'
import { z } from 'zod'
import { startAuthServer } from '../helpers/as.js'
import { startLoginBrowser, type LoginBrowser } from '../helpers/browser.js'
import { MemoryOAuthProvider } from '../helpers/oauth-client.js'
import { buildTestMcpServer } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

/**
 * Everything observable, in the order it happened: the client's POSTs to the
 * gateway (logged when the response head arrives, so after the upstream saw
 * the request), tokens saved (their sorted scopes), upstream tool calls.
 */
type Event = string

/**
 * A stateless SDK upstream: the standard test tools (echo, whoami,
 * slow_progress) plus `delete_node`, the tool the step-up policy guards.
 * Records each JSON-RPC request it receives into `events`.
 */
async function startUpstream (events: Event[]): Promise<{ origin: string, close: () => Promise<void> }> {
  const readJson = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'))
  }
  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end()
      return
    }
    void (async () => {
      const body = await readJson(req)
      for (const m of Array.isArray(body) ? body : [body]) {
        const msg = m as { method?: string, params?: { name?: string } }
        if (msg.method === 'tools/call') events.push(`upstream tools/call ${msg.params?.name ?? '?'}`)
      }
      const mcp = buildTestMcpServer()
      mcp.registerTool('delete_node', {
        description: 'Deletes a node (needs mcp:admin at the gateway)',
        inputSchema: { id: z.number().int() }
      }, async ({ id }) => ({ content: [{ type: 'text', text: `deleted node ${id}` }] }))
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
      res.on('close', () => { void transport.close(); void mcp.close() })
      await mcp.connect(transport)
      await transport.handleRequest(req, res, body)
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * The fetch the SDK transport (and its auth()) uses: records `<status> <JSON-RPC method> [tool]`
 * per gateway POST, and the WWW-Authenticate of each 403 into `challenges`.
 */
function recordingFetch (events: Event[], gatewayUrl: string, challenges: string[] = []): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init)
    const url = String(input instanceof Request ? input.url : input)
    if (url.startsWith(gatewayUrl) && res.status === 403) challenges.push(res.headers.get('www-authenticate') ?? '')
    if (url.startsWith(gatewayUrl) && init?.method === 'POST' && typeof init.body === 'string') {
      const msg = JSON.parse(init.body) as { method?: string, params?: { name?: string } }
      events.push(`client ${res.status} ${msg.method ?? 'response'}${msg.params?.name !== undefined ? ` ${msg.params.name}` : ''}`)
    }
    return res
  }
}

/** A provider whose browser is real Chromium; logs each saved token's scope into `events`. */
function chromiumProvider (browser: LoginBrowser, events: Event[]): MemoryOAuthProvider {
  const provider = new MemoryOAuthProvider({
    redirectUrl: browser.redirectUrl,
    browser: async (url) => (await browser.authorize(url)).callback
  })
  const save = provider.saveTokens.bind(provider)
  provider.saveTokens = (tokens) => {
    save(tokens)
    events.push(`token ${scopesOf(tokens.access_token).join(' ')}`)
  }
  return provider
}

/**
 * Connect the way an MCP host does (SDK README, "OAuth"): connect; on
 * UnauthorizedError the browser has already been sent to the AS, so finish
 * with the code it brought back and connect with a fresh transport.
 */
async function connectWithOAuth (url: URL, provider: MemoryOAuthProvider, fetchFn: typeof fetch): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> {
  const make = (): StreamableHTTPClientTransport => new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: fetchFn })
  let transport = make()
  let client = new Client({ name: 'browser-e2e', version: '1.0.0' })
  try {
    await client.connect(transport)
    return { client, transport }
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err
  }
  await transport.finishAuth(provider.takeAuthorizationCode())
  transport = make()
  client = new Client({ name: 'browser-e2e', version: '1.0.0' })
  await client.connect(transport)
  return { client, transport }
}

function text (result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0]!.text
}

function scopesOf (token: string): string[] {
  return String(decodeJwt(token).scope ?? '').split(' ').filter(Boolean).sort()
}

const as = await startAuthServer()
t.teardown(() => as.close())

t.test('Chromium signs in on the AS pages, the SDK client gets the code on its loopback redirect and calls tools through the gateway', async (t) => {
  const events: Event[] = []
  const upstream = await startUpstream(events)
  t.teardown(() => upstream.close())
  const gw = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/mcp', upstream: `${upstream.origin}/mcp`, scopes: ['mcp:tools'] }]
  }))
  as.registerResource({ url: `${gw.url}/mcp`, scope: 'mcp:tools' })
  t.teardown(() => gw.close())
  const browser = await startLoginBrowser({ user: 'alice' })
  t.teardown(() => browser.close())

  const provider = chromiumProvider(browser, events)
  const { client } = await connectWithOAuth(new URL(`${gw.url}/mcp`), provider, recordingFetch(events, gw.url))

  t.equal(browser.history.length, 1, 'one browser authorization')
  const login = browser.history[0]!
  t.same(login.pages, ['login', 'consent'], 'Chromium filled the login page, then the consent page')
  t.equal(login.callback.origin + login.callback.pathname, browser.redirectUrl, 'the AS redirected the browser to the loopback callback')
  t.ok(login.callback.searchParams.get('code'), 'the callback carried a code')
  t.equal(login.callback.searchParams.get('iss'), as.issuer, 'and the issuer (RFC 9207)')

  const authz = provider.authorizationUrls[0]!
  t.equal(authz.origin, as.issuer, 'the browser was sent to the AS')
  t.equal(authz.searchParams.get('redirect_uri'), browser.redirectUrl, 'redirect_uri is the callback server')
  t.equal(authz.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256')
  t.equal(authz.searchParams.get('resource'), `${gw.url}/mcp`, 'RFC 8707 resource is the route')
  t.equal(authz.searchParams.get('scope'), 'mcp:tools', 'scope from the 401 challenge')

  const claims = decodeJwt(provider.tokens()!.access_token)
  t.equal(claims.sub, 'alice', 'the token is for the user who signed in in the browser')
  t.equal(claims.aud, `${gw.url}/mcp`, 'audience is the route resource')
  t.same(scopesOf(provider.tokens()!.access_token), ['mcp:tools'], 'granted the scope the client asked for')
  t.equal(events[0], 'client 401 initialize', 'the first request was challenged')

  t.same((await client.listTools()).tools.map((x) => x.name).sort(), ['delete_node', 'echo', 'slow_progress', 'whoami'], 'tools/list through the gateway')
  t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'from a browser login' } })), 'from a browser login', 'tools/call result')
  const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, string>
  t.equal(who['x-forwarded-user'], 'alice', 'upstream sees the browser user')
  t.equal(who.authorization, undefined, 'upstream never sees the token')
  t.same(events.filter((e) => e.startsWith('upstream')), ['upstream tools/call echo', 'upstream tools/call whoami'], 'both calls reached the upstream')
  await client.close()
})

t.test('step-up: 403 insufficient_scope for delete_node, re-authorisation in Chromium with the wider scope, then the call succeeds', async (t) => {
  const events: Event[] = []
  const upstream = await startUpstream(events)
  t.teardown(() => upstream.close())
  const gw = await startGateway(() => ({
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{
      path: '/admin',
      upstream: `${upstream.origin}/mcp`,
      scopes: ['mcp:tools'],
      policy: { default: [], tools: { delete_node: ['mcp:admin'] } }
    }]
  }))
  as.registerResource({ url: `${gw.url}/admin`, scope: 'mcp:tools mcp:admin' })
  t.teardown(() => gw.close())
  const browser = await startLoginBrowser({ user: 'alice' })
  t.teardown(() => browser.close())

  const provider = chromiumProvider(browser, events)
  const challenges: string[] = []
  const { client, transport } = await connectWithOAuth(new URL(`${gw.url}/admin`), provider, recordingFetch(events, gw.url, challenges))

  // First grant: what the 401 challenge asked for, without mcp:admin.
  t.equal(provider.authorizationUrls[0]!.searchParams.get('scope'), 'mcp:tools', 'first authorization asks for the challenge scope only')
  const first = provider.tokens()!.access_token
  t.same(scopesOf(first), ['mcp:tools'], 'first token lacks mcp:admin')

  const listed = (await client.listTools()).tools.map((x) => x.name).sort()
  t.notOk(listed.includes('delete_node'), 'tools/list hides delete_node from a caller without mcp:admin (filtered tools/list)')
  t.ok(listed.includes('echo'), 'and still lists the other tools')
  t.equal(text(await client.callTool({ name: 'echo', arguments: { text: 'ok' } })), 'ok', 'a tool the policy does not guard is called')

  // delete_node: the gateway answers 403; the SDK transport re-runs auth() with
  // the challenge's scope, which sends Chromium to the AS again. SDK 1.32.2's
  // auth() returns REDIRECT for an interactive client, so the call rejects with
  // UnauthorizedError and the host finishes and retries, as after the first login.
  const held = await client.callTool({ name: 'delete_node', arguments: { id: 7 } }).then(() => undefined, (err: unknown) => err)
  t.ok(held instanceof UnauthorizedError, 'the call is held for re-authorisation (UnauthorizedError)')
  t.equal(browser.history.length, 2, 'Chromium was sent to the AS a second time')
  t.same(browser.history[1]!.pages, ['consent'], 'the AS session cookie in the browser skips the login page; only the new scope needs consent')
  const again = provider.authorizationUrls[1]!
  t.same(again.searchParams.get('scope')?.split(' ').sort(), ['mcp:admin', 'mcp:tools'], 'second authorization asks for every scope the 403 challenge named')
  t.equal(again.searchParams.get('resource'), `${gw.url}/admin`, 'for the same resource')

  t.equal(challenges.length, 1, 'the client saw one 403')
  t.match(challenges[0], /^Bearer /, 'a Bearer challenge')
  t.match(challenges[0], /error="insufficient_scope"/, 'error insufficient_scope')
  t.same(/scope="([^"]*)"/.exec(challenges[0] ?? '')?.[1]?.split(' ').sort(), ['mcp:admin', 'mcp:tools'], 'naming every scope delete_node needs')
  t.match(challenges[0], `resource_metadata="${gw.url}/.well-known/oauth-protected-resource/admin"`, 'and the route metadata')
  const denied = gw.requestLogs().filter((r) => r.status === 403)
  t.equal(denied.length, 1, 'the gateway answered 403 once')
  t.equal(denied[0]?.outcome, 'insufficient_scope', 'with outcome insufficient_scope')

  await transport.finishAuth(provider.takeAuthorizationCode())
  const second = provider.tokens()!.access_token
  t.not(second, first, 'a new token')
  t.same(scopesOf(second), ['mcp:admin', 'mcp:tools'], 'second token has mcp:admin')
  t.equal(decodeJwt(second).sub, 'alice', 'for the same user')

  t.equal(text(await client.callTool({ name: 'delete_node', arguments: { id: 7 } })), 'deleted node 7', 'the retried delete_node result arrived')
  t.ok((await client.listTools()).tools.some((x) => x.name === 'delete_node'), 'tools/list now shows delete_node')

  t.same(events.filter((e) => !e.startsWith('client 202') && !/ (initialize|tools\/list)$/.test(e)), [
    'token mcp:tools',
    'upstream tools/call echo',
    'client 200 tools/call echo',
    'client 403 tools/call delete_node',
    'token mcp:admin mcp:tools',
    'upstream tools/call delete_node',
    'client 200 tools/call delete_node'
  ], 'delete_node reached the upstream only after the step-up token, and exactly once')
  await client.close()
})
