/**
 * Bearer credential extraction (RFC 6750 §2.1, §3.1): header only, exactly one,
 * b64token syntax; a token in the query string is refused.
 */
import t from 'tap';

import { authorizationValues, extractCredential, type Credential } from '../../src/auth/bearer.js';
import { InvalidRequestError } from '../../src/errors.js';

type Outcome =
  | { kind: 'none' }
  | { kind: 'other_scheme' }
  | { kind: 'bearer', token: string }
  | { kind: 'invalid_request', description: string };

interface Row {
  name: string;
  authorization: string[];
  query?: string;
  expected: Outcome;
}

const EMPTY = 'The Bearer credential is empty';
const MANY = 'More than one Bearer token was sent';
const SYNTAX = 'The Bearer credential is not a valid token';
const TWO_HEADERS = 'More than one Authorization header was sent';
const IN_QUERY = 'Access tokens must be sent in the Authorization header, not in the query string';

const rows: Row[] = [
  { name: 'no header', authorization: [], expected: { kind: 'none' } },
  { name: 'empty header value', authorization: [''], expected: { kind: 'none' } },
  { name: 'whitespace-only header value', authorization: ['   '], expected: { kind: 'none' } },
  { name: 'Bearer abc', authorization: ['Bearer abc'], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'lower-case scheme', authorization: ['bearer abc'], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'upper-case scheme', authorization: ['BEARER abc'], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'mixed-case scheme', authorization: ['bEaReR abc'], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'surrounding whitespace is trimmed', authorization: ['  Bearer abc  '], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'several spaces after the scheme', authorization: ['Bearer   abc'], expected: { kind: 'bearer', token: 'abc' } },
  { name: 'JWT-shaped token', authorization: ['Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/'], expected: { kind: 'bearer', token: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/' } },
  { name: 'trailing = padding', authorization: ['Bearer abc=='], expected: { kind: 'bearer', token: 'abc==' } },
  { name: 'all b64token characters', authorization: ['Bearer AZaz09-._~+/='], expected: { kind: 'bearer', token: 'AZaz09-._~+/=' } },
  { name: '"Bearer" alone', authorization: ['Bearer'], expected: { kind: 'invalid_request', description: EMPTY } },
  { name: '"Bearer " (trailing space)', authorization: ['Bearer '], expected: { kind: 'invalid_request', description: EMPTY } },
  { name: '"bearer" alone, lower case', authorization: ['bearer'], expected: { kind: 'invalid_request', description: EMPTY } },
  { name: 'two tokens separated by a space', authorization: ['Bearer a b'], expected: { kind: 'invalid_request', description: MANY } },
  { name: 'two tokens separated by a comma', authorization: ['Bearer a,b'], expected: { kind: 'invalid_request', description: MANY } },
  { name: 'bearer followed by another credential', authorization: ['Bearer abc, Basic eDp5'], expected: { kind: 'invalid_request', description: MANY } },
  { name: '= padding in the middle', authorization: ['Bearer ab=c'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'only padding', authorization: ['Bearer =='], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'quoted token', authorization: ['Bearer "abc"'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'non-ASCII token', authorization: ['Bearer abcé'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'token with a semicolon', authorization: ['Bearer abc;def'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'token with a tab inside', authorization: ['Bearer abc\tdef'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'token with a NUL', authorization: ['Bearer abc\u0000'], expected: { kind: 'invalid_request', description: SYNTAX } },
  { name: 'Basic', authorization: ['Basic eDp5'], expected: { kind: 'other_scheme' } },
  { name: 'Digest', authorization: ['Digest x'], expected: { kind: 'other_scheme' } },
  { name: 'DPoP is another scheme', authorization: ['DPoP abc'], expected: { kind: 'other_scheme' } },
  { name: 'scheme glued to the token', authorization: ['Bearerabc'], expected: { kind: 'other_scheme' } },
  { name: 'tab instead of space after the scheme', authorization: ['Bearer\tabc'], expected: { kind: 'other_scheme' } },
  { name: 'two Authorization headers', authorization: ['Bearer tok-one', 'Bearer tok-two'], expected: { kind: 'invalid_request', description: TWO_HEADERS } },
  { name: 'two identical Authorization headers', authorization: ['Bearer tok-one', 'Bearer tok-one'], expected: { kind: 'invalid_request', description: TWO_HEADERS } },
  { name: 'Bearer and Basic headers', authorization: ['Bearer tok-one', 'Basic eDp5'], expected: { kind: 'invalid_request', description: TWO_HEADERS } },
  { name: 'an empty second header', authorization: ['Bearer tok-one', ''], expected: { kind: 'invalid_request', description: TWO_HEADERS } },
  // Query string
  { name: 'access_token in the query', authorization: [], query: 'access_token=x', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'access_token after other params', authorization: [], query: 'a=1&access_token=x', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'access_token with an Authorization header too', authorization: ['Bearer abc'], query: 'access_token=abc', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'access_token with two Authorization headers', authorization: ['Bearer tok-one', 'Bearer tok-two'], query: 'access_token=tok-three', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'percent-encoded underscore %5F', authorization: [], query: 'access%5Ftoken=x', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'percent-encoded underscore %5f', authorization: [], query: 'access%5ftoken=x', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'access_token without a value', authorization: [], query: 'access_token', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'access_token empty value then more', authorization: [], query: 'access_token&x=1', expected: { kind: 'invalid_request', description: IN_QUERY } },
  { name: 'my_access_token is another parameter', authorization: ['Bearer abc'], query: 'my_access_token=x', expected: { kind: 'bearer', token: 'abc' } },
  { name: 'access_tokenx is another parameter', authorization: ['Bearer abc'], query: 'access_tokenx=1', expected: { kind: 'bearer', token: 'abc' } },
  { name: 'access_token as a value', authorization: ['Bearer abc'], query: 'x=access_token', expected: { kind: 'bearer', token: 'abc' } },
  { name: 'sessionId query is fine', authorization: ['Bearer abc'], query: 'sessionId=123', expected: { kind: 'bearer', token: 'abc' } },
  { name: 'sessionId query, no header', authorization: [], query: 'sessionId=123', expected: { kind: 'none' } },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const run = (): Credential => extractCredential(row.authorization, row.query ?? '');
    const exp = row.expected;
    if (exp.kind === 'invalid_request') {
      let caught: unknown;
      try {
        run();
      } catch (err) {
        caught = err;
      }
      t.type(caught, InvalidRequestError);
      const e = caught as InvalidRequestError;
      t.equal(e.code, 'invalid_request');
      t.equal(e.status, 400);
      t.equal(e.publicDescription, exp.description);
      // The public text never quotes the credential or the query string.
      for (const value of [...row.authorization, row.query ?? '']) {
        const secret = value.replace(/^\s*bearer\s*/i, '').trim();
        if (secret.length >= 1) t.notOk(e.publicDescription.includes(secret), `description does not contain ${JSON.stringify(secret)}`);
        if (secret.length >= 1) t.notOk(e.message.includes(secret), `message does not contain ${JSON.stringify(secret)}`);
      }
    } else {
      t.strictSame(run(), exp);
    }
  });
}

t.test('returned credentials are fresh or frozen constants', async (t) => {
  const none = extractCredential([], '');
  const other = extractCredential(['Basic x'], '');
  t.ok(Object.isFrozen(none));
  t.ok(Object.isFrozen(other));
});

t.test('authorizationValues', async (t) => {
  const rows: Array<{ name: string, raw: string[], expected: string[] }> = [
    { name: 'none', raw: ['Host', 'x', 'Accept', '*/*'], expected: [] },
    { name: 'one', raw: ['Host', 'x', 'Authorization', 'Bearer a'], expected: ['Bearer a'] },
    { name: 'case-insensitive name', raw: ['authorization', 'Bearer a', 'AUTHORIZATION', 'Bearer b'], expected: ['Bearer a', 'Bearer b'] },
    { name: 'order kept, other headers skipped', raw: ['Authorization', '1', 'X', 'y', 'aUtHoRiZaTiOn', '2'], expected: ['1', '2'] },
    { name: 'values that look like names are not names', raw: ['X-Note', 'Authorization', 'Proxy-Authorization', 'Bearer p'], expected: [] },
    { name: 'similar names are not Authorization', raw: ['Authorizations', 'a', 'X-Authorization', 'b', 'Authorizatio', 'c'], expected: [] },
    { name: 'empty value is kept', raw: ['Authorization', ''], expected: [''] },
  ];
  for (const row of rows) t.strictSame(authorizationValues(row.raw), row.expected, row.name);

  // Two headers in rawHeaders → refused, even though Node's `headers` keeps only the first.
  let caught: unknown;
  try {
    extractCredential(authorizationValues(['Authorization', 'Bearer a', 'authorization', 'Bearer b']), '');
  } catch (err) {
    caught = err;
  }
  t.type(caught, InvalidRequestError);
  t.equal((caught as InvalidRequestError).publicDescription, TWO_HEADERS);
});

t.test('regression: a percent-encoded access_token parameter name is still refused', async (t) => {
  for (const query of ['%61ccess_token=x', 'a=1&access%5Ftoken=x', 'ACCESS_TOKEN=x&access_token=y', 'x=1&%61%63%63%65%73%73_token']) {
    t.throws(() => extractCredential([], query), InvalidRequestError, query)
  }
  for (const query of ['ACCESS_TOKEN=x', 'access_tokens=x', 'x=access_token', 'a=%zz']) {
    t.same(extractCredential([], query), { kind: 'none' }, `${query} is not a token parameter`)
  }
})
