/**
 * Header hygiene: the client's credential and every identity header it sent
 * are removed before the verified identity is set; response headers are
 * cleaned of hop-by-hop fields and SSE is marked unbufferable.
 */
import t from 'tap';

import type { Principal } from '../../src/auth/principal.js';
import type { RouteConfig } from '../../src/config/types.js';
import { cleanResponseHeaders, compileRequestHeaders, identityRepresentable, type HeaderBag } from '../../src/proxy/headers.js';

/** Object form of cleanResponseHeaders, for readable tables. */
function rewriteResponseHeaders(h: HeaderBag): { sse: boolean } {
  const flat = Object.entries(h).flatMap(([k, v]) => [k, String(v)]);
  const { headers, sse } = cleanResponseHeaders(flat);
  for (const k of Object.keys(h)) delete h[k];
  for (let i = 0; i < headers.length; i += 2) h[headers[i]!] = headers[i + 1];
  return { sse };
}

const DEFAULT_NAMES = {
  subject: 'X-Forwarded-User',
  clientId: 'X-Forwarded-Client-Id',
  scopes: 'X-Forwarded-Scopes',
  issuer: 'X-Forwarded-Issuer',
  roles: 'X-Forwarded-Roles',
};

function route(over: Partial<RouteConfig> = {}): RouteConfig {
  return {
    id: '/mcp',
    path: '/mcp',
    upstreamOrigin: 'http://127.0.0.1:3001',
    upstreamPath: '',
    resource: 'https://gw.example.com/mcp',
    resourceMetadataUrl: 'https://gw.example.com/.well-known/oauth-protected-resource/mcp',
    scopes: [],
    issuers: ['https://as.example.com'],
    policy: undefined,
    identityHeaders: DEFAULT_NAMES,
    claimHeaders: [],
    identityAssertion: undefined,
    upstreamAuth: { type: 'none' },
    allowedOrigins: ['https://gw.example.com'],
    timeouts: { connectMs: 1000, headersMs: 1000, idleMs: 1000 },
    ...over,
  };
}

function principal(over: Partial<Principal> = {}): Principal {
  const scopes = over.scopes ?? new Set(['mcp:tools', 'mcp:read']);
  return {
    subject: 'user-1',
    clientId: 'client-1',
    issuer: 'https://as.example.com',
    scopes,
    scopeString: [...scopes].join(' '),
    roles: new Set<string>(),
    roleString: '',
    claims: {},
    expiresAtMs: Date.now() + 60_000,
    ...over,
  };
}

/** What a client could send to impersonate someone. */
function forgedRequest(): HeaderBag {
  return {
    host: 'gw.example.com',
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-session-id': 'sess-1',
    'mcp-protocol-version': '2025-06-18',
    cookie: 'a=b',
    authorization: 'Bearer client-token',
    'proxy-authorization': 'Basic eDp5',
    'x-forwarded-user': 'admin',
    'x-forwarded-client-id': 'forged-client',
    'x-forwarded-scopes': 'admin:all',
    'x-forwarded-issuer': 'https://evil.example.com',
    'x-forwarded-roles': 'admin',
    'x-groups': 'admin',
    'x-user': 'admin',
    'x-client': 'forged',
    'x-scopes': 'admin:all',
    'x-issuer': 'https://evil.example.com',
    'x-email': 'ceo@example.com',
    'x-roles': 'admin',
    'x-unrelated': 'kept',
  };
}

/** Set by the gateway on every forwarded request (client IP from the socket, proto and host from publicUrl). */
const FORWARDING = {
  'x-forwarded-for': '192.0.2.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'gw.example.com',
};

const UNTOUCHED = {
  host: 'gw.example.com',
  accept: 'application/json, text/event-stream',
  'content-type': 'application/json',
  'mcp-session-id': 'sess-1',
  'mcp-protocol-version': '2025-06-18',
  cookie: 'a=b',
  'x-unrelated': 'kept',
};

t.test('default identity headers: credential and forged identity removed, verified identity set', async (t) => {
  const rewrite = compileRequestHeaders(route(), 'https://gw.example.com');
  const h = forgedRequest();
  rewrite(h, principal(), '192.0.2.7');
  t.strictSame(h, {
    ...UNTOUCHED,
    ...FORWARDING,
    'x-user': 'admin',
    'x-client': 'forged',
    'x-scopes': 'admin:all',
    'x-issuer': 'https://evil.example.com',
    'x-email': 'ceo@example.com',
    'x-roles': 'admin',
    'x-groups': 'admin',
    'x-forwarded-user': 'user-1',
    'x-forwarded-client-id': 'client-1',
    'x-forwarded-scopes': 'mcp:tools mcp:read',
    'x-forwarded-issuer': 'https://as.example.com',
  });
});

t.test('renamed identity headers: default names are stripped too, claim headers set from claims', async (t) => {
  const rewrite = compileRequestHeaders(route({
    identityHeaders: { subject: 'X-User', clientId: 'X-Client', scopes: 'X-Scopes', issuer: 'X-Issuer', roles: 'X-Groups' },
    claimHeaders: [
      ['X-Email', ['email']],
      ['X-Roles', ['realm_access', 'roles']],
      ['X-Age', ['age']],
      ['X-Zero', ['zero']],
      ['X-Admin', ['admin']],
      ['X-False', ['no']],
      ['X-Numbers', ['nums']],
      ['X-Empty-List', ['emptyList']],
      ['X-Deep', ['a', 'b', 'c']],
    ],
  }), 'https://gw.example.com');
  const h = forgedRequest();
  rewrite(h, principal({
    claims: {
      email: 'u@example.com',
      realm_access: { roles: ['r1', 'r2'] },
      age: 42,
      zero: 0,
      admin: true,
      no: false,
      nums: [1, 2.5],
      emptyList: [],
      a: { b: { c: 'deep' } },
    },
  }), '192.0.2.7');
  t.strictSame(h, {
    ...UNTOUCHED,
    ...FORWARDING,
    'x-user': 'user-1',
    'x-client': 'client-1',
    'x-scopes': 'mcp:tools mcp:read',
    'x-issuer': 'https://as.example.com',
    'x-email': 'u@example.com',
    'x-roles': 'r1 r2',
    'x-age': '42',
    'x-zero': '0',
    'x-admin': 'true',
    'x-false': 'false',
    'x-numbers': '1 2.5',
    'x-empty-list': '',
    'x-deep': 'deep',
  });
  for (const name of ['x-forwarded-user', 'x-forwarded-client-id', 'x-forwarded-scopes', 'x-forwarded-issuer', 'authorization', 'proxy-authorization']) {
    t.notOk(name in h, `${name} removed`);
  }
});

t.test('claim values that cannot be header values are omitted, never forwarded from the client', async (t) => {
  const rows: Array<{ name: string, claims: Record<string, unknown>, path: string[] }> = [
    { name: 'missing claim', claims: {}, path: ['email'] },
    { name: 'CR LF', claims: { v: 'a\r\nX-Injected: 1' }, path: ['v'] },
    { name: 'tab', claims: { v: 'a\tb' }, path: ['v'] },
    { name: 'NUL', claims: { v: 'a\u0000' }, path: ['v'] },
    { name: 'DEL', claims: { v: 'a\u007f' }, path: ['v'] },
    { name: 'non-ASCII', claims: { v: 'café' }, path: ['v'] },
    { name: 'emoji in a list', claims: { v: ['ok', '😀'] }, path: ['v'] },
    { name: 'object', claims: { v: { a: 1 } }, path: ['v'] },
    { name: 'null', claims: { v: null }, path: ['v'] },
    { name: 'list with an object', claims: { v: ['a', { b: 1 }] }, path: ['v'] },
    { name: 'list with a boolean', claims: { v: ['a', true] }, path: ['v'] },
    { name: 'nested list of lists', claims: { v: [['a']] }, path: ['v'] },
    { name: 'path through a string', claims: { v: 'abc' }, path: ['v', 'length'] },
    { name: 'path through an array', claims: { v: ['a', 'b'] }, path: ['v', '0'] },
    { name: 'path through null', claims: { v: null }, path: ['v', 'x'] },
    { name: 'missing nested claim', claims: { realm_access: {} }, path: ['realm_access', 'roles'] },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const rewrite = compileRequestHeaders(route({ claimHeaders: [['X-Claim', row.path]] }), 'https://gw.example.com');
      const h: HeaderBag = { 'x-claim': 'forged-by-client', accept: '*/*' };
      rewrite(h, principal({ claims: row.claims }), '192.0.2.7');
      t.notOk('x-claim' in h, 'header absent: neither the claim nor the forged value');
      t.equal(h.accept, '*/*');
      t.equal(h['x-forwarded-user'], 'user-1');
    });
  }
});

t.test('principal without a client id: the header is removed, not set', async (t) => {
  const rewrite = compileRequestHeaders(route(), 'https://gw.example.com');
  const h: HeaderBag = { 'x-forwarded-client-id': 'forged' };
  rewrite(h, principal({ clientId: undefined }), '192.0.2.7');
  t.notOk('x-forwarded-client-id' in h);
  t.strictSame(h, {
    ...FORWARDING,
    'x-forwarded-user': 'user-1',
    'x-forwarded-scopes': 'mcp:tools mcp:read',
    'x-forwarded-issuer': 'https://as.example.com',
  });
});

t.test('principal without scopes: the scopes header is empty', async (t) => {
  const rewrite = compileRequestHeaders(route(), 'https://gw.example.com');
  const h: HeaderBag = { 'x-forwarded-scopes': 'admin' };
  rewrite(h, principal({ scopes: new Set() }), '192.0.2.7');
  t.equal(h['x-forwarded-scopes'], '');
});

t.test('a compiled rewriter is reusable across requests', async (t) => {
  const rewrite = compileRequestHeaders(route({ claimHeaders: [['X-Email', ['email']]] }), 'https://gw.example.com');
  const h1: HeaderBag = {};
  rewrite(h1, principal({ subject: 'one', claims: { email: 'one@example.com' } }), undefined);
  const h2: HeaderBag = {};
  rewrite(h2, principal({ subject: 'two', claims: {} }), undefined);
  t.equal(h1['x-forwarded-user'], 'one');
  t.equal(h1['x-email'], 'one@example.com');
  t.equal(h2['x-forwarded-user'], 'two');
  t.notOk('x-email' in h2, 'no leak from the previous request');
});

t.test('identityRepresentable', async (t) => {
  const rows: Array<{ name: string, p: Partial<Principal>, ok: boolean }> = [
    { name: 'plain ASCII', p: {}, ok: true },
    { name: 'spaces and punctuation in subject', p: { subject: 'auth0|abc def@x' }, ok: true },
    { name: 'no client id', p: { clientId: undefined }, ok: true },
    { name: 'empty scope string', p: { scopes: new Set() }, ok: true },
    { name: 'non-ASCII subject', p: { subject: 'josé' }, ok: false },
    { name: 'CR LF in subject', p: { subject: 'a\r\nX-Admin: 1' }, ok: false },
    { name: 'tab in subject', p: { subject: 'a\tb' }, ok: false },
    { name: 'NUL in client id', p: { clientId: 'c\u0000' }, ok: false },
    { name: 'DEL in client id', p: { clientId: 'c\u007f' }, ok: false },
    { name: 'non-ASCII scope', p: { scopes: new Set(['ok', 'naïve']) }, ok: false },
  ];
  for (const row of rows) t.equal(identityRepresentable(principal(row.p)), row.ok, row.name);
});

t.test('cleanResponseHeaders', async (t) => {
  const HOP = {
    connection: 'keep-alive, x-private',
    'keep-alive': 'timeout=5',
    'proxy-connection': 'keep-alive',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    te: 'trailers',
    trailer: 'x-checksum',
    'proxy-authenticate': 'Basic',
  };
  const rows: Array<{ name: string, input: HeaderBag, expected: HeaderBag, sse: boolean }> = [
    {
      name: 'JSON: hop-by-hop removed, the rest untouched',
      input: { ...HOP, 'content-type': 'application/json', 'content-length': '42', 'mcp-session-id': 's1', 'www-authenticate': 'Bearer' },
      expected: { 'content-type': 'application/json', 'content-length': '42', 'mcp-session-id': 's1', 'www-authenticate': 'Bearer' },
      sse: false,
    },
    {
      name: 'SSE: unbuffered, not cached or transformed, no content-length',
      input: { ...HOP, 'content-type': 'text/event-stream', 'content-length': '100', 'mcp-session-id': 's1' },
      expected: { 'content-type': 'text/event-stream', 'mcp-session-id': 's1', 'x-accel-buffering': 'no', 'cache-control': 'no-cache, no-transform' },
      sse: true,
    },
    {
      name: 'SSE with parameters and upper case',
      input: { 'content-type': 'Text/Event-Stream; charset=utf-8' },
      expected: { 'content-type': 'Text/Event-Stream; charset=utf-8', 'x-accel-buffering': 'no', 'cache-control': 'no-cache, no-transform' },
      sse: true,
    },
    {
      name: 'SSE keeps an upstream cache-control',
      input: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' },
      expected: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
      sse: true,
    },
    {
      name: 'no content-type',
      input: { 'content-length': '0', connection: 'close' },
      expected: { 'content-length': '0' },
      sse: false,
    },
    {
      name: 'text/plain is not SSE',
      input: { 'content-type': 'text/plain', 'content-length': '3' },
      expected: { 'content-type': 'text/plain', 'content-length': '3' },
      sse: false,
    },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const h = { ...row.input };
      t.strictSame(rewriteResponseHeaders(h), { sse: row.sse });
      t.strictSame(h, row.expected);
    });
  }
});

t.test('regression: response fields named in Connection are removed (RFC 9110 §7.6.1 MUST)', async (t) => {
  const h: HeaderBag = { connection: 'close, X-Upstream-Hop', 'x-upstream-hop': 'secret-hop-value', 'content-type': 'application/json' };
  rewriteResponseHeaders(h);
  t.notOk('connection' in h, 'Connection itself is removed');
  t.notOk('x-upstream-hop' in h, 'the connection-option it names is removed too');
});

t.test('regression: hop-by-hop, Expect and client-chosen forwarding headers are not forwarded', async (t) => {
  const rewrite = compileRequestHeaders(route(), 'http://127.0.0.1:8080');
  const h: HeaderBag = {
    te: 'trailers', trailer: 'x', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', upgrade: 'websocket', expect: '100-continue',
    forwarded: 'for=6.6.6.6', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example.com', 'x-forwarded-proto': 'https', 'x-real-ip': '6.6.6.6',
  };
  rewrite(h, principal(), '127.0.0.1');
  for (const name of ['te', 'trailer', 'keep-alive', 'proxy-connection', 'upgrade', 'expect', 'forwarded', 'x-real-ip']) t.equal(h[name], undefined, `${name} removed`);
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the peer address, not the client claim');
  t.equal(h['x-forwarded-host'], '127.0.0.1:8080');
  t.equal(h['x-forwarded-proto'], 'http');
});

t.test('cleanResponseHeaders: names are lowercased, extra headers added only when absent', async (t) => {
  const { headers } = cleanResponseHeaders(['Content-Type', 'application/json', 'X-Custom', 'up'], ['x-custom', 'gw', 'access-control-expose-headers', 'WWW-Authenticate']);
  t.strictSame(headers, ['content-type', 'application/json', 'x-custom', 'up', 'access-control-expose-headers', 'WWW-Authenticate']);
  // CORS is the gateway's: the upstream's own Access-Control-* headers never reach the client.
  const cors = cleanResponseHeaders(['Access-Control-Allow-Origin', '*', 'Access-Control-Allow-Credentials', 'true', 'Access-Control-Expose-Headers', 'X-Secret'], ['access-control-allow-origin', 'https://app.example.com', 'vary', 'Origin']);
  t.strictSame(cors.headers, ['access-control-allow-origin', 'https://app.example.com', 'vary', 'Origin'], 'upstream CORS dropped, the gateway\'s set');
  // Vary: the gateway's field name is merged into the upstream's list, never duplicated, and `*` covers it.
  const vary = [
    { up: ['Vary', 'Accept-Encoding'], want: ['vary', 'Accept-Encoding, Origin'] },
    { up: ['Vary', 'origin'], want: ['vary', 'origin'] },
    { up: ['Vary', '*'], want: ['vary', '*'] },
    { up: [], want: ['vary', 'Origin'] },
  ];
  for (const row of vary) t.strictSame(cleanResponseHeaders(row.up, ['vary', 'Origin']).headers, row.want, `Vary ${JSON.stringify(row.up)}`);
  const fromBuffers = cleanResponseHeaders([Buffer.from('X-A'), Buffer.from('1')]);
  t.strictSame(fromBuffers.headers, ['x-a', '1'], 'undici raw Buffers are accepted');
});

t.test('roles: sent under the roles name only when the principal has some; forged ones never pass', async (t) => {
  const rewrite = compileRequestHeaders(route(), 'https://gw.example.com');
  const h = forgedRequest();
  rewrite(h, principal({ roles: new Set(['editor', 'viewer']), roleString: 'editor viewer' }), '192.0.2.7');
  t.equal(h['x-forwarded-roles'], 'editor viewer', 'verified roles replace the forged value');
  const none = forgedRequest();
  rewrite(none, principal(), '192.0.2.7');
  t.equal(none['x-forwarded-roles'], undefined, 'no roles: the forged header is removed and nothing is set');
  const renamed = compileRequestHeaders(route({ identityHeaders: { ...DEFAULT_NAMES, roles: 'X-Groups' } }), 'https://gw.example.com');
  const r = forgedRequest();
  renamed(r, principal({ roles: new Set(['editor']), roleString: 'editor' }), '192.0.2.7');
  t.equal(r['x-groups'], 'editor');
  t.equal(r['x-forwarded-roles'], undefined, 'the default name is stripped too');
});
