/**
 * WWW-Authenticate challenges (RFC 6750 §3, RFC 9728 §5.1), checked with a
 * strict RFC 9110 auth-param parser and with the MCP SDK client's own parser.
 */
import t from 'tap';
import { extractResourceMetadataUrl, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';

import { bearerChallenge, quote, RouteChallenges } from '../../src/metadata/challenge.js';

const PRM = 'https://gw.example.com/.well-known/oauth-protected-resource/mcp';

/**
 * Strict parser for one challenge: `scheme 1*SP #( token "=" quoted-string )`.
 * Returns the scheme and the params in order (duplicates kept so they can be detected).
 */
function parseChallenge(header: string): { scheme: string, params: Array<[string, string]> } {
  const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?: (.*))?$/s.exec(header);
  if (m === null) throw new Error(`not a challenge: ${header}`);
  const params: Array<[string, string]> = [];
  let rest = m[2] ?? '';
  const PARAM = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)="((?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*)"(?:, (?=.)|$)/s;
  while (rest !== '') {
    const p = PARAM.exec(rest);
    if (p === null) throw new Error(`bad auth-param list at: ${rest}`);
    params.push([p[1]!, p[2]!.replace(/\\(.)/g, '$1')]);
    rest = rest.slice(p[0].length);
  }
  return { scheme: m[1]!, params };
}

/** What the MCP SDK client reads from the header (the real SDK function). */
function sdkRead(header: string): { resourceMetadataUrl?: string, scope?: string, error?: string, legacyResourceMetadataUrl?: string } {
  const res = new Response(null, { status: 401, headers: { 'WWW-Authenticate': header } });
  const p = extractWWWAuthenticateParams(res);
  const legacy = extractResourceMetadataUrl(res);
  const out: { resourceMetadataUrl?: string, scope?: string, error?: string, legacyResourceMetadataUrl?: string } = {};
  if (p.resourceMetadataUrl !== undefined) out.resourceMetadataUrl = p.resourceMetadataUrl.href;
  if (p.scope !== undefined) out.scope = p.scope;
  if (p.error !== undefined) out.error = p.error;
  if (legacy !== undefined) out.legacyResourceMetadataUrl = legacy.href;
  return out;
}

/** The pattern the SDK uses per field: name="value" or name=token. */
function sdkRegexField(header: string, field: string): string | undefined {
  const m = new RegExp(`${field}=(?:"([^"]+)"|([^\\s,]+))`).exec(header);
  return m === null ? undefined : (m[1] ?? m[2]);
}

t.test('quote', async (t) => {
  const rows: Array<[string, string, string]> = [
    ['plain', 'abc', '"abc"'],
    ['empty', '', '""'],
    ['double quote escaped', 'a"b', '"a\\"b"'],
    ['backslash escaped', 'a\\b', '"a\\\\b"'],
    ['backslash before quote', '\\"', '"\\\\\\""'],
    ['CR LF dropped (no header injection)', 'a\r\nWWW-Authenticate: Basic', '"aWWW-Authenticate: Basic"'],
    ['NUL, tab, DEL dropped', 'a\u0000b\tc\u007fd', '"abcd"'],
    ['all C0 controls dropped', Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + 'x', '"x"'],
    ['space and comma kept', 'a b, c', '"a b, c"'],
    ['URL kept verbatim', PRM, `"${PRM}"`],
  ];
  for (const [name, input, expected] of rows) {
    t.test(name, async (t) => {
      const q = quote(input);
      t.equal(q, expected);
      t.notMatch(q, /[\x00-\x1f\x7f]/, 'no control characters');
      // It parses back as a quoted-string to the input minus controls.
      const parsed = parseChallenge(`Bearer x=${q}`);
      t.strictSame(parsed.params, [['x', input.replace(/[\x00-\x1f\x7f]/g, '')]]);
    });
  }
});

t.test('bearerChallenge', async (t) => {
  const rows: Array<{ name: string, params: Parameters<typeof bearerChallenge>[0], expected: string }> = [
    { name: 'no params', params: {}, expected: 'Bearer' },
    { name: 'only resource_metadata', params: { resource_metadata: PRM }, expected: `Bearer resource_metadata="${PRM}"` },
    { name: 'empty scope omitted', params: { scope: '', resource_metadata: PRM }, expected: `Bearer resource_metadata="${PRM}"` },
    { name: 'scope only', params: { scope: 'a b' }, expected: 'Bearer scope="a b"' },
    {
      name: 'fixed order regardless of key order',
      params: { resource_metadata: PRM, scope: 'mcp:tools', error_description: 'd', error: 'invalid_token' },
      expected: `Bearer error="invalid_token", error_description="d", scope="mcp:tools", resource_metadata="${PRM}"`,
    },
    {
      name: 'quotes and backslashes in a description are escaped',
      params: { error: 'invalid_request', error_description: 'say "hi" \\ bye' },
      expected: 'Bearer error="invalid_request", error_description="say \\"hi\\" \\\\ bye"',
    },
    {
      name: 'control characters in a description are dropped',
      params: { error: 'invalid_token', error_description: 'line1\r\nSet-Cookie: x=1' },
      expected: 'Bearer error="invalid_token", error_description="line1Set-Cookie: x=1"',
    },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const h = bearerChallenge(row.params);
      t.equal(h, row.expected);
      const parsed = parseChallenge(h);
      t.equal(parsed.scheme, 'Bearer', 'scheme first');
      const names = parsed.params.map(([n]) => n);
      t.equal(new Set(names).size, names.length, 'each param at most once');
      t.notMatch(h, /[\r\n]/);
    });
  }
});

interface RouteRow {
  name: string;
  scopes: string[];
  header: (c: RouteChallenges) => string;
  expected: string;
  params: Array<[string, string]>;
  sdk: { resourceMetadataUrl?: string, scope?: string, error?: string, legacyResourceMetadataUrl?: string };
}

const routeRows: RouteRow[] = [
  {
    name: 'noToken, route with scopes: no error param (RFC 6750 §3.1)',
    scopes: ['mcp:tools', 'mcp:read'],
    header: (c) => c.noToken,
    expected: `Bearer scope="mcp:tools mcp:read", resource_metadata="${PRM}"`,
    params: [['scope', 'mcp:tools mcp:read'], ['resource_metadata', PRM]],
    sdk: { resourceMetadataUrl: PRM, scope: 'mcp:tools mcp:read', legacyResourceMetadataUrl: PRM },
  },
  {
    name: 'noToken, route without scopes: no scope param',
    scopes: [],
    header: (c) => c.noToken,
    expected: `Bearer resource_metadata="${PRM}"`,
    params: [['resource_metadata', PRM]],
    sdk: { resourceMetadataUrl: PRM, legacyResourceMetadataUrl: PRM },
  },
  {
    name: 'invalid_token',
    scopes: ['mcp:tools'],
    header: (c) => c.withError('invalid_token', 'The access token has expired'),
    expected: `Bearer error="invalid_token", error_description="The access token has expired", scope="mcp:tools", resource_metadata="${PRM}"`,
    params: [['error', 'invalid_token'], ['error_description', 'The access token has expired'], ['scope', 'mcp:tools'], ['resource_metadata', PRM]],
    sdk: { resourceMetadataUrl: PRM, scope: 'mcp:tools', error: 'invalid_token', legacyResourceMetadataUrl: PRM },
  },
  {
    name: 'invalid_request without route scopes',
    scopes: [],
    header: (c) => c.withError('invalid_request', 'More than one Authorization header was sent'),
    expected: `Bearer error="invalid_request", error_description="More than one Authorization header was sent", resource_metadata="${PRM}"`,
    params: [['error', 'invalid_request'], ['error_description', 'More than one Authorization header was sent'], ['resource_metadata', PRM]],
    sdk: { resourceMetadataUrl: PRM, error: 'invalid_request', legacyResourceMetadataUrl: PRM },
  },
  {
    name: 'insufficientScope lists every needed scope',
    scopes: ['mcp:tools'],
    header: (c) => c.insufficientScope(['mcp:tools', 'mcp:admin'], 'The access token lacks a scope this route requires'),
    expected: `Bearer error="insufficient_scope", error_description="The access token lacks a scope this route requires", scope="mcp:tools mcp:admin", resource_metadata="${PRM}"`,
    params: [['error', 'insufficient_scope'], ['error_description', 'The access token lacks a scope this route requires'], ['scope', 'mcp:tools mcp:admin'], ['resource_metadata', PRM]],
    sdk: { resourceMetadataUrl: PRM, scope: 'mcp:tools mcp:admin', error: 'insufficient_scope', legacyResourceMetadataUrl: PRM },
  },
];

for (const row of routeRows) {
  t.test(`RouteChallenges: ${row.name}`, async (t) => {
    const c = new RouteChallenges(PRM, row.scopes);
    const h = row.header(c);
    t.equal(h, row.expected, 'exact header');
    const parsed = parseChallenge(h);
    t.equal(parsed.scheme, 'Bearer', 'scheme first');
    t.strictSame(parsed.params, row.params, 'params, in order, each once');
    // The MCP SDK client's real parser reads what it needs from our header.
    t.strictSame(sdkRead(h), row.sdk, 'MCP SDK extractWWWAuthenticateParams / extractResourceMetadataUrl');
    t.equal(sdkRegexField(h, 'resource_metadata'), PRM, 'SDK field regex finds resource_metadata');
    t.equal(sdkRegexField(h, 'scope'), row.sdk.scope, 'SDK field regex finds the scope (or none)');
  });
}

t.test('RouteChallenges.withError is memoised per (error, description)', async (t) => {
  const c = new RouteChallenges(PRM, ['a']);
  const a1 = c.withError('invalid_token', 'x');
  const a2 = c.withError('invalid_token', 'x');
  const b = c.withError('invalid_request', 'x');
  const d = c.withError('invalid_token', 'y');
  t.equal(a1, a2);
  t.not(a1, b);
  t.not(a1, d);
  t.match(b, /^Bearer error="invalid_request", error_description="x"/);
  t.match(d, /^Bearer error="invalid_token", error_description="y"/);
});

t.test('route scopes in noToken follow the configured order', async (t) => {
  t.equal(new RouteChallenges(PRM, ['b', 'a']).noToken, `Bearer scope="b a", resource_metadata="${PRM}"`);
});
