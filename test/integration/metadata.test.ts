/**
 * Section 3 of the core issue: RFC 9728 protected-resource metadata. Public,
 * CORS from any origin, GET and OPTIONS only, exact resource and issuers.
 */
import t from 'tap'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startGateway } from '../helpers/gateway.js'

// Issuers, one with a path, must be advertised exactly as written and in order.
const st = await startStaticIssuer()
const slashIssuer = await startStaticIssuer({ issuerPath: '/tenant' })
const single = await startGateway(() => ({
  authorizationServers: [{ issuer: st.issuer }, { issuer: `${slashIssuer.issuer}`, jwksUri: slashIssuer.jwksUri }],
  routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools', 'mcp:resources'] }]
}))
const multi = await startGateway(() => ({
  authorizationServers: [{ issuer: st.issuer }],
  routes: [
    { path: '/a/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['a'] },
    { path: '/b', upstream: 'http://127.0.0.1:9', resource: 'https://mcp.example.com/b-resource' }
  ]
}))
t.teardown(async () => { await single.close(); await multi.close(); await st.close(); await slashIssuer.close() })

const expected = {
  resource: `${single.url}/mcp`,
  authorization_servers: [st.issuer, slashIssuer.issuer],
  scopes_supported: ['mcp:tools', 'mcp:resources'],
  bearer_methods_supported: ['header']
}

t.test('the route document, its sub-paths and the root (single route)', async (t) => {
  for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource/mcp/sse', '/.well-known/oauth-protected-resource/mcp/messages', '/.well-known/oauth-protected-resource']) {
    const res = await fetch(single.url + path, { headers: { origin: 'https://any.example.com' } })
    t.equal(res.status, 200, path)
    t.match(res.headers.get('content-type'), /^application\/json/)
    t.equal(res.headers.get('access-control-allow-origin'), '*', 'CORS from any origin')
    t.same(await res.json(), expected, `${path}: exact document`)
  }
})

t.test('GET and OPTIONS only, never a token', async (t) => {
  const url = `${single.url}/.well-known/oauth-protected-resource/mcp`
  const pre = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } })
  t.equal(pre.status, 204)
  t.equal(pre.headers.get('access-control-allow-origin'), '*')
  t.match(pre.headers.get('access-control-allow-methods'), /GET/)
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const res = await fetch(url, { method })
    t.equal(res.status, 405, `${method} → 405`)
    t.equal(res.headers.get('allow'), 'GET, OPTIONS')
    t.same(await res.json(), { error: 'method_not_allowed', error_description: 'Metadata is read-only: use GET' })
  }
  const withBadToken = await fetch(url, { headers: { authorization: 'Bearer garbage' } })
  t.equal(withBadToken.status, 200, 'a bad token is ignored here')
})

t.test('several routes: one document each, no root document, configured resource used verbatim', async (t) => {
  const a = await fetch(`${multi.url}/.well-known/oauth-protected-resource/a/mcp`)
  t.same(await a.json(), { resource: `${multi.url}/a/mcp`, authorization_servers: [st.issuer], scopes_supported: ['a'], bearer_methods_supported: ['header'] })
  const b = await fetch(`${multi.url}/.well-known/oauth-protected-resource/b/sse`)
  t.same(await b.json(), { resource: 'https://mcp.example.com/b-resource', authorization_servers: [st.issuer], scopes_supported: [], bearer_methods_supported: ['header'] })
  const root = await fetch(`${multi.url}/.well-known/oauth-protected-resource`)
  t.equal(root.status, 404, 'the root form is ambiguous with several routes')
  const other = await fetch(`${multi.url}/.well-known/oauth-protected-resource/c`)
  t.equal(other.status, 404)
})

t.test('the challenge points at the route document', async (t) => {
  const res = await fetch(`${multi.url}/a/mcp/sse`)
  t.equal(res.status, 401)
  t.equal(res.headers.get('www-authenticate'), `Bearer scope="a", resource_metadata="${multi.url}/.well-known/oauth-protected-resource/a/mcp"`)
})

t.test('health endpoints need no token', async (t) => {
  t.same(await (await fetch(`${single.url}/healthz`)).json(), { status: 'ok' })
  t.same(await (await fetch(`${single.url}/readyz`)).json(), { status: 'ready' })
})

t.test('scopes_supported comes from the route scopes and its policy, without offline_access; issuers are the route\'s', async (t) => {
  const gw = await startGateway(() => ({
    authorizationServers: [{ issuer: st.issuer }, { issuer: slashIssuer.issuer, jwksUri: slashIssuer.jwksUri }],
    routes: [{
      path: '/mcp',
      upstream: 'http://127.0.0.1:9/mcp',
      scopes: ['mcp:access', 'offline_access'],
      issuers: [slashIssuer.issuer],
      policy: {
        default: ['mcp:access'],
        methods: { 'tools/call': ['mcp:tools'] },
        tools: { delete_node: ['mcp:admin'], 'search_*': ['mcp:read', 'offline_access'] },
        resources: { 'drupal://node/*': ['mcp:read'] },
        prompts: { summarize: ['mcp:prompts'] }
      }
    }]
  }))
  t.teardown(gw.close)
  const doc = await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp`)).json()
  t.same(doc, {
    resource: `${gw.url}/mcp`,
    authorization_servers: [slashIssuer.issuer],
    scopes_supported: ['mcp:access', 'mcp:tools', 'mcp:admin', 'mcp:read', 'mcp:prompts'],
    bearer_methods_supported: ['header']
  })
})

t.test('mirrorAuthorizationServerMetadata serves the AS document on the gateway origin', async (t) => {
  const gw = await startGateway(() => ({
    mirrorAuthorizationServerMetadata: true,
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp' }]
  }))
  t.teardown(gw.close)
  const original = await (await fetch(`${st.issuer}/.well-known/oauth-authorization-server`)).json()
  for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
    const res = await fetch(gw.url + path)
    t.equal(res.status, 200, path)
    t.equal(res.headers.get('access-control-allow-origin'), '*')
    t.same(await res.json(), original, `${path}: the AS document, issuer unchanged`)
    t.equal((await fetch(gw.url + path, { method: 'POST' })).status, 405, `${path}: read-only`)
  }
  const fetchesBefore = st.metadataFetches
  await fetch(`${gw.url}/.well-known/oauth-authorization-server`)
  t.equal(st.metadataFetches, fetchesBefore, 'served from cache, not refetched per request')
})

t.test('the mirror answers 503 with Retry-After while the AS metadata cannot be fetched', async (t) => {
  const gw = await startGateway(() => ({
    mirrorAuthorizationServerMetadata: 'http://127.0.0.1:9',
    authorizationServers: [{ issuer: 'http://127.0.0.1:9' }],
    routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp' }]
  }), { waitReady: false })
  t.teardown(gw.close)
  const res = await fetch(`${gw.url}/.well-known/oauth-authorization-server`)
  t.equal(res.status, 503)
  t.equal(res.headers.get('retry-after'), '5')
  t.same(await res.json(), { error: 'temporarily_unavailable', error_description: 'The authorization server metadata cannot be fetched; retry later' })
})

t.test('without the mirror setting the AS paths are not served', async (t) => {
  t.equal((await fetch(`${single.url}/.well-known/oauth-authorization-server`)).status, 404)
})
