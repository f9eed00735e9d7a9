/**
 * jose failure → public InvalidTokenError. Every error is produced by running
 * jose's own jwtVerify against real tokens; the mapping must name the right
 * reason and never leak jose's message. Then the verifier's own rules, run
 * against a static issuer: shared-secret (HS*) issuers and the HS/RS split,
 * tokens without `iss`, no-`aud` verification, and kid-less keys without `alg`.
 */
import t from 'tap';
import { base64url, CompactSign, createLocalJWKSet, errors as joseErrors, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWTPayload, type JWTVerifyOptions } from 'jose';

import { audienceVariants } from '../../src/auth/profiles.js';
import { IssuerVerifier, mapVerifyError, type VerifierLogger } from '../../src/auth/jwt.js';
import { issuerConfig } from '../fixtures/providers/providers.js';
import { hs256WithPublicKey, signWithSecret, startStaticIssuer } from '../helpers/static-issuer.js';
import { InvalidTokenError, TemporarilyUnavailableError, type InvalidTokenReason } from '../../src/errors.js';

const ISS = 'https://as.example.com';
const AUD = 'https://gw.example.com/mcp';
const now = (): number => Math.floor(Date.now() / 1000);

const es = await generateKeyPair('ES256');
const otherEs = await generateKeyPair('ES256');
const rsa = await generateKeyPair('RS256');
const publicJwk = await exportJWK(es.publicKey);

const BASE_OPTIONS: JWTVerifyOptions = {
  issuer: ISS,
  audience: [AUD],
  algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  clockTolerance: 60,
  requiredClaims: ['exp'],
};

function goodClaims(over: Record<string, unknown> = {}): JWTPayload {
  return { iss: ISS, aud: AUD, sub: 'user-1', exp: now() + 300, iat: now(), ...over };
}

async function sign(payload: JWTPayload, opts: { alg?: string, key?: CryptoKey, header?: Record<string, unknown> } = {}): Promise<string> {
  const alg = opts.alg ?? 'ES256';
  return await new SignJWT(payload).setProtectedHeader({ alg, typ: 'at+jwt', ...opts.header }).sign(opts.key ?? es.privateKey);
}

function unsigned(payload: JWTPayload, header: Record<string, unknown> = { alg: 'none' }): string {
  const enc = (o: unknown): string => base64url.encode(JSON.stringify(o));
  return `${enc(header)}.${enc(payload)}.`;
}

interface Row {
  name: string;
  token: () => Promise<string>;
  key?: () => CryptoKey | ReturnType<typeof createLocalJWKSet>;
  options?: JWTVerifyOptions;
  joseError: new (...args: never[]) => Error;
  reason: InvalidTokenReason;
}

const rows: Row[] = [
  { name: 'expired', token: async () => await sign(goodClaims({ exp: now() - 3600 })), joseError: joseErrors.JWTExpired, reason: 'expired' },
  { name: 'nbf in the future', token: async () => await sign(goodClaims({ nbf: now() + 3600 })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'not_yet_valid' },
  { name: 'wrong issuer', token: async () => await sign(goodClaims({ iss: 'https://evil.example.com' })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'wrong_issuer' },
  { name: 'issuer differs only by a trailing slash', token: async () => await sign(goodClaims({ iss: ISS + '/' })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'wrong_issuer' },
  { name: 'wrong audience', token: async () => await sign(goodClaims({ aud: 'https://other.example.com/mcp' })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'wrong_audience' },
  { name: 'audience list without ours', token: async () => await sign(goodClaims({ aud: ['a', 'b'] })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'wrong_audience' },
  { name: 'missing exp', token: async () => await sign(goodClaims({ exp: undefined })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'missing_claim' },
  { name: 'missing aud', token: async () => await sign(goodClaims({ aud: undefined })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'missing_claim' },
  { name: 'missing iss', token: async () => await sign(goodClaims({ iss: undefined })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'missing_claim' },
  { name: 'exp not a number', token: async () => await sign(goodClaims({ exp: 'tomorrow' })), joseError: joseErrors.JWTClaimValidationFailed, reason: 'invalid_claim' },
  {
    name: 'iat in the future (with maxTokenAge)',
    token: async () => await sign(goodClaims({ iat: now() + 3600 })),
    options: { ...BASE_OPTIONS, maxTokenAge: '1h' },
    joseError: joseErrors.JWTClaimValidationFailed,
    reason: 'issued_in_future',
  },
  {
    name: 'iat too old (with maxTokenAge) is a JWTExpired on iat',
    token: async () => await sign(goodClaims({ iat: now() - 7200 })),
    options: { ...BASE_OPTIONS, maxTokenAge: '1h' },
    joseError: joseErrors.JWTExpired,
    reason: 'invalid_claim',
  },
  { name: 'bad signature (another key)', token: async () => await sign(goodClaims(), { key: otherEs.privateKey }), joseError: joseErrors.JWSSignatureVerificationFailed, reason: 'bad_signature' },
  {
    name: 'tampered payload',
    token: async () => {
      const [h, , s] = (await sign(goodClaims())).split('.');
      return `${h}.${base64url.encode(JSON.stringify(goodClaims({ sub: 'admin' })))}.${s}`;
    },
    joseError: joseErrors.JWSSignatureVerificationFailed,
    reason: 'bad_signature',
  },
  {
    name: 'RS256 token, only ES256 allowed',
    token: async () => await sign(goodClaims(), { alg: 'RS256', key: rsa.privateKey }),
    key: () => rsa.publicKey,
    options: { ...BASE_OPTIONS, algorithms: ['ES256'] },
    joseError: joseErrors.JOSEAlgNotAllowed,
    reason: 'alg_not_allowed',
  },
  { name: 'alg none', token: async () => unsigned(goodClaims()), joseError: joseErrors.JOSEAlgNotAllowed, reason: 'alg_not_allowed' },
  { name: 'alg NONE (case variant)', token: async () => unsigned(goodClaims(), { alg: 'NONE' }), joseError: joseErrors.JOSEAlgNotAllowed, reason: 'alg_not_allowed' },
  {
    name: 'HS256 token (key confusion attempt)',
    token: async () => await sign(goodClaims(), { alg: 'HS256', key: new Uint8Array(32) as unknown as CryptoKey }),
    joseError: joseErrors.JOSEAlgNotAllowed,
    reason: 'alg_not_allowed',
  },
  {
    name: 'unknown kid in a JWKS',
    token: async () => await sign(goodClaims(), { header: { kid: 'not-published' } }),
    key: () => createLocalJWKSet({ keys: [{ ...publicJwk, kid: 'published', alg: 'ES256' }] }),
    joseError: joseErrors.JWKSNoMatchingKey,
    reason: 'unknown_key',
  },
  { name: 'not a JWT at all', token: async () => 'abc', joseError: joseErrors.JWSInvalid, reason: 'malformed' },
  { name: 'three garbage segments', token: async () => 'a.b.c', joseError: joseErrors.JWSInvalid, reason: 'malformed' },
  { name: 'empty string', token: async () => '', joseError: joseErrors.JWSInvalid, reason: 'malformed' },
  {
    name: 'payload is not a JSON object',
    token: async () => await new CompactSign(new TextEncoder().encode('[1,2,3]')).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey),
    joseError: joseErrors.JWTInvalid,
    reason: 'malformed',
  },
  {
    name: 'payload is not JSON',
    token: async () => await new CompactSign(new TextEncoder().encode('not json')).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey),
    joseError: joseErrors.JWTInvalid,
    reason: 'malformed',
  },
];


t.test('sanity: a good token verifies with the same options', async (t) => {
  const { payload } = await jwtVerify(await sign(goodClaims()), es.publicKey, BASE_OPTIONS);
  t.equal(payload.sub, 'user-1');
});

for (const row of rows) {
  t.test(row.name, async (t) => {
    const token = await row.token();
    let joseErr: unknown;
    try {
      const key = row.key?.() ?? es.publicKey;
      if (typeof key === 'function') await jwtVerify(token, key, row.options ?? BASE_OPTIONS);
      else await jwtVerify(token, key, row.options ?? BASE_OPTIONS);
    } catch (err) {
      joseErr = err;
    }
    t.type(joseErr, row.joseError, `jose throws ${row.joseError.name}`);
    const jose = joseErr as Error & { code?: string };
    const mapped = mapVerifyError(joseErr);
    t.type(mapped, InvalidTokenError);
    const e = mapped as InvalidTokenError;
    t.equal(e.reason, row.reason, 'reason');
    t.equal(e.status, 401);
    t.equal(e.code, 'invalid_token');
    t.equal(e.detail, jose.code, 'detail is the stable jose code only');
    t.match(e.detail, /^ERR_J[A-Z_]+$/);
    t.notOk(e.publicDescription.includes(jose.message), 'public description does not contain the jose message');
    t.notOk(e.message.includes(jose.message), 'error message does not contain the jose message');
    t.equal(e.publicDescription, new InvalidTokenError(row.reason).publicDescription, 'the fixed description of the reason');
    t.equal(e.cause, undefined, 'the jose error is not attached as cause');
  });
}

t.test('passes gateway errors through unchanged', async (t) => {
  const invalid = new InvalidTokenError('wrong_type');
  t.equal(mapVerifyError(invalid), invalid);
  const unavailable = new TemporarilyUnavailableError(5, { detail: 'x' });
  t.equal(mapVerifyError(unavailable), unavailable);
});

t.test('non-jose errors map to malformed without their message', async (t) => {
  for (const err of [new TypeError('secret detail eyJabc'), 'a string', 42, { code: 'ERR_CUSTOM' }]) {
    const e = mapVerifyError(err);
    t.type(e, InvalidTokenError);
    t.equal((e as InvalidTokenError).reason, 'malformed');
    t.notMatch(e.publicDescription, /secret|eyJ/);
    t.notMatch(e.detail ?? '', /secret|eyJ/);
  }
  t.equal(mapVerifyError(new TypeError('x')).detail, 'non-jose error');
});

t.test('regression: mapVerifyError(undefined | null) maps to malformed instead of throwing', async (t) => {
  for (const err of [undefined, null]) {
    let mapped: unknown;
    let thrown: unknown;
    try {
      mapped = mapVerifyError(err);
    } catch (e) {
      thrown = e;
    }
    t.equal(thrown, undefined, `${String(err)}: does not throw`);
    t.equal((mapped as InvalidTokenError | undefined)?.reason, 'malformed', `${String(err)}: malformed`);
  }
});

t.test('every reason has a distinct, fixed public description', async (t) => {
  const reasons: InvalidTokenReason[] = ['malformed', 'too_large', 'expired', 'not_yet_valid', 'issued_in_future', 'bad_signature', 'unknown_key', 'unknown_issuer', 'wrong_issuer', 'wrong_audience', 'alg_not_allowed', 'wrong_type', 'missing_claim', 'invalid_claim', 'inactive'];
  for (const r of reasons) {
    const e = new InvalidTokenError(r);
    t.match(e.publicDescription, /^The (access )?token /, `${r}: ${e.publicDescription}`);
    t.equal(e.message, e.publicDescription);
  }
});

t.test('regression: a non-numeric nbf is invalid_claim, not not_yet_valid', async (t) => {
  let joseErr: unknown;
  try {
    await jwtVerify(await sign(goodClaims({ nbf: 'soon' })), es.publicKey, BASE_OPTIONS);
  } catch (err) {
    joseErr = err;
  }
  t.type(joseErr, joseErrors.JWTClaimValidationFailed);
  t.equal((joseErr as joseErrors.JWTClaimValidationFailed).reason, 'invalid', 'jose says: invalid, not check_failed');
  t.equal((mapVerifyError(joseErr) as InvalidTokenError).reason, 'invalid_claim');
});

t.test('regression: a non-numeric iat is invalid_claim, not issued_in_future', async (t) => {
  let joseErr: unknown;
  try {
    await jwtVerify(await sign(goodClaims({ iat: 'yesterday' })), es.publicKey, BASE_OPTIONS);
  } catch (err) {
    joseErr = err;
  }
  t.type(joseErr, joseErrors.JWTClaimValidationFailed);
  t.equal((joseErr as joseErrors.JWTClaimValidationFailed).claim, 'iat');
  t.equal((mapVerifyError(joseErr) as InvalidTokenError).reason, 'invalid_claim');
});

t.test('audienceVariants', async (t) => {
  const rows: Array<[string[], string[]]> = [
    [[], []],
    [['https://gw.example.com/mcp'], ['https://gw.example.com/mcp', 'https://gw.example.com/mcp/']],
    [['https://gw.example.com/mcp/'], ['https://gw.example.com/mcp/', 'https://gw.example.com/mcp']],
    [['https://gw.example.com/mcp', 'https://gw.example.com/mcp/'], ['https://gw.example.com/mcp', 'https://gw.example.com/mcp/']],
    [['api://mcp', 'https://gw.example.com'], ['api://mcp', 'api://mcp/', 'https://gw.example.com', 'https://gw.example.com/']],
    [['x//'], ['x//', 'x/']],
  ];
  for (const [input, expected] of rows) t.strictSame(audienceVariants(input), expected, JSON.stringify(input));
});

t.test('regression: audienceVariants never derives an empty audience', async (t) => {
  t.same(audienceVariants(['/']), ['/']);
});

// ---- IssuerVerifier rules ----

function recordingLog(): VerifierLogger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (obj: object, msg: string): void => { lines.push(JSON.stringify({ ...obj, msg })); };
  return { lines, info: rec, warn: rec, error: rec };
}

async function reasonOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof InvalidTokenError) return err.reason;
    throw err;
  }
  return undefined;
}

const RES = 'https://gw.example.com/mcp';
const SECRET = 'a-shared-secret-of-at-least-32-bytes-0123456789';

t.test('shared-secret issuer: HS* with the secret only, ready at start without any fetch', async (t) => {
  // The issuer URL is a live static issuer: any discovery would show in its counters.
  const st = await startStaticIssuer({ alg: 'RS256' });
  t.teardown(() => st.close());
  const log = recordingLog();
  const v = new IssuerVerifier(issuerConfig('generic', { issuer: st.issuer, algorithms: ['HS256'], sharedSecret: new TextEncoder().encode(SECRET) }), log, { retryInitialMs: 10 });
  t.equal(v.state, 'starting');
  v.start();
  t.equal(v.state, 'ready', 'ready as soon as started');
  await v.whenReady();
  t.equal(v.jwksUri, undefined, 'no JWKS');
  const claims = st.claims({ aud: RES });
  const rows: Array<{ name: string, token: () => Promise<string>, reason: string | undefined }> = [
    { name: 'HS256 with the secret', token: async () => await signWithSecret(claims, SECRET), reason: undefined },
    { name: 'HS256 with typ JWT', token: async () => await signWithSecret(claims, SECRET, { typ: 'JWT' }), reason: undefined },
    { name: 'HS256 with another secret', token: async () => await signWithSecret(claims, SECRET + 'x'), reason: 'bad_signature' },
    { name: 'HS512 (not in algorithms)', token: async () => await signWithSecret(claims, SECRET, { alg: 'HS512' }), reason: 'alg_not_allowed' },
    { name: 'RS256 from the key the issuer URL publishes', token: async () => await st.sign(claims), reason: 'alg_not_allowed' },
    { name: 'HS256 keyed with that RSA public key (PEM)', token: async () => await hs256WithPublicKey(claims, st.publicJwk()), reason: 'bad_signature' },
    { name: 'alg none', token: async () => `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify(claims))}.`, reason: 'alg_not_allowed' },
    { name: 'HS256, wrong audience', token: async () => await signWithSecret({ ...claims, aud: 'https://other/mcp' }, SECRET), reason: 'wrong_audience' },
    { name: 'HS256, expired', token: async () => await signWithSecret({ ...claims, exp: now() - 600 }, SECRET), reason: 'expired' },
  ];
  for (const row of rows) t.equal(await reasonOf(v.verify(await row.token(), [RES])), row.reason, row.name);
  t.equal(st.metadataFetches + st.jwksFetches, 0, 'never discovered metadata or fetched a JWKS');
  t.notOk(log.lines.join('\n').includes(SECRET), 'the secret is never logged');
  v.stop();
});

t.test('HS/RS split holds even if the configured list were mixed (defence in depth)', async (t) => {
  const st = await startStaticIssuer({ alg: 'RS256' });
  t.teardown(() => st.close());
  const claims = st.claims({ aud: RES });
  // Shared secret + an asymmetric alg: the asymmetric one is dropped.
  const hs = new IssuerVerifier(issuerConfig('generic', { issuer: st.issuer, algorithms: ['HS256', 'RS256'], sharedSecret: new TextEncoder().encode(SECRET) }), recordingLog());
  hs.start();
  t.equal(await reasonOf(hs.verify(await st.sign(claims), [RES])), 'alg_not_allowed', 'secret issuer refuses RS256');
  t.equal(await reasonOf(hs.verify(await signWithSecret(claims, SECRET), [RES])), undefined, 'and accepts HS256');
  // Public keys + HS256 in the list: HS256 is dropped, so the public key can never be used as an HMAC secret.
  const rs = new IssuerVerifier(issuerConfig('generic', { issuer: st.issuer, jwksUri: st.jwksUri, algorithms: ['RS256', 'HS256'] }), recordingLog(), { retryInitialMs: 10 });
  rs.start();
  await rs.whenReady();
  t.equal(await reasonOf(rs.verify(await hs256WithPublicKey(claims, st.publicJwk()), [RES])), 'alg_not_allowed', 'RS issuer refuses HS256 keyed with its public key (PEM)');
  t.equal(await reasonOf(rs.verify(await hs256WithPublicKey(claims, st.publicJwk(), { secret: 'jwk-json' }), [RES])), 'alg_not_allowed', 'and keyed with its JWK JSON');
  t.equal(await reasonOf(rs.verify(await st.sign(claims), [RES])), undefined, 'and accepts RS256');
  // A shared secret with no HS alg at all: nothing is accepted.
  const none = new IssuerVerifier(issuerConfig('generic', { issuer: st.issuer, algorithms: ['RS256'], sharedSecret: new TextEncoder().encode(SECRET) }), recordingLog());
  none.start();
  t.equal(await reasonOf(none.verify(await signWithSecret(claims, SECRET), [RES])), 'alg_not_allowed', 'empty effective list refuses HS256');
  t.equal(await reasonOf(none.verify(await st.sign(claims), [RES])), 'alg_not_allowed', 'and RS256');
  hs.stop(); rs.stop(); none.stop();
});

t.test('requireIssuer: false accepts tokens without iss, pinned by the issuer\'s keys', async (t) => {
  const st = await startStaticIssuer({ alg: 'RS256', bareKeys: true, trailingSlash: true });
  t.teardown(() => st.close());
  const open = new IssuerVerifier(issuerConfig('drupal', { issuer: st.issuer, allowedClientIds: ['mcp-client'], requireIssuer: false }), recordingLog(), { retryInitialMs: 10 });
  const strict = new IssuerVerifier(issuerConfig('drupal', { issuer: st.issuer, allowedClientIds: ['mcp-client'] }), recordingLog(), { retryInitialMs: 10 });
  open.start(); strict.start();
  await Promise.all([open.whenReady(), strict.whenReady()]);
  const aud = ['mcp-client'];
  const noIss = st.claims({ aud: 'mcp-client', iss: undefined });
  const rows: Array<{ name: string, token: () => Promise<string>, open: string | undefined, strict: string | undefined }> = [
    { name: 'no iss, signed by the issuer', token: async () => await st.sign(noIss, { typ: 'JWT' }), open: undefined, strict: 'missing_claim' },
    { name: 'iss = the issuer', token: async () => await st.sign(st.claims({ aud: 'mcp-client' }), { typ: 'JWT' }), open: undefined, strict: undefined },
    { name: 'iss without the trailing slash', token: async () => await st.sign(st.claims({ aud: 'mcp-client', iss: st.issuer.slice(0, -1) }), { typ: 'JWT' }), open: 'wrong_issuer', strict: 'wrong_issuer' },
    { name: 'another iss', token: async () => await st.sign(st.claims({ aud: 'mcp-client', iss: 'https://evil.example.com/' }), { typ: 'JWT' }), open: 'wrong_issuer', strict: 'wrong_issuer' },
    { name: 'iss not a string', token: async () => await st.sign(st.claims({ aud: 'mcp-client', iss: 7 }), { typ: 'JWT' }), open: 'wrong_issuer', strict: 'wrong_issuer' },
    { name: 'no iss, signed by a key not in the JWKS', token: async () => await st.sign(noIss, { typ: 'JWT', key: 'other' }), open: 'bad_signature', strict: 'bad_signature' },
    { name: 'no iss, aud not allowed', token: async () => await st.sign({ ...noIss, aud: 'other-client' }, { typ: 'JWT' }), open: 'wrong_audience', strict: 'missing_claim' },
  ];
  for (const row of rows) {
    const token = await row.token();
    t.equal(await reasonOf(open.verify(token, aud)), row.open, `requireIssuer false: ${row.name}`);
    t.equal(await reasonOf(strict.verify(token, aud)), row.strict, `requireIssuer true: ${row.name}`);
  }
  open.stop(); strict.stop();
});

t.test('audiences null: no aud check (client-id rule issuers)', async (t) => {
  const st = await startStaticIssuer({ alg: 'RS256', issuerPath: '/us-west-2_pool' });
  t.teardown(() => st.close());
  const v = new IssuerVerifier(issuerConfig('cognito', { issuer: st.issuer, allowedClientIds: ['app'] }), recordingLog(), { retryInitialMs: 10 });
  v.start();
  await v.whenReady();
  t.equal(await reasonOf(v.verify(await st.sign(st.claims({ aud: undefined }), { typ: null }), null)), undefined, 'no aud: accepted');
  t.equal(await reasonOf(v.verify(await st.sign(st.claims({ aud: 'anything' }), { typ: null }), null)), undefined, 'any aud: accepted');
  t.equal(await reasonOf(v.verify(await st.sign(st.claims({ aud: undefined }), { typ: null }), [RES])), 'missing_claim', 'with a list, aud is required');
  t.equal(await reasonOf(v.verify(await st.sign(st.claims({ exp: now() - 600 }), { typ: null }), null)), 'expired', 'other checks still apply');
  v.stop();
});

t.test('kid-less JWKS keys without alg (Drupal): one key, and several tried in turn', async (t) => {
  const st = await startStaticIssuer({ alg: 'RS256', bareKeys: true, trailingSlash: true });
  t.teardown(() => st.close());
  t.strictSame(Object.keys(st.jwks().keys[0] ?? {}).sort(), ['e', 'kty', 'n'], 'published key has only kty, n, e');
  // No refetch cooldown, so the rotation below is picked up at once.
  const v = new IssuerVerifier(issuerConfig('drupal', { issuer: st.issuer, allowedClientIds: ['mcp-client'] }), recordingLog(), { retryInitialMs: 10, jwksCooldownMs: 0 });
  v.start();
  await v.whenReady();
  const claims = (): Record<string, unknown> => st.claims({ aud: 'mcp-client', scope: ['mcp_tools'] });
  const header = { jti: 'abc' };
  t.equal(await reasonOf(v.verify(await st.sign(claims(), { typ: 'JWT', header }), ['mcp-client'])), undefined, 'one bare key');
  // A second bare key after the first: the token's key is the last one, so the first fails before it matches.
  await st.rotate({ bare: true });
  t.equal(st.jwks().keys.length, 2);
  const fetches = st.jwksFetches;
  t.equal(await reasonOf(v.verify(await st.sign(claims(), { typ: 'JWT', header }), ['mcp-client'])), undefined, 'rotated-in bare key found after a refetch, trying each key');
  t.ok(st.jwksFetches > fetches, 'refetched once for the kid-less token');
  t.equal(await reasonOf(v.verify(await st.sign(claims(), { typ: 'JWT', header }), ['mcp-client'])), undefined, 'again, from the cached set of two');
  t.equal(await reasonOf(v.verify(await st.sign(claims(), { typ: 'JWT', header, key: 'other' }), ['mcp-client'])), 'bad_signature', 'no key verifies: bad signature');
  t.equal(await reasonOf(v.verify(await st.sign(claims(), { typ: 'JWT', header, alg: 'RS512' }), ['mcp-client'])), 'alg_not_allowed', 'an alg outside the list, even with alg-less keys');
  v.stop();
});
