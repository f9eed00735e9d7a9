/**
 * Which active RFC 7662 responses describe a bearer access token. A table of
 * response shapes from real servers (oidc-provider, Keycloak, Ory, Spring,
 * MITREid) and the verdict; the HTTP side is in test/integration/introspection.test.ts.
 */
import t from 'tap';

import { notBearerAccessToken } from '../../src/auth/introspection.js';

const base = { active: true, iss: 'https://as.example.com', aud: 'https://mcp.example.com/mcp', exp: 2_000_000_000, scope: 'mcp:tools' };

const cases: Array<[name: string, response: Record<string, unknown>, refusal: string | undefined]> = [
  ['oidc-provider access token', { ...base, client_id: 'c', token_type: 'Bearer' }, undefined],
  ['lower-case bearer (RFC 6749 §5.1: case-insensitive)', { ...base, token_type: 'bearer' }, undefined],
  ['Keycloak (typ, no token_type)', { ...base, typ: 'Bearer', azp: 'c' }, undefined],
  ['Keycloak with both', { ...base, typ: 'Bearer', token_type: 'Bearer' }, undefined],
  ['Ory access token', { ...base, token_type: 'Bearer', token_use: 'access_token' }, undefined],
  ['oidc-provider / Spring / MITREid refresh token (no token_type)', { active: true, client_id: 'c', scope: 'offline_access', exp: 2_000_000_000 }, 'no token_type'],
  ['Keycloak refresh token', { ...base, typ: 'Refresh' }, 'typ is not Bearer'],
  ['Keycloak offline token', { ...base, typ: 'Offline' }, 'typ is not Bearer'],
  ['Keycloak ID token', { ...base, typ: 'ID' }, 'typ is not Bearer'],
  ['typ Bearer but token_type refresh_token', { ...base, typ: 'Bearer', token_type: 'refresh_token' }, 'token_type is not Bearer'],
  ['Ory refresh token', { ...base, token_type: 'Bearer', token_use: 'refresh_token' }, 'token_use is not access_token'],
  ['RFC 8693 refresh token type', { ...base, token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'token_type is not Bearer'],
  ['refresh_token', { ...base, token_type: 'refresh_token' }, 'token_type is not Bearer'],
  ['N_A', { ...base, token_type: 'N_A' }, 'token_type is not Bearer'],
  ['DPoP-bound (RFC 9449 §6.2)', { ...base, token_type: 'DPoP', cnf: { jkt: 'x' } }, 'token_type is not Bearer'],
  ['mTLS-bound (RFC 8705 §3.2)', { ...base, token_type: 'Bearer', cnf: { 'x5t#S256': 'x' } }, 'sender-constrained (cnf)'],
  ['empty cnf (oidc-provider, sender-constrained)', { ...base, token_type: 'Bearer', cnf: {} }, 'sender-constrained (cnf)'],
  ['token_type not a string', { ...base, token_type: ['Bearer'] }, 'token_type is not Bearer'],
  ['typ not a string', { ...base, typ: 1 }, 'typ is not Bearer'],
  ['"bearer " with a space', { ...base, token_type: 'bearer ' }, 'token_type is not Bearer'],
];

for (const [name, response, refusal] of cases) {
  t.test(name, async (t) => {
    t.equal(notBearerAccessToken(response), refusal);
  });
}
