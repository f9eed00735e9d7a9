/**
 * jose failure → public InvalidTokenError. Every error is produced by running
 * jose's own jwtVerify against real tokens; the mapping must name the right
 * reason and never leak jose's message.
 */
import t from 'tap';
import { base64url, CompactSign, createLocalJWKSet, errors as joseErrors, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWTPayload, type JWTVerifyOptions } from 'jose';

import { audienceVariants } from '../../src/auth/authenticator.js';
import { mapVerifyError } from '../../src/auth/jwt.js';
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
  const reasons: InvalidTokenReason[] = ['malformed', 'too_large', 'expired', 'not_yet_valid', 'issued_in_future', 'bad_signature', 'unknown_key', 'unknown_issuer', 'wrong_issuer', 'wrong_audience', 'alg_not_allowed', 'wrong_type', 'missing_claim', 'invalid_claim'];
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
  t.same(audienceVariants(['/']), ['/'])
})
