/**
 * Config loading: every fixture in test/fixtures/config/*.yaml (except valid-*)
 * is invalid in known ways; its sibling <name>.expected.txt lists the exact
 * problems, in order. `<DIR>` in an expected file stands for the fixture dir.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import t from 'tap';
import { execFileSync } from 'node:child_process';

import { loadConfigFile, parseConfig, resolveConfigPath, type Env } from '../../src/config/load.js';
import { isLoopbackHost } from '../../src/config/schema.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { MINIMAL_CONFIG } from '../helpers/config-text.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'config');

/** `path: what is wrong: the rule` */
const PROBLEM_FORMAT = /^[^:]+: .+: .+$/;

/** Environment used for every fixture (env.yaml relies on it). */
const FIXTURE_ENV: Env = Object.freeze({
  GW_AS_HOST: 'as.example.com',
  GW_UPSTREAM: 'http://127.0.0.1:3001',
  GW_SECRET: 's3cr3t-value',
});

/** Fixtures whose expectation describes the correct behaviour that src does not have yet. */
const REGRESSION_FIXTURES: Record<string, string> = {
  'invalid-yaml.yaml': 'regression: YAML syntax errors carry line and column',
  'duplicate-key.yaml': 'regression: YAML duplicate-key errors carry line and column',
};

const MINIMAL = MINIMAL_CONFIG;

/** The generic profile's claim mapping, as paths. */
const GENERIC_CLAIMS = {
  subject: [['sub'], ['client_id']],
  clientId: [['client_id'], ['azp'], ['cid'], ['appid']],
  scopes: [['scope'], ['scp'], ['scopes']],
  roles: [],
};

/** The type of `t` inside a subtest. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** Run fn, require a ConfigError, return its problems. */
function problemsOf(t: Test, fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    t.type(err, ConfigError, 'throws ConfigError');
    if (!(err instanceof ConfigError)) throw err;
    t.ok(Array.isArray(err.problems) && err.problems.length > 0, 'lists at least one problem');
    t.equal(err.message.split('\n').length, err.problems.length + 1, 'the message lists every problem on its own line');
    return err.problems;
  }
  t.fail('expected a ConfigError');
  return [];
}

function readExpected(name: string): string[] {
  const text = readFileSync(join(FIXTURES, name.replace(/\.yaml$/, '.expected.txt')), 'utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((l) => l.replaceAll('<DIR>', FIXTURES));
}

function parse(text: string, env: Env = {}): GatewayConfig {
  return parseConfig(text, { env, baseDir: FIXTURES });
}

const allFiles = readdirSync(FIXTURES);
const invalidFixtures = allFiles.filter((f) => f.endsWith('.yaml') && !f.startsWith('valid-')).sort();

t.test('fixture set is complete', async (t) => {
  t.ok(invalidFixtures.length >= 20, `found ${invalidFixtures.length} invalid fixtures`);
  for (const f of invalidFixtures) {
    t.ok(allFiles.includes(f.replace(/\.yaml$/, '.expected.txt')), `${f} has an .expected.txt`);
  }
  for (const f of allFiles.filter((n) => n.endsWith('.expected.txt'))) {
    t.ok(allFiles.includes(f.replace(/\.expected\.txt$/, '.yaml')), `${f} has a fixture`);
  }
});

for (const name of invalidFixtures) {
  const label = REGRESSION_FIXTURES[name] !== undefined ? `${REGRESSION_FIXTURES[name]} (${name})` : name;
  t.test(label, async (t) => {
    const expected = readExpected(name);
    t.ok(expected.length > 0, 'expectation is not empty');
    const text = readFileSync(join(FIXTURES, name), 'utf8');
    const problems = problemsOf(t, () => parseConfig(text, { env: FIXTURE_ENV, baseDir: FIXTURES }));
    t.strictSame(problems, expected, 'exact problem list, in order');
    for (const p of problems) {
      t.match(p, PROBLEM_FORMAT, `"path: what: rule": ${p}`);
      t.notMatch(p, /s3cr3t-value/, 'never echoes a (secret) value');
    }
    t.equal(new Set(problems).size, problems.length, 'no problem is listed twice');
    // loadConfigFile resolves relative paths against the file's directory: same result.
    const viaFile = problemsOf(t, () => loadConfigFile(join(FIXTURES, name), FIXTURE_ENV));
    t.strictSame(viaFile, problems, 'loadConfigFile reports the same problems');
  });
}

t.test('valid full config is normalised', async (t) => {
  const config = loadConfigFile(join(FIXTURES, 'valid-full.yaml'), {});

  t.strictSame(config.listen.host, '0.0.0.0');
  t.equal(config.listen.port, 9443);
  t.ok(config.listen.tls, 'tls is loaded');
  t.equal(config.listen.tls?.cert.toString('utf8'), readFileSync(join(FIXTURES, 'tls-cert.pem'), 'utf8'), 'cert read relative to the config file');
  t.equal(config.listen.tls?.key.toString('utf8'), readFileSync(join(FIXTURES, 'tls-key.pem'), 'utf8'), 'key read relative to the config file');

  t.equal(config.publicUrl, 'https://gw.example.com', 'publicUrl is the origin: lower-cased, default port and trailing slash dropped');

  t.strictSame(config.authorizationServers, [
    {
      issuer: 'https://as.example.com/realms/main',
      jwksUri: undefined,
      metadataUrl: 'https://as.example.com/realms/main/.well-known/openid-configuration',
      algorithms: ['ES256', 'RS256'],
      audience: ['api://mcp', 'https://gw.example.com/mcp'],
      clockToleranceSeconds: 30,
      profile: 'generic',
      tokenType: 'jwt',
      sharedSecret: undefined,
      audienceRule: 'resource',
      allowedClientIds: undefined,
      forbiddenAudiences: [],
      requireIssuer: true,
      requiredClaims: [],
      forbiddenHeaderParams: [],
      claims: GENERIC_CLAIMS,
      introspection: undefined,
    },
    {
      issuer: 'http://127.0.0.1:9000',
      jwksUri: 'http://localhost:9000/jwks',
      metadataUrl: undefined,
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      audience: ['single-audience'],
      clockToleranceSeconds: 0,
      profile: 'generic',
      tokenType: 'jwt',
      sharedSecret: undefined,
      audienceRule: 'resource',
      allowedClientIds: undefined,
      forbiddenAudiences: [],
      requireIssuer: true,
      requiredClaims: [],
      forbiddenHeaderParams: [],
      claims: GENERIC_CLAIMS,
      introspection: undefined,
    },
  ]);

  t.strictSame(config.routes, [
    {
      id: '/mcp',
      path: '/mcp',
      upstreamOrigin: 'http://127.0.0.1:3001',
      upstreamPath: '/mcp',
      resource: 'https://gw.example.com/mcp',
      resourceMetadataUrl: 'https://gw.example.com/.well-known/oauth-protected-resource/mcp',
      scopes: ['mcp:tools', 'mcp:read'],
      issuers: ['https://as.example.com/realms/main', 'http://127.0.0.1:9000'],
      policy: undefined,
      identityHeaders: {
        subject: 'X-User',
        clientId: 'X-Forwarded-Client-Id',
        scopes: 'X-Scopes',
        issuer: 'X-Forwarded-Issuer',
        roles: 'X-Forwarded-Roles',
      },
      claimHeaders: [
        ['X-Email', ['email']],
        ['X-Roles', ['realm_access', 'roles']],
      ],
      identityAssertion: undefined,
      upstreamAuth: { type: 'none' },
      allowedOrigins: ['https://gw.example.com'],
      timeouts: { connectMs: 2000, headersMs: 500, idleMs: 3_600_000 },
    },
    {
      id: '/files/v1',
      path: '/files/v1',
      upstreamOrigin: 'https://files.internal:8443',
      upstreamPath: '',
      resource: 'https://files.example.com/',
      resourceMetadataUrl: 'https://gw.example.com/.well-known/oauth-protected-resource/files/v1',
      scopes: [],
      issuers: ['https://as.example.com/realms/main', 'http://127.0.0.1:9000'],
      policy: undefined,
      identityHeaders: {
        subject: 'X-Forwarded-User',
        clientId: 'X-Forwarded-Client-Id',
        scopes: 'X-Forwarded-Scopes',
        issuer: 'X-Forwarded-Issuer',
        roles: 'X-Forwarded-Roles',
      },
      claimHeaders: [],
      identityAssertion: undefined,
      upstreamAuth: { type: 'none' },
      allowedOrigins: ['https://gw.example.com'],
      timeouts: { connectMs: 10_000, headersMs: 300_000, idleMs: 300_000 },
    },
  ]);

  t.strictSame(config.limits, { maxBodyBytes: 1_048_576, maxBatchMessages: null, maxTokenBytes: 4096, maxHeaderBytes: 16_384, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, maxStreams: 10_000, maxStreamsPerPrincipal: 100 });
  t.strictSame(config.tokenCache, { maxEntries: 0 });
  t.equal(config.mirrorAuthorizationServerMetadata, undefined);
  t.equal(config.logLevel, 'debug');
  t.equal(config.shutdownTimeoutMs, 2500);
  t.strictSame(config.warnings, [
    'authorizationServers[1].issuer uses plain http on loopback: acceptable for development only',
    'authorizationServers[1].jwksUri uses plain http on loopback: acceptable for development only',
    'routes[1] (/files/v1) requires no scopes: any valid token for its resource is accepted',
  ]);
});

t.test('valid minimal config gets every default', async (t) => {
  const config = parseConfig(readFileSync(join(FIXTURES, 'valid-minimal.yaml'), 'utf8'), { env: {}, baseDir: FIXTURES });
  t.strictSame(config.listen, { host: '127.0.0.1', port: 8080, tls: undefined });
  t.equal(config.publicUrl, 'https://mcp.example.com');
  t.strictSame(config.authorizationServers, [{
    issuer: 'https://as.example.com',
    jwksUri: undefined,
    metadataUrl: undefined,
    algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    audience: undefined,
    clockToleranceSeconds: 60,
    profile: 'generic',
    tokenType: 'jwt',
    sharedSecret: undefined,
    audienceRule: 'resource',
    allowedClientIds: undefined,
    forbiddenAudiences: [],
    requireIssuer: true,
    requiredClaims: [],
    forbiddenHeaderParams: [],
    claims: GENERIC_CLAIMS,
    introspection: undefined,
  }]);
  const r = config.routes[0]!;
  t.equal(config.routes.length, 1);
  t.equal(r.resource, 'https://mcp.example.com/mcp', 'resource = publicUrl + path');
  t.equal(r.resourceMetadataUrl, 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp');
  t.equal(r.upstreamOrigin, 'http://127.0.0.1:3001');
  t.equal(r.upstreamPath, '', 'root upstream has an empty base path');
  t.strictSame(r.scopes, []);
  t.strictSame(r.identityHeaders, {
    subject: 'X-Forwarded-User',
    clientId: 'X-Forwarded-Client-Id',
    scopes: 'X-Forwarded-Scopes',
    issuer: 'X-Forwarded-Issuer',
    roles: 'X-Forwarded-Roles',
  });
  t.strictSame(r.claimHeaders, []);
  t.strictSame(r.timeouts, { connectMs: 10_000, headersMs: 300_000, idleMs: 300_000 });
  t.strictSame(config.limits, { maxBodyBytes: 4 * 1024 * 1024, maxBatchMessages: null, maxTokenBytes: 8 * 1024, maxHeaderBytes: 16 * 1024, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, maxStreams: 10_000, maxStreamsPerPrincipal: 100 });
  t.strictSame(r.allowedOrigins, ['https://mcp.example.com'], 'browser origins: publicUrl only by default');
  t.equal(config.trustProxy, false, 'no proxy is trusted by default');
  t.equal(config.rateLimits, undefined, 'no rate limit by default');
  t.strictSame(config.sessions, { store: 'memory', idleTtlMs: 3_600_000, onStoreError: 'deny' }, 'session binding on, in memory, fail closed');
  t.equal(config.redis, undefined, 'no Redis by default');
  t.strictSame(config.tokenCache, { maxEntries: 10_000 });
  t.equal(config.logLevel, 'info');
  t.equal(config.shutdownTimeoutMs, 10_000);
  t.strictSame(config.warnings, ['routes[0] (/mcp) requires no scopes: any valid token for its resource is accepted']);
});

t.test('the normalised config is deeply frozen', async (t) => {
  const config = loadConfigFile(join(FIXTURES, 'valid-full.yaml'), {});
  const objects: Array<[string, unknown]> = [
    ['config', config],
    ['listen', config.listen],
    ['listen.tls', config.listen.tls],
    ['authorizationServers', config.authorizationServers],
    ['limits', config.limits],
    ['tokenCache', config.tokenCache],
    ['warnings', config.warnings],
  ];
  config.authorizationServers.forEach((as, i) => {
    objects.push([`authorizationServers[${i}]`, as], [`authorizationServers[${i}].algorithms`, as.algorithms]);
    if (as.audience !== undefined) objects.push([`authorizationServers[${i}].audience`, as.audience]);
  });
  objects.push(['routes', config.routes]);
  config.routes.forEach((r, i) => {
    objects.push(
      [`routes[${i}]`, r],
      [`routes[${i}].scopes`, r.scopes],
      [`routes[${i}].identityHeaders`, r.identityHeaders],
      [`routes[${i}].claimHeaders`, r.claimHeaders],
      [`routes[${i}].timeouts`, r.timeouts],
    );
    r.claimHeaders.forEach((entry, j) => {
      objects.push([`routes[${i}].claimHeaders[${j}]`, entry], [`routes[${i}].claimHeaders[${j}][1]`, entry[1]]);
    });
  });
  for (const [name, o] of objects) t.ok(Object.isFrozen(o), `${name} is frozen`);
  t.throws(() => {
    (config as { publicUrl: string }).publicUrl = 'https://evil.example.com';
  }, TypeError, 'assignment throws in strict mode');
  t.throws(() => {
    (config.routes[0]!.scopes as string[]).push('x');
  }, TypeError);
  t.equal(config.publicUrl, 'https://gw.example.com');
});

t.test('plain http issuers: refused off loopback, accepted with a warning on loopback', async (t) => {
  const rows: Array<{ issuer: string, ok: boolean }> = [
    { issuer: 'http://127.0.0.1:9000', ok: true },
    { issuer: 'http://127.0.0.5', ok: true },
    { issuer: 'http://127.255.255.254:1/realm', ok: true },
    { issuer: 'http://[::1]:8080', ok: true },
    { issuer: 'http://localhost', ok: true },
    { issuer: 'http://LOCALHOST:9000', ok: true },
    { issuer: 'https://as.example.com', ok: true },
    { issuer: 'https://10.0.0.1', ok: true },
    { issuer: 'http://as.example.com', ok: false },
    { issuer: 'http://10.0.0.1', ok: false },
    { issuer: 'http://128.0.0.1', ok: false },
    { issuer: 'http://0.0.0.0', ok: false },
    { issuer: 'http://[::2]', ok: false },
    { issuer: 'http://[::ffff:7f00:1]', ok: false },
    { issuer: 'http://localhost.example.com', ok: false },
    { issuer: 'http://127.0.0.1.nip.io', ok: false },
  ];
  for (const row of rows) {
    t.test(row.issuer, async (t) => {
      const text = MINIMAL.replace('https://as.example.com', row.issuer);
      const warning = 'authorizationServers[0].issuer uses plain http on loopback: acceptable for development only';
      if (row.ok) {
        const config = parse(text);
        t.equal(config.authorizationServers[0]!.issuer, row.issuer, 'issuer kept exactly as written');
        if (row.issuer.startsWith('http:')) t.strictSame(config.warnings, [warning]);
        else t.strictSame(config.warnings, []);
      } else {
        t.strictSame(problemsOf(t, () => parse(text)), [
          'authorizationServers[0].issuer: plain http:// on a non-loopback host: must be https:// (http:// is accepted only on 127.0.0.0/8, ::1 or localhost)',
        ]);
      }
    });
  }
});

t.test('isLoopbackHost', async (t) => {
  const rows: Array<[string, boolean]> = [
    ['127.0.0.1', true], ['127.0.0.5', true], ['127.1.2.3', true], ['localhost', true], ['[::1]', true], ['::1', true],
    ['128.0.0.1', false], ['0.0.0.0', false], ['localhost.', false], ['mylocalhost', false], ['127.0.0.1.example.com', false], ['[::2]', false], ['', false],
  ];
  for (const [host, expected] of rows) t.equal(isLoopbackHost(host), expected, `${JSON.stringify(host)} → ${expected}`);
});

t.test('other publicUrl and listen warnings', async (t) => {
  t.test('plain http publicUrl off loopback warns', async (t) => {
    const config = parse(MINIMAL.replace('https://gw.example.com', 'http://gw.example.com'));
    t.equal(config.publicUrl, 'http://gw.example.com');
    t.strictSame(config.warnings, ['publicUrl is plain http on a non-loopback host: MCP clients expect https (terminate TLS here with listen.tls or in front of the gateway)']);
  });
  t.test('plain http publicUrl on loopback is silent', async (t) => {
    const config = parse(MINIMAL.replace('https://gw.example.com', 'http://127.0.0.1:8080'));
    t.strictSame(config.warnings, []);
    t.equal(config.routes[0]!.resource, 'http://127.0.0.1:8080/mcp');
  });
  t.test('non-loopback listener without TLS behind an https publicUrl warns', async (t) => {
    // Metrics on a listener of their own: the unauthenticated-metrics warning (observability-config.test.ts) stays out of this one.
    const config = parse(`listen:\n  host: 0.0.0.0\nmetrics:\n  listen:\n    port: 9464\n${MINIMAL}`);
    t.strictSame(config.warnings, ['listen.host 0.0.0.0 is not loopback and listen.tls is not set: make sure TLS is terminated in front of the gateway']);
  });
});

t.test('route paths: /mcp and /mcpx do not overlap, /mcp and /mcp/x do', async (t) => {
  const two = (a: string, b: string): string => `${MINIMAL}  - path: ${b}\n    upstream: http://127.0.0.1:3002\n    scopes: [mcp]\n`.replace('path: /mcp\n', `path: ${a}\n`);
  const ok = parse(two('/mcp', '/mcpx'));
  t.strictSame(ok.routes.map((r) => r.path), ['/mcp', '/mcpx']);
  t.strictSame(parse(two('/mcp/a', '/mcp/ab')).routes.map((r) => r.path), ['/mcp/a', '/mcp/ab']);
  t.strictSame(problemsOf(t, () => parse(two('/mcp', '/mcp/x'))), ['routes[1].path: overlaps routes[0].path: a route path must not be a prefix of another']);
  t.strictSame(problemsOf(t, () => parse(two('/mcp/x/y', '/mcp'))), ['routes[1].path: overlaps routes[0].path: a route path must not be a prefix of another']);
  t.strictSame(problemsOf(t, () => parse(two('/mcp', '/mcp'))), ['routes[1].path: duplicate of routes[0].path: route paths must be unique']);
});

t.test('${ENV} substitution', async (t) => {
  t.test('set variables are substituted, $${X} is a literal ${X}', async (t) => {
    const text = `publicUrl: \${PUBLIC_URL}
authorizationServers:
  - issuer: https://\${AS_HOST}/realms/\${REALM}
routes:
  - path: /mcp
    upstream: \${UPSTREAM}
    scopes: ["$\${LITERAL}", "a\${EMPTY}b"]
`;
    const config = parse(text, { PUBLIC_URL: 'https://gw.example.com', AS_HOST: 'as.example.com', REALM: 'main', UPSTREAM: 'http://127.0.0.1:3001/base', EMPTY: '' });
    t.equal(config.publicUrl, 'https://gw.example.com');
    t.equal(config.authorizationServers[0]!.issuer, 'https://as.example.com/realms/main');
    t.equal(config.routes[0]!.upstreamPath, '/base');
    t.strictSame(config.routes[0]!.scopes, ['${LITERAL}', 'ab'], 'literal kept, empty variable is set (not an error)');
  });
  t.test('an unset variable is an error naming it, not its neighbours', async (t) => {
    const problems = problemsOf(t, () => parse(MINIMAL.replace('scopes: [mcp]', 'scopes: ["${NOPE_1}"]'), { OTHER: 'x' }));
    t.strictSame(problems, [
      'routes[0].scopes[0]: environment variable NOPE_1 is not set: every ${NAME} must be set',
      'routes[0].scopes[0]: invalid scope: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)',
    ]);
  });
  t.test('values cannot inject YAML structure', async (t) => {
    const problems = problemsOf(t, () => parse(MINIMAL.replace('https://gw.example.com', '${PUB}'), { PUB: 'https://gw.example.com\nlogLevel: nope' }));
    // Had the value been spliced into the YAML text, logLevel would be set to an invalid value.
    t.strictSame(problems, ['publicUrl: not an http(s) URL: publicUrl must be the origin clients use, such as https://mcp.example.com']);
    const scopeProblems = problemsOf(t, () => parse(MINIMAL.replace('scopes: [mcp]', 'scopes: ["${S}"]'), { S: 'mcp\nlogLevel: nope' }));
    t.strictSame(scopeProblems, ['routes[0].scopes[0]: invalid scope: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)']);
  });
  t.test('keys are not substituted', async (t) => {
    const problems = problemsOf(t, () => parse(`\${KEY}: 1\n${MINIMAL}`, { KEY: 'logLevel' }));
    t.strictSame(problems, ['${KEY}: unknown key: allowed keys here are listen, publicUrl, allowedOrigins, trustProxy, rateLimits, sessions, redis, metrics, health, audit, authorizationServers, routes, limits, tokenCache, mirrorAuthorizationServerMetadata, logLevel, shutdownTimeoutSeconds, signingKeys, signingAlgorithm']);
  });
});

t.test('loadConfigFile: unreadable files', async (t) => {
  const missing = join(FIXTURES, 'does-not-exist.yaml');
  t.strictSame(problemsOf(t, () => loadConfigFile(missing, {})), [
    `${missing}: cannot read the config file (ENOENT): the file must exist and be readable`,
  ]);
  t.strictSame(problemsOf(t, () => loadConfigFile(FIXTURES, {})), [
    `${FIXTURES}: cannot read the config file (EISDIR): the file must exist and be readable`,
  ]);
  for (const p of problemsOf(t, () => loadConfigFile(missing, {}))) t.match(p, PROBLEM_FORMAT);
});

t.test('loadConfigFile resolves relative TLS paths against the config file, not the cwd', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  const cert = readFileSync(join(FIXTURES, 'tls-cert.pem'), 'utf8');
  const key = readFileSync(join(FIXTURES, 'tls-key.pem'), 'utf8');
  writeFileSync(join(dir, 'c.pem'), cert);
  writeFileSync(join(dir, 'k.pem'), key);
  writeFileSync(join(dir, 'gw.yaml'), `listen:\n  tls:\n    certFile: c.pem\n    keyFile: ${join(dir, 'k.pem')}\n${MINIMAL}`);
  const config = loadConfigFile(join(dir, 'gw.yaml'), {});
  t.equal(config.listen.tls?.cert.toString(), cert);
  t.equal(config.listen.tls?.key.toString(), key);
  // The same text parsed with another baseDir cannot find c.pem.
  const problems = problemsOf(t, () => parseConfig(readFileSync(join(dir, 'gw.yaml'), 'utf8'), { env: {}, baseDir: FIXTURES }));
  t.strictSame(problems, [`listen.tls.certFile: cannot read ${join(FIXTURES, 'c.pem')} (ENOENT): the file must exist and be readable`]);
});

t.test('regression: --check rejects unusable TLS material (garbage PEM, key not matching the certificate)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate');
  const garbage = problemsOf(t, () => parseConfig(`listen:\n  tls:\n    certFile: garbage.pem\n    keyFile: garbage.pem\n${MINIMAL}`, { env: {}, baseDir: dir }));
  t.equal(garbage.length, 1);
  t.match(garbage[0], /^listen\.tls: the certificate and key cannot be used \([A-Z_]+\): certFile must be a PEM certificate chain and keyFile its matching PEM private key$/);
  t.notMatch(garbage[0], /not a certificate/, 'file contents are not echoed');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=x', '-keyout', join(dir, 'other-key.pem'), '-out', join(dir, 'other-cert.pem')], { stdio: 'ignore' });
  const mismatch = problemsOf(t, () => parseConfig(`listen:\n  tls:\n    certFile: ${join(FIXTURES, 'tls-cert.pem')}\n    keyFile: other-key.pem\n${MINIMAL}`, { env: {}, baseDir: dir }));
  t.match(mismatch[0], /^listen\.tls: the certificate and key cannot be used/, 'a key that does not match the certificate');
});

t.test('regression: an empty MCP_GATEWAY_CONFIG falls back to ./gateway.yaml', async (t) => {
  t.equal(resolveConfigPath(undefined, { MCP_GATEWAY_CONFIG: '' }), './gateway.yaml');
});

t.test('resolveConfigPath precedence: --config > MCP_GATEWAY_CONFIG > ./gateway.yaml', async (t) => {
  const rows: Array<{ cli: string | undefined, env: Env, expected: string }> = [
    { cli: '/etc/cli.yaml', env: { MCP_GATEWAY_CONFIG: '/etc/env.yaml' }, expected: '/etc/cli.yaml' },
    { cli: 'cli.yaml', env: {}, expected: 'cli.yaml' },
    { cli: undefined, env: { MCP_GATEWAY_CONFIG: '/etc/env.yaml' }, expected: '/etc/env.yaml' },
    { cli: undefined, env: {}, expected: './gateway.yaml' },
    { cli: undefined, env: { OTHER: 'x' }, expected: './gateway.yaml' },
  ];
  for (const row of rows) t.equal(resolveConfigPath(row.cli, row.env), row.expected, `${row.cli ?? '-'} / ${row.env.MCP_GATEWAY_CONFIG ?? '-'}`);
});

t.test('regression: the schema message is kept for a non-integer port (listen.port: 1.5)', async (t) => {
  const problems = problemsOf(t, () => parse(`listen:\n  port: 1.5\n${MINIMAL}`));
  // The schema says `z.number().int({ message: 'not an integer: port must be an integer' })`;
  // formatIssues ignores issue.message for invalid_type and prints "got a number: must be int".
  t.strictSame(problems, ['listen.port: not an integer: port must be an integer']);
});

t.test('regression: a collision between two identity headers is reported at routes[i].identityHeaders', async (t) => {
  const text = MINIMAL.replace('scopes: [mcp]', 'scopes: [mcp]\n    identityHeaders:\n      subject: X-Who\n      clientId: x-who');
  const problems = problemsOf(t, () => parse(text));
  t.equal(problems.length, 1);
  // The route has no `claims` key at all; the problem should point at identityHeaders.
  t.match(problems[0], /^routes\[0\]\.identityHeaders/, 'path names the offending key');
});

t.test('regression: an unclosed ${ and an issuer with a query are errors', async (t) => {
  const unclosed = problemsOf(t, () => parse(MINIMAL.replace('upstream: http://127.0.0.1:3001', 'upstream: http://127.0.0.1:${PORT')))
  t.match(unclosed[0], /^routes\[0\]\.upstream: invalid variable reference: /)
  const query = problemsOf(t, () => parse(MINIMAL.replace('issuer: https://as.example.com', 'issuer: https://as.example.com/?tenant=a')))
  t.same(query, ['authorizationServers[0].issuer: issuer has a query: an issuer identifier has no query or fragment (RFC 8414 §2)'])
})

t.test('a value that is exactly one ${NAME} takes the type of a numeric or boolean value', async (t) => {
  const config = parse(`listen:\n  port: \${PORT}\n${MINIMAL}`, { PORT: '9090' })
  t.equal(config.listen.port, 9090)
  const text = parse(MINIMAL.replace('upstream: http://127.0.0.1:3001', 'upstream: http://127.0.0.1:${PORT}'), { PORT: '3002' })
  t.equal(text.routes[0]!.upstreamOrigin, 'http://127.0.0.1:3002', 'embedded references stay text')
  const bad = problemsOf(t, () => parse(`listen:\n  port: \${PORT}\n${MINIMAL}`, { PORT: 'eighty' }))
  t.same(bad, ['listen.port: got a string: must be a number'])
})

t.test('issue 4 settings: profiles resolved, secrets read, issuer lists and policy compiled', async (t) => {
  const config = loadConfigFile(join(FIXTURES, 'valid-authorization.yaml'), { GW_SECRET: 'introspection-secret' });
  const [kc, drupal, cognito, entra, hs, opaque] = config.authorizationServers;
  t.equal(kc!.profile, 'keycloak');
  t.strictSame(kc!.requiredClaims, [[['typ'], 'Bearer']], 'keycloak requires typ Bearer');
  t.strictSame(kc!.forbiddenAudiences, ['account']);
  t.strictSame(kc!.claims.roles, [['realm_access', 'roles']]);
  t.equal(drupal!.audienceRule, 'clientIds', 'drupal with allowedClientIds binds aud to client ids');
  t.equal(drupal!.requireIssuer, false);
  t.strictSame(drupal!.claims.subject, [['sub'], ['aud']]);
  t.equal(cognito!.audienceRule, 'clientIdClaim');
  t.strictSame(cognito!.requiredClaims, [[['token_use'], 'access']]);
  t.strictSame(entra!.requiredClaims, [[['ver'], '2.0'], [['tid'], 'tid']], 'override adds to the profile');
  t.strictSame(entra!.claims.subject, [['oid']], 'override replaces the candidates');
  t.strictSame(entra!.claims.roles, [['roles'], ['groups']]);
  t.strictSame(entra!.forbiddenHeaderParams, ['nonce']);
  t.strictSame(entra!.audience, ['api://mcp']);
  t.strictSame(hs!.algorithms, ['HS256']);
  t.equal(Buffer.from(hs!.sharedSecret!).toString(), 'a-shared-secret-of-at-least-32-bytes!!', 'secret read from file, trailing newline dropped');
  t.strictSame(opaque!.introspection, {
    endpoint: 'https://opaque.example.com/introspect',
    clientId: 'gateway',
    clientSecret: 'introspection-secret',
    authMethod: 'client_secret_post',
    cacheTtlMs: 30_000,
    negativeCacheTtlMs: 10_000,
    timeoutMs: 5_000,
  });
  const [mcp, dr] = config.routes;
  t.strictSame(mcp!.issuers, ['https://kc.example.com/realms/r', 'https://opaque.example.com']);
  t.strictSame(dr!.issuers, ['https://drupal.example.com/']);
  t.equal(mcp!.identityHeaders.roles, 'X-Roles');
  const p = mcp!.policy!;
  t.strictSame(p.default, ['mcp:access']);
  t.strictSame([...p.methods], [['tools/call', ['mcp:tools']]]);
  t.strictSame(p.tools, [['delete_node', ['mcp:admin']], ['search_*', ['mcp:read', 'offline_access']]]);
  t.strictSame(p.resources, [['drupal://node/*', ['mcp:read']]]);
  t.strictSame(p.prompts, [['summarize', ['mcp:tools']]]);
  t.equal(p.filterToolsList, true, 'filtering is on by default when tools has entries');
  t.equal(dr!.policy, undefined);
  t.equal(config.mirrorAuthorizationServerMetadata, 'https://kc.example.com/realms/r');
  t.match(config.warnings.join('\n'), /authorizationServers\[1\]: aud is checked against allowedClientIds \(client binding\), which is weaker/);
  t.match(config.warnings.join('\n'), /authorizationServers\[2\]: cognito tokens carry no audience; they are bound to allowedClientIds/);
  t.match(config.warnings.join('\n'), /authorizationServers\[1\]\.requireIssuer is false/);
  t.notMatch(config.warnings.join('\n'), /introspection-secret|at-least-32/, 'no secret in any warning');
});

t.test('a secret file readable by others is accepted with a warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-secret-'));
  const file = join(dir, 'secret');
  writeFileSync(file, 'x'.repeat(40));
  chmodSync(file, 0o644);
  const config = parseConfig(MINIMAL.replace('  - issuer: https://as.example.com\n', `  - issuer: https://as.example.com\n    sharedSecret: { fromFile: ${file} }\n`), { env: {}, baseDir: dir });
  t.ok(config.warnings.some((w) => w === `authorizationServers[0].sharedSecret.fromFile: ${file} is readable by group or others: restrict it to mode 0600`));
});

t.test('limits.maxBatchMessages: a whole number of messages from 1 to 1000000; absent: no cap (null)', async (t) => {
  t.equal(parse(MINIMAL).limits.maxBatchMessages, null, 'absent: no cap');
  t.equal(parse(`limits:\n  maxBatchMessages: 1\n${MINIMAL}`).limits.maxBatchMessages, 1);
  t.equal(parse(`limits:\n  maxBatchMessages: 1000000\n${MINIMAL}`).limits.maxBatchMessages, 1_000_000);
  const bad: Array<[string, RegExp]> = [
    ['0', /^limits\.maxBatchMessages: not positive: must be at least 1 message$/],
    ['-5', /^limits\.maxBatchMessages: not positive: must be at least 1 message$/],
    ['1.5', /^limits\.maxBatchMessages: not an integer: /],
    ['1000001', /^limits\.maxBatchMessages: too large: must be at most 1000000 messages$/],
    ['"100"', /^limits\.maxBatchMessages: /],
    ['null', /^limits\.maxBatchMessages: /]
  ];
  for (const [value, expected] of bad) {
    const problems = problemsOf(t, () => parse(`limits:\n  maxBatchMessages: ${value}\n${MINIMAL}`));
    t.equal(problems.length, 1, `${value}: one problem`);
    t.match(problems[0], expected, `${value}: ${problems[0]}`);
  }
});
