/**
 * Issuer rules compiled from resolved profile fields: every provider's example
 * token (provider-tokens.md) maps to the expected identity, and each rejected
 * variant fails with the right reason. Also the audience lists per rule and
 * audienceMatches for introspection results. The fixture's profile table is
 * checked against what the config loader resolves.
 */
import t from 'tap';
import type { JWTHeaderParameters, JWTPayload } from 'jose';
import { stringify } from 'yaml';

import { parseConfig } from '../../src/config/load.js';
import { audienceMatches, audienceVariants, compileIssuerRules } from '../../src/auth/profiles.js';
import { InvalidTokenError, type InvalidTokenReason } from '../../src/errors.js';
import { EXAMPLES, EXAMPLE_RESOURCE, PROFILE_FIELDS, REJECTED, example, issuerConfig, withChanges } from '../fixtures/providers/providers.js';

function caught(fn: () => void): InvalidTokenError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidTokenError) return err;
    throw err;
  }
  return undefined;
}

t.test('every provider example is accepted and mapped', async (t) => {
  for (const ex of EXAMPLES) {
    t.test(ex.name, async (t) => {
      const rules = compileIssuerRules(issuerConfig(ex.profile, { issuer: String(ex.payload.iss), ...ex.config }));
      const payload = ex.payload as JWTPayload;
      t.equal(caught(() => rules.check(payload, ex.header as JWTHeaderParameters)), undefined, 'passes the issuer rules');
      const p = rules.principal(payload);
      t.equal(p.subject, ex.expected.subject, 'subject');
      t.equal(p.clientId, ex.expected.clientId, 'client id');
      t.strictSame([...p.scopes], ex.expected.scopes, 'scopes');
      t.equal(p.scopeString, ex.expected.scopes.join(' '), 'scope string');
      t.strictSame([...p.roles], ex.expected.roles, 'roles');
      t.equal(p.roleString, ex.expected.roles.join(' '), 'role string');
      t.equal(p.issuer, ex.payload.iss, 'issuer');
      t.equal(p.expiresAtMs, (ex.payload.exp as number) * 1000, 'expiry from exp');
      // The example's aud (where it has one) matches the audiences the rules demand.
      const audiences = rules.audiences(EXAMPLE_RESOURCE);
      if (audiences === null) t.equal(ex.profile, 'cognito', 'only the client-id rule skips the aud check');
      else t.ok(audienceMatches(ex.payload.aud, audiences), `aud ${JSON.stringify(ex.payload.aud)} accepted`);
    });
  }
});

t.test('rejected variants', async (t) => {
  for (const row of REJECTED) {
    t.test(row.name, async (t) => {
      const ex = example(row.profile);
      const rules = compileIssuerRules(issuerConfig(row.profile, { issuer: String(ex.payload.iss), ...ex.config, ...row.config }));
      const payload = withChanges(ex.payload, row.payload) as JWTPayload;
      const header = { ...ex.header, ...row.header } as JWTHeaderParameters;
      const e = caught(() => {
        rules.check(payload, header);
        rules.principal(payload);
      });
      t.type(e, InvalidTokenError, 'refused');
      t.equal(e?.reason, row.reason, 'reason');
      t.equal(e?.status, 401);
      // Logs get the claim name only, never claim values.
      const value = row.payload === undefined ? undefined : Object.values(row.payload).find((v) => typeof v === 'string' && v.length > 2);
      if (typeof value === 'string') t.notOk((e?.detail ?? '').includes(value), 'detail does not echo the claim value');
    });
  }
});

t.test('the same variants are refused by check() alone where the rule is in check()', async (t) => {
  const rows: Array<{ name: string, profile: 'keycloak' | 'entra' | 'cognito', payload?: Record<string, unknown>, header?: Record<string, unknown>, reason: InvalidTokenReason }> = [
    { name: 'keycloak typ ID', profile: 'keycloak', payload: { typ: 'ID' }, reason: 'wrong_type' },
    { name: 'entra nonce header', profile: 'entra', header: { nonce: 'x' }, reason: 'wrong_type' },
    { name: 'cognito other client', profile: 'cognito', payload: { client_id: 'x' }, reason: 'wrong_audience' },
  ];
  for (const row of rows) {
    const ex = example(row.profile);
    const rules = compileIssuerRules(issuerConfig(row.profile, ex.config));
    t.equal(caught(() => rules.check(withChanges(ex.payload, row.payload) as JWTPayload, { ...ex.header, ...row.header } as JWTHeaderParameters))?.reason, row.reason, row.name);
  }
});

t.test('introspection results (no header): header rules skipped, claim rules kept', async (t) => {
  const ex = example('entra');
  const rules = compileIssuerRules(issuerConfig('entra', ex.config));
  t.equal(caught(() => rules.check(ex.payload as JWTPayload, undefined)), undefined, 'no header: no nonce check, nothing thrown');
  t.equal(caught(() => rules.check(withChanges(ex.payload, { ver: '1.0' }) as JWTPayload, undefined))?.reason, 'invalid_claim', 'ver still required');
  const p = rules.principal(ex.payload as JWTPayload, 1234);
  t.equal(p.expiresAtMs, 1234, 'expiresAtMs as passed (the introspection cap), not exp');
});

t.test('required claims: exact value, nested paths, token-kind claims', async (t) => {
  const rules = compileIssuerRules(issuerConfig('generic', {
    requiredClaims: [[['token_use'], 'access'], [['ext', 'tier'], 'gold'], [['ver'], 2], [['mfa'], true]],
  }));
  const good = { sub: 's', exp: 1, token_use: 'access', ext: { tier: 'gold' }, ver: 2, mfa: true };
  const rows: Array<{ name: string, payload: Record<string, unknown>, reason: InvalidTokenReason | undefined }> = [
    { name: 'all present and equal', payload: good, reason: undefined },
    { name: 'token_use other value', payload: { ...good, token_use: 'id' }, reason: 'wrong_type' },
    { name: 'token_use as a list', payload: { ...good, token_use: ['access'] }, reason: 'wrong_type' },
    { name: 'nested claim other value', payload: { ...good, ext: { tier: 'silver' } }, reason: 'invalid_claim' },
    { name: 'nested claim missing', payload: { ...good, ext: {} }, reason: 'missing_claim' },
    { name: 'nested parent not an object', payload: { ...good, ext: 'gold' }, reason: 'missing_claim' },
    { name: 'number compared exactly (no string coercion)', payload: { ...good, ver: '2' }, reason: 'invalid_claim' },
    { name: 'boolean compared exactly', payload: { ...good, mfa: 'true' }, reason: 'invalid_claim' },
    { name: 'missing', payload: { sub: 's', exp: 1, ext: { tier: 'gold' }, ver: 2, mfa: true }, reason: 'missing_claim' },
  ];
  for (const row of rows) t.equal(caught(() => rules.check(row.payload as JWTPayload, { alg: 'RS256' }))?.reason, row.reason, row.name);
});

t.test('a required claim path cannot reach the prototype', async (t) => {
  const rules = compileIssuerRules(issuerConfig('generic', { requiredClaims: [[['constructor', 'name'], 'Object']] }));
  t.equal(caught(() => rules.check({ sub: 's' }, { alg: 'RS256' }))?.reason, 'missing_claim');
});

t.test('audiences per rule', async (t) => {
  const R = 'https://gw.example.com/mcp';
  t.strictSame(compileIssuerRules(issuerConfig('generic')).audiences(R), [R, R + '/'], 'resource rule: the route resource and its slash variant');
  t.strictSame(compileIssuerRules(issuerConfig('generic')).audiences(R + '/'), [R + '/', R], 'resource with a trailing slash');
  t.strictSame(compileIssuerRules(issuerConfig('entra', { audience: ['api://mcp', '6e74172b-be56-4843-9ff4-e66a39bb12e3'] })).audiences(R),
    ['api://mcp', 'api://mcp/', '6e74172b-be56-4843-9ff4-e66a39bb12e3', '6e74172b-be56-4843-9ff4-e66a39bb12e3/'], 'configured audience replaces the resource');
  t.strictSame(compileIssuerRules(issuerConfig('drupal', { allowedClientIds: ['mcp-client', 'content-staging'] })).audiences(R), ['mcp-client', 'content-staging'], 'clientIds rule: client ids, exact');
  t.equal(compileIssuerRules(issuerConfig('cognito', { allowedClientIds: ['c'] })).audiences(R), null, 'clientIdClaim rule: no aud check');
  t.strictSame(compileIssuerRules(issuerConfig('keycloak', { audience: ['account', R] })).audiences(R), [R, R + '/'], 'a forbidden audience is dropped even if configured');
  t.strictSame(compileIssuerRules(issuerConfig('keycloak', { audience: ['account/'] })).audiences(R), [], 'and its slash variant');
  t.strictSame(compileIssuerRules(issuerConfig('keycloak', { audience: ['account'] })).audiences(R), [], 'only forbidden configured: nothing matches');
  const rules = compileIssuerRules(issuerConfig('generic'));
  t.ok(Object.isFrozen(rules.audiences(R)), 'frozen');
});

t.test('keycloak: "account" next to the resource is accepted; alone it is not', async (t) => {
  const rules = compileIssuerRules(issuerConfig('keycloak'));
  const base = example('keycloak').payload;
  const rows: Array<[unknown, InvalidTokenReason | undefined]> = [
    ['account', 'wrong_audience'],
    [['account'], 'wrong_audience'],
    [['account', 'account'], 'wrong_audience'],
    [[EXAMPLE_RESOURCE, 'account'], undefined],
    [['account', EXAMPLE_RESOURCE], undefined],
    [EXAMPLE_RESOURCE, undefined],
    [undefined, undefined], // no aud: jose's aud check refuses it (missing_claim), not this rule
  ];
  for (const [aud, reason] of rows) {
    t.equal(caught(() => rules.check(withChanges(base, { aud }) as JWTPayload, { alg: 'RS256' }))?.reason, reason, JSON.stringify(aud));
  }
});

t.test('cognito: client-id rule without an allowlist admits nobody (fail closed)', async (t) => {
  const rules = compileIssuerRules(issuerConfig('cognito'));
  t.equal(caught(() => rules.check(example('cognito').payload as JWTPayload, { alg: 'RS256' }))?.reason, 'wrong_audience');
});

t.test('drupal: machine-to-machine token without sub: subject is the client (aud)', async (t) => {
  const ex = example('drupal');
  const rules = compileIssuerRules(issuerConfig('drupal', ex.config));
  const p = rules.principal(withChanges(ex.payload, { sub: undefined }) as JWTPayload);
  t.equal(p.subject, 'mcp-client');
  t.equal(p.clientId, 'mcp-client');
  t.strictSame([...rules.principal(withChanges(ex.payload, { scope: undefined, scopes: ['a', 'b'] }) as JWTPayload).scopes], ['a', 'b'], 'league/oauth2-server `scopes` array');
  t.strictSame([...rules.principal(withChanges(ex.payload, { scope: 'a b' }) as JWTPayload).scopes], ['a', 'b'], 'scope as a string too');
});

t.test('okta: uid preferred, sub (login name) only without uid', async (t) => {
  const ex = example('okta');
  const rules = compileIssuerRules(issuerConfig('okta'));
  t.equal(rules.principal(ex.payload as JWTPayload).subject, ex.payload.uid);
  t.equal(rules.principal(withChanges(ex.payload, { uid: undefined }) as JWTPayload).subject, 'jane@acme.com');
});

t.test('audienceMatches (introspection aud)', async (t) => {
  const acc = ['https://gw/mcp', 'https://gw/mcp/'];
  const rows: Array<[unknown, boolean]> = [
    ['https://gw/mcp', true],
    ['https://gw/mcp/', true],
    [['x', 'https://gw/mcp'], true],
    ['https://gw/mcp2', false],
    [['x', 'y'], false],
    [[], false],
    [undefined, false],
    [null, false],
    [42, false],
    [[42, null, { a: 1 }], false],
    [{ 'https://gw/mcp': true }, false],
    ['', false],
  ];
  for (const [aud, ok] of rows) t.equal(audienceMatches(aud, acc), ok, JSON.stringify(aud));
  t.equal(audienceMatches('', ['']), true, 'matches exactly what is accepted');
});

t.test('audienceVariants (moved from the authenticator)', async (t) => {
  t.strictSame(audienceVariants(['https://a/mcp']), ['https://a/mcp', 'https://a/mcp/']);
  t.strictSame(audienceVariants(['/']), ['/'], 'never an empty audience');
});

t.test('the fixture\'s profile table is what the loader resolves', async (t) => {
  for (const profile of Object.keys(PROFILE_FIELDS) as Array<keyof typeof PROFILE_FIELDS>) {
    // Client allowlists are refused where the profile does not bind to client ids.
    for (const extra of profile === 'drupal' ? [{}, { allowedClientIds: ['c'] }] : [{}]) {
      const as: Record<string, unknown> = { issuer: `https://${profile}.example.com/x`, profile, ...extra };
      if (profile === 'entra') as.audience = 'api://x';
      if (profile === 'cognito') as.allowedClientIds = ['c'];
      const config = parseConfig(stringify({ publicUrl: 'https://gw.example.com', authorizationServers: [as], routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:1' }] }));
      const got = config.authorizationServers[0]!;
      const want = issuerConfig(profile, as.allowedClientIds === undefined ? {} : { allowedClientIds: ['c'] });
      t.strictSame(
        { claims: got.claims, audienceRule: got.audienceRule, forbiddenAudiences: got.forbiddenAudiences, requiredClaims: got.requiredClaims, forbiddenHeaderParams: got.forbiddenHeaderParams, requireIssuer: got.requireIssuer },
        { claims: want.claims, audienceRule: want.audienceRule, forbiddenAudiences: want.forbiddenAudiences, requiredClaims: want.requiredClaims, forbiddenHeaderParams: want.forbiddenHeaderParams, requireIssuer: true },
        `${profile} ${JSON.stringify(extra)}`,
      );
    }
  }
});
