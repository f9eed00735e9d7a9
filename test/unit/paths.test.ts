/**
 * Request-path safety: anything a later hop could normalise to another path
 * is refused before proxying.
 */
import t from 'tap';

import { checkPath, splitUrl, type PathProblem } from '../../src/proxy/paths.js';

const rows: Array<[string, PathProblem]> = [
  // Safe
  ['/mcp', undefined],
  ['/mcp/', undefined],
  ['/mcp/sse', undefined],
  ['/mcp/messages', undefined],
  ['/mcp/a.b', undefined],
  ['/mcp/a..b', undefined],
  ['/mcp/...x', undefined],
  ['/mcp/...', undefined],
  ['/mcp/.well-known-ish', undefined],
  ['/mcp/.hidden', undefined],
  ['/mcp/x.', undefined],
  ['/mcp/%20space', undefined],
  ['/mcp/caf%C3%A9', undefined],
  ['/mcp/%2e%2e%2e', undefined],
  ['/mcp/a%2Eb', undefined],
  ['/mcp//double', undefined],
  // Dot segments, raw
  ['/mcp/../admin', 'traversal'],
  ['/mcp/./x', 'traversal'],
  ['/mcp/..', 'traversal'],
  ['/mcp/.', 'traversal'],
  ['/mcp/x/../../admin', 'traversal'],
  ['/..', 'traversal'],
  // Dot segments, encoded
  ['/mcp/%2e%2e/admin', 'traversal'],
  ['/mcp/%2E%2E/admin', 'traversal'],
  ['/mcp/%2e%2E/admin', 'traversal'],
  ['/mcp/.%2e/x', 'traversal'],
  ['/mcp/%2e./x', 'traversal'],
  ['/mcp/%2e/x', 'traversal'],
  ['/mcp/%2e', 'traversal'],
  // Double-encoded
  ['/mcp/%252e%252e/x', 'traversal'],
  ['/mcp/%252E%252E/x', 'traversal'],
  ['/mcp/.%252e/x', 'traversal'],
  ['/mcp/%252e/x', 'traversal'],
  ['/mcp/a%252fb', 'traversal'],
  // Encoded separators and NUL
  ['/mcp/a%2fb', 'traversal'],
  ['/mcp/a%2Fb', 'traversal'],
  ['/mcp/..%2fadmin', 'traversal'],
  ['/mcp/%2e%2e%2fadmin', 'traversal'],
  ['/mcp/a%5cb', 'traversal'],
  ['/mcp/a%5Cb', 'traversal'],
  ['/mcp/..%5cadmin', 'traversal'],
  ['/mcp\\..\\x', 'traversal'],
  ['/mcp/a\\b', 'traversal'],
  ['/mcp/%00', 'traversal'],
  ['/mcp/a%00.json', 'traversal'],
  ['/mcp/%2500', 'traversal'],
  // Path parameters on dot segments (servlet containers resolve `..;x` as `..`)
  ['/mcp/..;/admin', 'traversal'],
  ['/mcp/.;x=1/admin', 'traversal'],
  ['/mcp/%2e%2e;/admin', 'traversal'],
  ['/mcp/a;b', undefined],
  ['/mcp/..a;b', undefined],
  // Absolute-form and asterisk-form targets are not proxied
  ['http://evil.example.com/mcp', 'traversal'],
  ['https://a@b/mcp/x', 'traversal'],
  ['*', 'traversal'],
  // Bad percent-encoding
  ['/mcp/%zz', 'bad_encoding'],
  ['/mcp/%', 'bad_encoding'],
  ['/mcp/%2', 'bad_encoding'],
  ['/mcp/%C3', 'bad_encoding'],
  ['/mcp/%C0%AE%C0%AE/admin', 'bad_encoding'],
  ['/mcp/%FF', 'bad_encoding'],
  // Valid first decoding, invalid second: refused as traversal (conservative).
  ['/mcp/%25zz', 'traversal'],
];

for (const [path, expected] of rows) {
  t.test(`${path} → ${expected ?? 'safe'}`, async (t) => {
    t.equal(checkPath(path), expected);
  });
}

t.test('splitUrl', async (t) => {
  const rows: Array<[string, { path: string, query: string }]> = [
    ['/mcp', { path: '/mcp', query: '' }],
    ['/mcp?', { path: '/mcp', query: '' }],
    ['/mcp?sessionId=1', { path: '/mcp', query: 'sessionId=1' }],
    ['/mcp/messages?sessionId=1&x=2', { path: '/mcp/messages', query: 'sessionId=1&x=2' }],
    ['/mcp?a=1?b=2', { path: '/mcp', query: 'a=1?b=2' }],
    ['/mcp/%3F?x', { path: '/mcp/%3F', query: 'x' }],
    ['?x=1', { path: '', query: 'x=1' }],
    ['', { path: '', query: '' }],
  ];
  for (const [url, expected] of rows) t.strictSame(splitUrl(url), expected, JSON.stringify(url));
});

t.test('the query is never part of the checked path', async (t) => {
  const { path, query } = splitUrl('/mcp/messages?next=../admin&x=%zz');
  t.equal(checkPath(path), undefined);
  t.equal(query, 'next=../admin&x=%zz');
});
