/**
 * Issue 5 item 4 in a real browser: headless Chromium (Debian chromium,
 * driven by playwright-core) loads a page from another origin, and the page
 * calls the gateway with fetch(), exactly as a browser-based MCP client does.
 * From an allowed origin: a 401 whose WWW-Authenticate the page can read (an
 * exposed header), the public PRM document, then initialize with a real
 * oidc-provider token (the Authorization header forces a CORS preflight),
 * the Mcp-Session-Id readable, and a follow-up call carrying Mcp-Session-Id
 * and an Mcp-Param-* header. From a page on an origin that is not allowed:
 * 403 on the wire, and Chromium refuses to hand the page anything.
 *
 * Needs /usr/bin/chromium (or $CHROMIUM_PATH): see DEVELOPERS.md.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { startAuthServer } from '../helpers/as.js'
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../helpers/browser.js'
import { startStatefulUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'

/** A site serving one HTML page; its origin is what the browser sends as Origin. */
async function startSite (title: string): Promise<{ origin: string, server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(`<!doctype html><title>${title}</title><p>${title}</p>`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

const as = await startAuthServer()
const up = await startStatefulUpstream()
const app = await startSite('MCP web app')
const evil = await startSite('Some other site')
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  allowedOrigins: [app.origin],
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }]
}))
const RESOURCE = `${gw.url}/mcp`
as.registerResource({ url: RESOURCE, scope: 'mcp:tools' })
const token = await as.clientCredentialsToken({ resource: RESOURCE, scope: 'mcp:tools' })

let browser: Browser
try {
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 15_000 })
} catch (err) {
  throw new Error(`cannot start Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH; see DEVELOPERS.md): ${(err as Error).message.split('\n')[0]}`)
}
t.teardown(async () => {
  await browser.close()
  await gw.close()
  await up.close()
  for (const s of [app.server, evil.server]) { s.closeAllConnections(); s.close() }
  await as.close()
})

const INITIALIZE = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser', version: '1.0.0' } } })

t.test('a page on an allowed origin: 401 with a readable challenge, then initialize with a token', async (t) => {
  const page = await browser.newPage()
  t.teardown(async () => { await page.close() })
  await page.goto(app.origin + '/')
  const before = up.requests.length
  const result = await page.evaluate(async ({ mcp, token, init }) => {
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' }
    // 1. No token: the challenge must be readable from JS (Access-Control-Expose-Headers).
    const noToken = await fetch(mcp, { method: 'POST', headers: base, body: init })
    const challenge = noToken.headers.get('www-authenticate')
    const errorBody = await noToken.json() as { error: string }
    // 2. The PRM document the challenge points at (public, any origin).
    const prmUrl = /resource_metadata="([^"]+)"/.exec(challenge ?? '')?.[1]
    const prm = prmUrl === undefined ? undefined : await (await fetch(prmUrl)).json() as { resource: string }
    // 3. With the token: Authorization is not CORS-safelisted, so Chromium sends a preflight first.
    const ok = await fetch(mcp, { method: 'POST', headers: { ...base, authorization: `Bearer ${token}` }, body: init })
    const sessionId = ok.headers.get('mcp-session-id')
    const text = await ok.text()
    // 4. A follow-up on the session with an Mcp-Param-* header: the preflight must grant that name.
    const list = await fetch(mcp, {
      method: 'POST',
      headers: { ...base, authorization: `Bearer ${token}`, 'mcp-session-id': sessionId ?? '', 'mcp-param-region': 'eu' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
    })
    const listText = await list.text()
    return {
      noTokenStatus: noToken.status,
      challenge,
      errorCode: errorBody.error,
      notExposed: noToken.headers.get('access-control-allow-origin'),
      prmResource: prm?.resource,
      okStatus: ok.status,
      sessionId,
      serverInfo: text.includes('"serverInfo"'),
      listStatus: list.status,
      listHasEcho: listText.includes('"echo"')
    }
  }, { mcp: RESOURCE, token, init: INITIALIZE })

  t.equal(result.noTokenStatus, 401, 'without a token: 401, readable by the page')
  t.match(result.challenge, /^Bearer .*resource_metadata="/, 'WWW-Authenticate read from JS (exposed header)')
  t.equal(result.errorCode, 'unauthorized', 'the error body is readable too')
  t.equal(result.notExposed, null, 'headers that are not exposed stay hidden from the page')
  t.equal(result.prmResource, RESOURCE, 'PRM fetched cross-origin from the challenge URL')
  t.equal(result.okStatus, 200, 'with the token: initialize succeeds')
  t.match(result.sessionId, /^[0-9a-f-]{36}$/, 'Mcp-Session-Id read from JS (exposed header)')
  t.ok(result.serverInfo, 'the initialize result reached the page')
  t.equal(result.listStatus, 200, 'a call with Mcp-Session-Id and Mcp-Param-Region passes the preflight')
  t.ok(result.listHasEcho, 'tools/list result read by the page')
  const preflights = gw.requestLogs().filter((l) => l.method === 'OPTIONS' && l.status === 204)
  t.ok(preflights.length >= 2, `Chromium sent CORS preflights, answered without a token (${preflights.length})`)
  const forwarded = up.requests.slice(before).filter((r) => r.method === 'POST')
  t.equal(forwarded.length, 2, 'initialize and tools/list reached the upstream; the 401 did not')
  t.ok(forwarded.some((r) => r.headers['mcp-param-region'] === 'eu'), 'the Mcp-Param-Region header reached the upstream')
  t.ok(forwarded.every((r) => r.headers.authorization === undefined), 'the browser\'s token never reached the upstream')
})

t.test('a page on another origin: 403, and the browser hands the page nothing', async (t) => {
  const page = await browser.newPage()
  t.teardown(async () => { await page.close() })
  await page.goto(evil.origin + '/')
  const before = up.requests.length
  const logsBefore = gw.requestLogs().length
  // No named inner functions: tsx would wrap them in a helper the page does not have.
  const [withToken, simple, opaque] = await page.evaluate(async ({ mcp, token, init }) => {
    const attempts: RequestInit[] = [
      // Preflighted (Authorization): the preflight gets 403, the request itself is never sent.
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: init },
      // A "simple" request (no preflight): sent with Origin, refused with 403 and no CORS grant.
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: init },
      // no-cors: an opaque response; status and body are hidden.
      { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: init }
    ]
    const out: string[] = []
    for (const a of attempts) {
      try {
        const res = await fetch(mcp, a)
        out.push(`read ${res.status} ${res.type}`)
      } catch (err) {
        out.push(`blocked ${(err as Error).name}`)
      }
    }
    return out
  }, { mcp: RESOURCE, token, init: INITIALIZE })
  t.equal(withToken, 'blocked TypeError', 'the token-bearing call fails in the page')
  t.equal(simple, 'blocked TypeError', 'a simple cross-origin POST cannot be read')
  t.equal(opaque, 'read 0 opaque', 'no-cors gets an opaque response (status 0, nothing readable)')
  t.equal(up.requests.length, before, 'nothing reached the upstream')
  const lines = gw.requestLogs().slice(logsBefore)
  t.ok(lines.length >= 3, `the gateway saw the attempts (${lines.length})`)
  t.ok(lines.every((l) => l.status === 403 && l.outcome === 'forbidden_origin'), 'each answered 403 forbidden_origin, preflight included')
  t.ok(lines.some((l) => l.method === 'OPTIONS'), 'the preflight itself was refused')
})
