/**
 * AS metadata discovery candidates (RFC 8414 §3.1, OIDC Discovery §4) and the
 * fetchable-URL rule for key material.
 */
import t from 'tap';
import { buildDiscoveryUrls } from '@modelcontextprotocol/sdk/client/auth.js';

import { isFetchableUrl, metadataCandidates } from '../../src/auth/discovery.js';

t.test('metadataCandidates', async (t) => {
  const rows: Array<{ issuer: string, expected: string[] }> = [
    {
      issuer: 'https://as.example.com',
      expected: ['https://as.example.com/.well-known/oauth-authorization-server', 'https://as.example.com/.well-known/openid-configuration'],
    },
    {
      issuer: 'https://t.auth0.com/',
      expected: ['https://t.auth0.com/.well-known/oauth-authorization-server', 'https://t.auth0.com/.well-known/openid-configuration'],
    },
    {
      issuer: 'http://127.0.0.1:9000',
      expected: ['http://127.0.0.1:9000/.well-known/oauth-authorization-server', 'http://127.0.0.1:9000/.well-known/openid-configuration'],
    },
    {
      issuer: 'https://kc.example.com/realms/main',
      expected: [
        'https://kc.example.com/.well-known/oauth-authorization-server/realms/main',
        'https://kc.example.com/.well-known/openid-configuration/realms/main',
        'https://kc.example.com/realms/main/.well-known/openid-configuration',
        'https://kc.example.com/realms/main/.well-known/oauth-authorization-server',
      ],
    },
    {
      issuer: 'https://login.example.com/tenant/v2.0/',
      expected: [
        'https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0',
        'https://login.example.com/.well-known/openid-configuration/tenant/v2.0',
        'https://login.example.com/tenant/v2.0/.well-known/openid-configuration',
        'https://login.example.com/tenant/v2.0/.well-known/oauth-authorization-server',
      ],
    },
    {
      issuer: 'https://dev.okta.com/oauth2/default',
      expected: [
        'https://dev.okta.com/.well-known/oauth-authorization-server/oauth2/default',
        'https://dev.okta.com/.well-known/openid-configuration/oauth2/default',
        'https://dev.okta.com/oauth2/default/.well-known/openid-configuration',
        'https://dev.okta.com/oauth2/default/.well-known/oauth-authorization-server',
      ],
    },
    {
      issuer: 'https://AS.Example.com:443/x',
      expected: [
        'https://as.example.com/.well-known/oauth-authorization-server/x',
        'https://as.example.com/.well-known/openid-configuration/x',
        'https://as.example.com/x/.well-known/openid-configuration',
        'https://as.example.com/x/.well-known/oauth-authorization-server',
      ],
    },
  ];
  for (const row of rows) {
    t.test(row.issuer, async (t) => {
      const got = metadataCandidates(row.issuer);
      t.strictSame(got, row.expected);
      t.equal(new Set(got).size, got.length, 'no duplicates');
      // The MCP SDK client tries the same URLs in the same order; the gateway may add more after them.
      const sdk = buildDiscoveryUrls(row.issuer).map((u) => u.url.href);
      t.strictSame(got.slice(0, sdk.length), sdk, 'same order as the MCP SDK client (buildDiscoveryUrls)');
    });
  }
  t.throws(() => metadataCandidates('not a url'), 'an invalid issuer throws');
});

t.test('isFetchableUrl', async (t) => {
  const rows: Array<[string, boolean]> = [
    ['https://as.example.com/jwks', true],
    ['https://10.0.0.1/jwks', true],
    ['HTTPS://AS.EXAMPLE.COM/jwks', true],
    ['http://127.0.0.1:9000/jwks', true],
    ['http://127.0.0.5/jwks', true],
    ['http://localhost:9000/jwks', true],
    ['http://[::1]:9000/jwks', true],
    ['http://as.example.com/jwks', false],
    ['http://10.0.0.1/jwks', false],
    ['http://169.254.169.254/latest/meta-data', false],
    ['http://0.0.0.0/jwks', false],
    ['http://localhost.evil.example/jwks', false],
    ['http://127.0.0.1.evil.example/jwks', false],
    ['ftp://as.example.com/jwks', false],
    ['file:///etc/passwd', false],
    ['data:application/json,{}', false],
    ['javascript:alert(1)', false],
    ['/jwks', false],
    ['as.example.com/jwks', false],
    ['', false],
  ];
  for (const [url, expected] of rows) t.equal(isFetchableUrl(url), expected, `${JSON.stringify(url)} → ${expected}`);
});
