/**
 * Proves the test helpers work with real components: the oidc-provider AS,
 * the static issuer, the SDK-built upstreams and server-everything.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import t from 'tap';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

import { startAuthServer } from '../helpers/as.js';
import { freePort, waitForPort } from '../helpers/net.js';
import { MemoryOAuthProvider, runOAuthFlow } from '../helpers/oauth-client.js';
import { hs256WithPublicKey, startStaticIssuer, unsignedJwt } from '../helpers/static-issuer.js';
import {
  startEverything,
  startLegacySseUpstream,
  startStatefulUpstream,
  startStatelessUpstream,
  type TestUpstream,
} from '../helpers/upstream.js';

async function discover(issuerOrigin: string): Promise<Record<string, string>> {
  const res = await fetch(`${issuerOrigin}/.well-known/oauth-authorization-server`);
  if (!res.ok) throw new Error(`discovery failed: ${res.status}`);
  return (await res.json()) as Record<string, string>;
}

/** Text of the first content item of a tool result. */
function firstText(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content;
  const first = content?.[0];
  if (first?.type !== 'text' || typeof first.text !== 'string') throw new Error('no text content');
  return first.text;
}

t.test('oidc-provider AS', async (t) => {
  const as = await startAuthServer();
  t.teardown(() => as.close());
  t.notOk(as.issuer.endsWith('/'), 'issuer has no trailing slash');

  const resource = 'http://127.0.0.1:1/mcp';
  as.registerResource({ url: resource, scope: 'mcp:tools mcp:resources' });
  for (const alg of ['RS256', 'PS256', 'EdDSA'] as const) {
    as.registerResource({ url: `${resource}-${alg}`, scope: 'mcp:tools', alg });
  }
  as.registerResource({ url: `${resource}-opaque`, scope: 'mcp:tools', format: 'opaque' });

  const meta = await discover(as.issuer);
  t.equal(meta.issuer, as.issuer);
  const jwksUri = meta.jwks_uri;
  if (!jwksUri) throw new Error('no jwks_uri');
  const jwks = createRemoteJWKSet(new URL(jwksUri));

  await t.test('client_credentials JWT for the default resource', async (t) => {
    const token = await as.clientCredentialsToken();
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: as.issuer,
      audience: resource,
      typ: 'at+jwt',
    });
    t.equal(protectedHeader.typ, 'at+jwt');
    t.equal(protectedHeader.alg, 'ES256');
    t.type(protectedHeader.kid, 'string');
    t.equal(payload.aud, resource);
    t.equal(payload.iss, as.issuer);
    t.equal(payload.sub, as.clients.m2m.id, 'client_credentials sub is the client_id');
    t.equal(payload.client_id, as.clients.m2m.id);
    t.ok(String(payload.scope).split(' ').includes('mcp:tools'));
    t.type(payload.exp, 'number');
    t.type(payload.jti, 'string');
    t.equal(payload.nbf, undefined, 'oidc-provider sets no nbf');
  });

  await t.test('each signing alg verifies against the JWKS', async (t) => {
    for (const alg of ['RS256', 'PS256', 'EdDSA'] as const) {
      const token = await as.clientCredentialsToken({ resource: `${resource}-${alg}` });
      const { protectedHeader } = await jwtVerify(token, jwks, { issuer: as.issuer, audience: `${resource}-${alg}` });
      t.equal(protectedHeader.alg, alg);
    }
  });

  await t.test('unknown resource and bad secret are rejected', async (t) => {
    await t.rejects(as.clientCredentialsToken({ resource: 'http://127.0.0.1:1/other' }), /400 .*invalid_target/);
    await t.rejects(as.clientCredentialsToken({ clientSecret: 'wrong' }), /401 .*invalid_client/);
  });

  await t.test('opaque resource token is introspectable', async (t) => {
    const token = await as.clientCredentialsToken({ resource: `${resource}-opaque` });
    t.equal(token.split('.').length, 1, 'not a JWT');
    const basic = Buffer.from(`${as.clients.m2m.id}:${as.clients.m2m.secret}`).toString('base64');
    const res = await fetch(meta.introspection_endpoint ?? '', {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    });
    t.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(body.active, true);
    t.equal(body.aud, `${resource}-opaque`);
    t.equal(body.scope, 'mcp:tools');
    t.equal(body.client_id, as.clients.m2m.id);
  });

  await t.test('SDK auth(): PRM discovery, DCR, PKCE, resource, consent, code, refresh', async (t) => {
    // Minimal protected resource: only the PRM document (no gateway yet).
    let resourceUrl = '';
    const prm = createServer((req, res) => {
      if (req.url === '/.well-known/oauth-protected-resource/mcp') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ resource: resourceUrl, authorization_servers: [as.issuer], scopes_supported: ['mcp:tools'] }));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => prm.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => prm.close(() => resolve())));
    resourceUrl = `http://127.0.0.1:${(prm.address() as AddressInfo).port}/mcp`;
    as.registerResource({ url: resourceUrl, scope: 'mcp:tools', alg: 'RS256' });

    const provider = new MemoryOAuthProvider();
    const tokens = await runOAuthFlow(provider, resourceUrl);
    const info = provider.clientInformation();
    t.type(info?.client_id, 'string', 'registered through DCR');
    t.notOk(info && 'client_secret' in info && info.client_secret, 'public client, no secret');
    const authUrl = provider.authorizationUrls[0];
    t.equal(authUrl?.searchParams.get('code_challenge_method'), 'S256');
    t.equal(authUrl?.searchParams.get('resource'), resourceUrl);

    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: as.issuer,
      audience: resourceUrl,
      typ: 'at+jwt',
    });
    t.equal(protectedHeader.alg, 'RS256');
    t.equal(payload.aud, resourceUrl);
    t.equal(payload.sub, 'alice');
    t.equal(payload.client_id, info?.client_id);
    t.ok(String(payload.scope).split(' ').includes('mcp:tools'), `scope ${String(payload.scope)}`);

    // offline_access: the SDK adds prompt=consent, gets a refresh token, and refreshes.
    const p2 = new MemoryOAuthProvider({ user: 'bob' });
    const first = await runOAuthFlow(p2, resourceUrl, { scope: 'mcp:tools offline_access' });
    t.type(first.refresh_token, 'string', 'refresh token issued');
    t.equal(p2.authorizationUrls[0]?.searchParams.get('prompt'), 'consent');
    t.equal(await runOAuthFlow(p2, resourceUrl), p2.tokens(), 'second auth() completes without a redirect');
    t.equal(p2.authorizationUrls.length, 1, 'refreshed, not re-authorized');
    const refreshed = p2.tokens();
    t.not(refreshed?.access_token, first.access_token);
    const claims = decodeJwt(refreshed?.access_token ?? '');
    t.equal(claims.aud, resourceUrl);
    t.equal(claims.sub, 'bob');
  });
});

t.test('static issuer', async (t) => {
  const si = await startStaticIssuer({ issuerPath: '/realms/mcp', failFirst: 2 });
  t.teardown(() => si.close());
  t.equal(si.issuer, `${si.url}/realms/mcp`);

  await t.test('failFirst, then RFC 8414 and OIDC discovery', async (t) => {
    const inserted = `${si.url}/.well-known/oauth-authorization-server/realms/mcp`;
    t.equal((await fetch(inserted)).status, 503);
    t.equal((await fetch(inserted)).status, 503);
    const res = await fetch(inserted);
    t.equal(res.status, 200);
    const meta = (await res.json()) as Record<string, unknown>;
    t.equal(meta.issuer, si.issuer);
    t.equal(meta.jwks_uri, si.jwksUri);
    const oidc = await fetch(`${si.issuer}/.well-known/openid-configuration`);
    t.equal(oidc.status, 200);
    t.equal(((await oidc.json()) as Record<string, unknown>).issuer, si.issuer);
    t.equal(si.metadataFetches, 4);
  });

  await t.test('sign, verify, rotate', async (t) => {
    const claims = si.claims({ aud: 'http://127.0.0.1/mcp' });
    const token = await si.sign(claims);
    const jwks = createRemoteJWKSet(new URL(si.jwksUri));
    const { protectedHeader, payload } = await jwtVerify(token, jwks, { issuer: si.issuer, audience: 'http://127.0.0.1/mcp' });
    t.equal(protectedHeader.alg, 'RS256');
    t.equal(protectedHeader.typ, 'at+jwt');
    t.equal(protectedHeader.kid, si.publicJwk().kid);
    t.equal(payload.sub, 'user-1');
    t.ok(si.jwksFetches >= 1);

    const oldKid = si.publicJwk().kid;
    await si.rotate({ alg: 'ES256' });
    const newKid = si.publicJwk().kid;
    t.not(newKid, oldKid);
    const kids = si.jwks().keys.map((k) => k.kid);
    t.same(kids, [oldKid, newKid], 'new key published, old key kept');
    const served = (await (await fetch(si.jwksUri)).json()) as { keys: { kid?: string }[] };
    t.same(served.keys.map((k) => k.kid), kids);
    const rotated = await si.sign(claims);
    t.equal(decodeProtectedHeader(rotated).kid, newKid);
    // A fresh JWKS set: the cached one would only refetch after its cooldown.
    await jwtVerify(rotated, createRemoteJWKSet(new URL(si.jwksUri)));
    t.pass('token signed with the rotated key verifies');
  });

  await t.test('negative tokens fail verification', async (t) => {
    const jwks = createRemoteJWKSet(new URL(si.jwksUri));
    const claims = si.claims();
    await t.rejects(jwtVerify(await si.sign(claims, { key: 'other' }), jwks), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    const none = unsignedJwt(claims);
    t.equal(decodeProtectedHeader(none).alg, 'none');
    await t.rejects(jwtVerify(none, jwks));
    const confused = await hs256WithPublicKey(claims, si.publicJwk());
    t.equal(decodeProtectedHeader(confused).alg, 'HS256');
    t.equal(decodeProtectedHeader(confused).kid, si.publicJwk().kid);
    await t.rejects(jwtVerify(confused, jwks));
    const noTyp = await si.sign(claims, { typ: null, kid: null });
    t.same(Object.keys(decodeProtectedHeader(noTyp)), ['alg']);
  });

  await t.test('hang and omitKid', async (t) => {
    si.hang.metadata = true;
    await t.rejects(
      fetch(`${si.issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(150) }),
      { name: 'TimeoutError' },
    );
    si.hang.metadata = false;

    const bare = await startStaticIssuer({ alg: 'EdDSA', omitKid: true });
    t.teardown(() => bare.close());
    const token = await bare.sign(bare.claims());
    t.equal(decodeProtectedHeader(token).kid, undefined);
    t.equal(bare.jwks().keys[0]?.kid, undefined);
    await jwtVerify(token, createRemoteJWKSet(new URL(bare.jwksUri)), { issuer: bare.issuer });
    t.pass('kid-less EdDSA token verifies against a single-key JWKS');
  });
});

interface UpstreamCase {
  name: string;
  start: () => Promise<TestUpstream>;
  transport: (origin: string, headers: Record<string, string>) => Transport;
  jsonResponse?: boolean;
}

const streamable = (path: string) => (origin: string, headers: Record<string, string>) =>
  new StreamableHTTPClientTransport(new URL(`${origin}${path}`), { requestInit: { headers } });

const upstreamCases: UpstreamCase[] = [
  { name: 'stateful streamable HTTP', start: () => startStatefulUpstream(), transport: streamable('/mcp') },
  { name: 'stateless streamable HTTP (SSE)', start: () => startStatelessUpstream(), transport: streamable('/mcp') },
  {
    name: 'stateless streamable HTTP (JSON)',
    start: () => startStatelessUpstream({ path: '/api/mcp', jsonResponse: true }),
    transport: streamable('/api/mcp'),
    jsonResponse: true,
  },
  {
    name: 'legacy SSE under a prefix',
    start: () => startLegacySseUpstream({ prefix: '/legacy' }),
    transport: (origin, headers) => new SSEClientTransport(new URL(`${origin}/legacy/sse`), { requestInit: { headers } }),
  },
];

for (const c of upstreamCases) {
  t.test(`SDK upstream: ${c.name}`, async (t) => {
    const up = await c.start();
    const client = new Client({ name: 'helpers-test', version: '1.0.0' });
    t.teardown(async () => {
      await client.close();
      await up.close();
    });
    await client.connect(c.transport(up.origin, { 'x-test-marker': 'hello' }));

    const { tools } = await client.listTools();
    t.same(tools.map((x) => x.name).sort(), ['echo', 'slow_progress', 'whoami']);
    t.equal(firstText(await client.callTool({ name: 'echo', arguments: { text: 'hi there' } })), 'hi there');

    const seen = JSON.parse(firstText(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
    t.equal(seen['x-test-marker'], 'hello', 'whoami reports the request headers');
    t.match(String(seen.host), /^127\.0\.0\.1:\d+$/);

    const progress: number[] = [];
    const result = await client.callTool({ name: 'slow_progress', arguments: { steps: 3, intervalMs: 20 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    t.equal(firstText(result), 'done');
    if (c.jsonResponse) {
      t.same(progress, [], 'JSON responses cannot carry progress notifications');
    } else {
      t.same(progress, [1, 2, 3], 'progress notifications received');
    }

    t.ok(up.requests.length >= 4, 'requests recorded');
    t.ok(up.requests.every((r) => r.headers['x-test-marker'] === 'hello'));

    if (client.transport instanceof StreamableHTTPClientTransport && client.transport.sessionId) {
      await client.transport.terminateSession();
      t.ok(up.requests.some((r) => r.method === 'DELETE'), 'DELETE reached the upstream');
    }
  });
}

t.test('plain HTTP routes on SDK upstreams', async (t) => {
  const up = await startStatelessUpstream();
  t.teardown(() => up.close());

  const started = Date.now();
  const ticks = await fetch(`${up.origin}/ticks?n=3&interval=50`);
  t.equal(ticks.headers.get('content-type'), 'text/event-stream');
  t.equal(await ticks.text(), 'data: 0\n\ndata: 1\n\ndata: 2\n\n');
  t.ok(Date.now() - started >= 90, 'ticks are spaced');

  const status = await fetch(`${up.origin}/status/418`);
  t.equal(status.status, 418);
  t.equal(status.headers.get('mcp-session-id'), 'test-session');
  t.same(await status.json(), { status: 418 });

  const headers = await fetch(`${up.origin}/headers`, {
    method: 'POST',
    headers: { 'x-probe': '1', 'content-type': 'application/json' },
    body: '{}',
  });
  t.equal(((await headers.json()) as Record<string, string>)['x-probe'], '1');

  await t.rejects(fetch(`${up.origin}/hang`, { signal: AbortSignal.timeout(100) }), { name: 'TimeoutError' });
  t.ok(up.requests.some((r) => r.url === '/hang'));

  // close() must not wait for a request that is still hanging.
  const pending = fetch(`${up.origin}/hang`, { method: 'POST' }).catch((err: unknown) => err);
  await new Promise((r) => setTimeout(r, 50));
  await up.close();
  t.type(await pending, Error, 'hanging request is cut by close()');
});

t.test('net helpers', async (t) => {
  const port = await freePort();
  t.ok(port > 0);
  await t.rejects(waitForPort(port, 200), /nothing listening/);
});

t.test('server-everything', async (t) => {
  // Both at once: their startup dominates this file's runtime.
  const [http, sse] = await Promise.all([startEverything('streamableHttp'), startEverything('sse')]);
  t.teardown(() => Promise.all([http.close(), sse.close()]));

  const cases: [string, Transport][] = [
    ['streamableHttp', new StreamableHTTPClientTransport(new URL(`${http.origin}/mcp`))],
    ['sse', new SSEClientTransport(new URL(`${sse.origin}/sse`))],
  ];
  for (const [name, transport] of cases) {
    const client = new Client({ name: 'helpers-test', version: '1.0.0' });
    await client.connect(transport);
    const { tools } = await client.listTools();
    t.ok(tools.length > 0, `${name}: ${tools.length} tools`);
    t.ok(tools.some((x) => x.name === 'echo'), `${name}: has echo`);
    await client.close();
  }
});
