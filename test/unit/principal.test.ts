/**
 * Verified claims → Principal: scopes from every common claim shape, client id
 * precedence, and refusal of missing or malformed identity claims.
 */
import t from 'tap';
import type { JWTPayload } from 'jose';

import { principalFromClaims } from '../../src/auth/principal.js';
import { InvalidTokenError, type InvalidTokenReason } from '../../src/errors.js';

const ISS = 'https://as.example.com';
const EXP = 2_000_000_000;

function claims(extra: Record<string, unknown>): JWTPayload {
  return { iss: ISS, sub: 'user-1', exp: EXP, ...extra };
}

t.test('scopes', async (t) => {
  const rows: Array<{ name: string, extra: Record<string, unknown>, scopes: string[] }> = [
    { name: 'none', extra: {}, scopes: [] },
    { name: 'scope string (RFC 9068)', extra: { scope: 'mcp:tools mcp:read' }, scopes: ['mcp:tools', 'mcp:read'] },
    { name: 'scope string with extra spaces', extra: { scope: '  a   b ' }, scopes: ['a', 'b'] },
    { name: 'empty scope string', extra: { scope: '' }, scopes: [] },
    { name: 'scope array (Drupal)', extra: { scope: ['a', 'b'] }, scopes: ['a', 'b'] },
    { name: 'scp string', extra: { scp: 'a b' }, scopes: ['a', 'b'] },
    { name: 'scp array (Okta, Entra)', extra: { scp: ['a', 'b'] }, scopes: ['a', 'b'] },
    { name: 'scopes array (league/oauth2-server)', extra: { scopes: ['a', 'b'] }, scopes: ['a', 'b'] },
    { name: 'scopes string', extra: { scopes: 'a b' }, scopes: ['a', 'b'] },
    { name: 'empty arrays', extra: { scope: [], scp: [], scopes: [] }, scopes: [] },
    { name: 'union of all three, in claim order', extra: { scope: 'a b', scp: ['c'], scopes: ['d'] }, scopes: ['a', 'b', 'c', 'd'] },
    { name: 'union is deduplicated, first occurrence wins', extra: { scope: 'b a b', scp: ['a', 'c'], scopes: ['c', 'b', 'e'] }, scopes: ['b', 'a', 'c', 'e'] },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const p = principalFromClaims(claims(row.extra), ISS);
      t.strictSame([...p.scopes], row.scopes, 'scope set, in order');
      t.equal(p.scopeString, row.scopes.join(' '), 'scopeString');
      for (const s of row.scopes) t.ok(p.scopes.has(s), `has ${s}`);
      t.notOk(p.scopes.has(''), 'no empty scope');
    });
  }
});

t.test('client id precedence: client_id > azp > cid > appid', async (t) => {
  const rows: Array<{ name: string, extra: Record<string, unknown>, clientId: string | undefined }> = [
    { name: 'none', extra: {}, clientId: undefined },
    { name: 'client_id only', extra: { client_id: 'c1' }, clientId: 'c1' },
    { name: 'azp only', extra: { azp: 'a1' }, clientId: 'a1' },
    { name: 'cid only', extra: { cid: 'k1' }, clientId: 'k1' },
    { name: 'appid only', extra: { appid: 'p1' }, clientId: 'p1' },
    { name: 'all four', extra: { appid: 'p1', cid: 'k1', azp: 'a1', client_id: 'c1' }, clientId: 'c1' },
    { name: 'azp beats cid and appid', extra: { appid: 'p1', cid: 'k1', azp: 'a1' }, clientId: 'a1' },
    { name: 'cid beats appid', extra: { appid: 'p1', cid: 'k1' }, clientId: 'k1' },
    { name: 'empty client_id is skipped', extra: { client_id: '', azp: 'a1' }, clientId: 'a1' },
    { name: 'non-string client_id is skipped', extra: { client_id: 42, cid: 'k1' }, clientId: 'k1' },
    { name: 'array azp is skipped', extra: { azp: ['a1'], appid: 'p1' }, clientId: 'p1' },
    { name: 'only unusable values', extra: { client_id: null, azp: {}, cid: '', appid: 1 }, clientId: undefined },
  ];
  for (const row of rows) t.equal(principalFromClaims(claims(row.extra), ISS).clientId, row.clientId, row.name);
});

t.test('invalid identity claims', async (t) => {
  const rows: Array<{ name: string, payload: Record<string, unknown>, reason: InvalidTokenReason }> = [
    { name: 'missing sub', payload: { iss: ISS, exp: EXP }, reason: 'missing_claim' },
    { name: 'empty sub', payload: { iss: ISS, exp: EXP, sub: '' }, reason: 'invalid_claim' },
    { name: 'numeric sub', payload: { iss: ISS, exp: EXP, sub: 123 }, reason: 'invalid_claim' },
    { name: 'null sub', payload: { iss: ISS, exp: EXP, sub: null }, reason: 'invalid_claim' },
    { name: 'numeric scope', payload: claims({ scope: 123 }), reason: 'invalid_claim' },
    { name: 'object scope', payload: claims({ scope: { a: 1 } }), reason: 'invalid_claim' },
    { name: 'null scope', payload: claims({ scope: null }), reason: 'invalid_claim' },
    { name: 'scope array with a number', payload: claims({ scope: ['a', 1] }), reason: 'invalid_claim' },
    { name: 'numeric scp', payload: claims({ scp: 1 }), reason: 'invalid_claim' },
    { name: 'scp array with null', payload: claims({ scp: ['a', null] }), reason: 'invalid_claim' },
    { name: 'boolean scopes', payload: claims({ scopes: true }), reason: 'invalid_claim' },
    { name: 'valid scope but invalid scopes', payload: claims({ scope: 'a', scopes: [{}] }), reason: 'invalid_claim' },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      let caught: unknown;
      try {
        principalFromClaims(row.payload as JWTPayload, ISS);
      } catch (err) {
        caught = err;
      }
      t.type(caught, InvalidTokenError);
      const e = caught as InvalidTokenError;
      t.equal(e.reason, row.reason);
      t.equal(e.status, 401);
      t.equal(e.code, 'invalid_token');
    });
  }
});

t.test('principal fields', async (t) => {
  const payload = claims({ scope: 'a', client_id: 'c', email: 'u@example.com', realm_access: { roles: ['r1'] } });
  const p = principalFromClaims(payload, 'https://configured.example.com');
  t.equal(p.subject, 'user-1');
  t.equal(p.issuer, 'https://configured.example.com', 'the configured issuer, not the claim');
  t.equal(p.expiresAtMs, EXP * 1000, 'expiresAtMs = exp * 1000');
  t.equal(p.claims, payload, 'claims kept for claim headers');
  t.ok(Object.isFrozen(p), 'frozen');
  t.notOk(JSON.stringify({ ...p, scopes: [...p.scopes] }).includes('eyJ'), 'holds no token');
  t.equal(principalFromClaims(claims({ exp: 1.5 }), ISS).expiresAtMs, 1500, 'fractional exp');
});
