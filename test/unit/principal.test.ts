/**
 * Verified claims → Principal: scopes from every common claim shape, client id
 * precedence, and refusal of missing or malformed identity claims (generic
 * mapping); then the ClaimMapping-driven mapper: claim paths, subject
 * candidates, roles, and each profile's mapping.
 */
import t from 'tap';
import type { JWTPayload } from 'jose';

import { compileClaimPath, compilePrincipalMapper, principalFromClaims } from '../../src/auth/principal.js';
import type { ClaimMapping } from '../../src/config/types.js';
import { InvalidTokenError, type InvalidTokenReason } from '../../src/errors.js';
import { PROFILE_FIELDS } from '../fixtures/providers/providers.js';

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
  t.equal(p.roles.size, 0, 'generic mapping reads no roles');
  t.equal(p.roleString, '', 'empty role string');
  t.ok(Object.isFrozen(p), 'frozen');
  t.notOk(JSON.stringify({ ...p, scopes: [...p.scopes] }).includes('eyJ'), 'holds no token');
  t.equal(principalFromClaims(claims({ exp: 1.5 }), ISS).expiresAtMs, 1500, 'fractional exp');
});

function reasonOf(fn: () => unknown): InvalidTokenReason | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidTokenError) return err.reason;
    throw err;
  }
  return undefined;
}

t.test('compileClaimPath', async (t) => {
  const claims = {
    sub: 's',
    realm_access: { roles: ['a'] },
    deep: { a: { b: { c: 'x' } } },
    list: [{ x: 1 }],
    nul: null,
    'cognito:groups': ['g'],
    'dotted.name': 'flat',
  } as unknown as JWTPayload;
  const rows: Array<[string[], unknown]> = [
    [['sub'], 's'],
    [['realm_access', 'roles'], ['a']],
    [['deep', 'a', 'b', 'c'], 'x'],
    [['deep', 'a', 'missing', 'c'], undefined],
    [['list', '0', 'x'], undefined],
    [['nul', 'x'], undefined],
    [['sub', 'length'], undefined],
    [['cognito:groups'], ['g']],
    [['dotted.name'], 'flat'],
    [['missing'], undefined],
    [['constructor'], undefined],
    [['__proto__'], undefined],
    [['toString'], undefined],
    [['realm_access', 'constructor'], undefined],
    [['deep', 'hasOwnProperty'], undefined],
  ];
  for (const [path, value] of rows) t.strictSame(compileClaimPath(path)(claims), value, path.join('.'));
});

const mapping = (m: Partial<ClaimMapping>): ClaimMapping => ({ subject: [['sub']], clientId: [], scopes: [], roles: [], ...m });

t.test('subject candidates', async (t) => {
  const map = compilePrincipalMapper(mapping({ subject: [['oid'], ['sub']] }), ISS);
  const rows: Array<{ name: string, claims: Record<string, unknown>, subject?: string, reason?: InvalidTokenReason }> = [
    { name: 'first candidate', claims: { oid: 'o', sub: 's' }, subject: 'o' },
    { name: 'first absent: second', claims: { sub: 's' }, subject: 's' },
    { name: 'none present', claims: {}, reason: 'missing_claim' },
    { name: 'first present but empty: refused, no fallback', claims: { oid: '', sub: 's' }, reason: 'invalid_claim' },
    { name: 'first present but a number: refused, no fallback', claims: { oid: 1, sub: 's' }, reason: 'invalid_claim' },
    { name: 'first present but null: refused', claims: { oid: null, sub: 's' }, reason: 'invalid_claim' },
    { name: 'second malformed', claims: { sub: ['s'] }, reason: 'invalid_claim' },
  ];
  for (const row of rows) {
    const payload = { exp: EXP, ...row.claims } as JWTPayload;
    if (row.subject !== undefined) t.equal(map(payload).subject, row.subject, row.name);
    else t.equal(reasonOf(() => map(payload)), row.reason, row.name);
  }
});

t.test('roles', async (t) => {
  const map = compilePrincipalMapper(mapping({ roles: [['realm_access', 'roles'], ['permissions'], ['groups']] }), ISS);
  const rows: Array<{ name: string, claims: Record<string, unknown>, roles?: string[], reason?: InvalidTokenReason }> = [
    { name: 'absent', claims: {}, roles: [] },
    { name: 'nested list', claims: { realm_access: { roles: ['r1', 'r2'] } }, roles: ['r1', 'r2'] },
    { name: 'union, deduplicated, in claim order', claims: { realm_access: { roles: ['r1'] }, permissions: ['p', 'r1'], groups: ['g'] }, roles: ['r1', 'p', 'g'] },
    { name: 'a string is split on spaces', claims: { groups: 'a  b' }, roles: ['a', 'b'] },
    { name: 'empty list', claims: { permissions: [] }, roles: [] },
    { name: 'parent not an object: absent', claims: { realm_access: ['r1'] }, roles: [] },
    { name: 'a number', claims: { permissions: 1 }, reason: 'invalid_claim' },
    { name: 'an object', claims: { groups: { a: true } }, reason: 'invalid_claim' },
    { name: 'a list with a number', claims: { realm_access: { roles: ['r', 2] } }, reason: 'invalid_claim' },
    { name: 'null', claims: { permissions: null }, reason: 'invalid_claim' },
  ];
  for (const row of rows) {
    const payload = { sub: 's', exp: EXP, ...row.claims } as JWTPayload;
    if (row.roles !== undefined) {
      const p = map(payload);
      t.strictSame([...p.roles], row.roles, `${row.name}: roles`);
      t.equal(p.roleString, row.roles.join(' '), `${row.name}: roleString`);
    } else {
      t.equal(reasonOf(() => map(payload)), row.reason, row.name);
    }
  }
  t.notOk(map({ sub: 's', exp: EXP, realm_access: { roles: ['x'] } }).scopes.has('x'), 'roles never become scopes');
});

t.test('expiresAtMs: exp by default, the given bound otherwise', async (t) => {
  const map = compilePrincipalMapper(mapping({}), ISS);
  t.equal(map({ sub: 's', exp: EXP }).expiresAtMs, EXP * 1000);
  t.equal(map({ sub: 's', exp: EXP }, 5000).expiresAtMs, 5000);
});

t.test('each profile\'s mapping', async (t) => {
  const rows: Array<{ profile: keyof typeof PROFILE_FIELDS, claims: Record<string, unknown>, subject: string, clientId: string | undefined, scopes: string[], roles: string[] }> = [
    { profile: 'generic', claims: { sub: 'u', azp: 'a', cid: 'c', scope: 'x', scp: ['y'], scopes: ['z'], roles: ['ignored'] }, subject: 'u', clientId: 'a', scopes: ['x', 'y', 'z'], roles: [] },
    { profile: 'drupal', claims: { aud: 'content-staging', scope: ['mcp_tools'], scopes: ['extra'], scp: 'ignored' }, subject: 'content-staging', clientId: 'content-staging', scopes: ['mcp_tools', 'extra'], roles: [] },
    { profile: 'drupal', claims: { sub: '7', aud: 'mcp-client', client_id: 'explicit', scope: ['a'] }, subject: '7', clientId: 'explicit', scopes: ['a'], roles: [] },
    { profile: 'keycloak', claims: { sub: 'k', azp: 'curl-rp', client_id: 'ignored', scope: 'openid mcp:tools', realm_access: { roles: ['offline_access'] }, resource_access: { account: { roles: ['view-profile'] } } }, subject: 'k', clientId: 'curl-rp', scopes: ['openid', 'mcp:tools'], roles: ['offline_access'] },
    { profile: 'auth0', claims: { sub: 'auth0|1', azp: 'az', scope: 'read', permissions: ['tools:call'] }, subject: 'auth0|1', clientId: 'az', scopes: ['read'], roles: ['tools:call'] },
    { profile: 'auth0', claims: { sub: 'm2m@clients', client_id: 'cl', azp: 'az', scope: 'read' }, subject: 'm2m@clients', clientId: 'cl', scopes: ['read'], roles: [] },
    { profile: 'okta', claims: { sub: 'jane@acme.com', uid: '00u1', cid: '0oa1', scp: ['mcp:tools'], scope: 'ignored' }, subject: '00u1', clientId: '0oa1', scopes: ['mcp:tools'], roles: [] },
    { profile: 'entra', claims: { sub: 'pairwise', oid: 'o-1', azp: 'app', appid: 'v1app', scp: 'access_as_user', roles: ['Task.Read'] }, subject: 'o-1', clientId: 'app', scopes: ['access_as_user'], roles: ['Task.Read'] },
    { profile: 'entra', claims: { sub: 'pairwise', appid: 'v1app', scp: 'a b' }, subject: 'pairwise', clientId: 'v1app', scopes: ['a', 'b'], roles: [] },
    { profile: 'cognito', claims: { sub: 'uuid', client_id: 'app', username: 'u', scope: 'rs/read rs/write', 'cognito:groups': ['admin', 'dev'] }, subject: 'uuid', clientId: 'app', scopes: ['rs/read', 'rs/write'], roles: ['admin', 'dev'] },
  ];
  for (const row of rows) {
    const p = compilePrincipalMapper(PROFILE_FIELDS[row.profile].claims, ISS)({ exp: EXP, ...row.claims } as JWTPayload);
    t.strictSame(
      { subject: p.subject, clientId: p.clientId, scopes: [...p.scopes], roles: [...p.roles] },
      { subject: row.subject, clientId: row.clientId, scopes: row.scopes, roles: row.roles },
      `${row.profile}: ${JSON.stringify(row.claims)}`,
    );
  }
});

t.test('generic profile: a token without sub (client_credentials, RFC 9068 §2.2) takes the client id as subject', async (t) => {
  const p = principalFromClaims({ client_id: 'm2m', scope: 'mcp:tools', exp: 2_000_000_000 }, 'https://as.example.com');
  t.equal(p.subject, 'm2m');
  t.equal(p.clientId, 'm2m');
  let reason: string | undefined;
  try {
    principalFromClaims({ scope: 'mcp:tools', exp: 2_000_000_000 }, 'https://as.example.com');
  } catch (err) {
    reason = (err as InvalidTokenError).reason;
  }
  t.equal(reason, 'missing_claim', 'neither sub nor client_id: no subject');
});
