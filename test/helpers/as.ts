/**
 * A real, in-process OAuth 2.1 / OIDC authorization server for tests, built on
 * oidc-provider 9 (see shared/reference/provider-tokens.md §9).
 *
 * It issues RFC 9068-shaped JWT access tokens (or opaque ones) per registered
 * resource, supports client_credentials, open DCR, PKCE (S256, required),
 * introspection, revocation, refresh tokens (offline_access) and the
 * devInteractions login/consent pages, which {@link completeDevLogin} drives
 * over plain HTTP. Pre-registered clients: `m2m` (client_credentials),
 * `gatewayBasic` / `gatewayPost` (a resource server's introspection client,
 * one per client authentication method) and `user` (a public auth-code
 * client for {@link TestAS.userTokens}). Requests are counted per path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
// oidc-provider ships no type declarations and @types/oidc-provider is not
// installed (no new dependencies); the import is untyped and re-typed below.
// @ts-ignore TS7016 (ts-ignore rather than ts-expect-error so adding @types later does not break the build)
import ProviderUntyped, { errors as errorsUntyped } from 'oidc-provider';

/** The part of an oidc-provider `Provider` instance tests use (the module is untyped here). */
export interface OidcProvider {
  /** The issuer identifier, exactly as passed to the constructor. */
  readonly issuer: string;
  /** Node request listener for the provider's Koa app. */
  callback(): RequestListener;
  /** Provider events such as `server_error`, `grant.error`, `access_token.issued`. */
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  /** Mounted behind a TLS-terminating proxy: trust X-Forwarded-*. */
  proxy: boolean;
}

type ProviderCtor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
const Provider = ProviderUntyped as ProviderCtor;
const oidcErrors = errorsUntyped as {
  InvalidTarget: new (description?: string) => Error;
  InvalidClientMetadata: new (description?: string) => Error;
  InvalidGrant: new (description?: string) => Error;
  InvalidRequest: new (description?: string) => Error;
};

/** RFC 8693 §2.1 / §3 identifiers. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** The slice of a provider token the token-exchange grant reads and writes (the module is untyped here). */
interface ProviderToken {
  accountId?: string;
  isExpired?: boolean;
  resourceServer?: unknown;
  expiration: number;
  save(): Promise<string>;
}
/** The slice of the koa context the token-exchange grant uses. */
interface GrantContext {
  oidc: { params: Record<string, string | undefined>; client: unknown };
  body: unknown;
}

/** Scopes oidc-provider knows without configuration (`openid`) plus refresh tokens. */
const STATIC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access']);

/** A protected resource (an RFC 8707 resource indicator) the AS issues tokens for. */
export interface ResourceInfo {
  /** The resource indicator; becomes the token's `aud`. */
  url: string;
  /** Space-separated scopes this resource accepts, e.g. `mcp:tools`. */
  scope: string;
  /** Access token format; `jwt` (default) or `opaque` (introspectable). */
  format?: 'jwt' | 'opaque';
  /** JWT signing alg (default ES256). */
  alg?: 'ES256' | 'RS256' | 'PS256' | 'EdDSA';
  /** Access token lifetime (default 600 s). */
  ttlSeconds?: number;
}

/** A running test authorization server. */
export interface TestAS {
  /** e.g. `http://127.0.0.1:<port>`, no trailing slash. */
  issuer: string;
  provider: OidcProvider;
  /**
   * Registers a resource. May be called after start; the first one
   * registered is the default resource for requests that omit `resource`.
   * Its scopes become acceptable in DCR client metadata `scope`.
   */
  registerResource(r: ResourceInfo): void;
  /**
   * Gets an access token with client_credentials and client_secret_basic.
   * Defaults: the m2m client, the default resource, and that resource's scopes.
   * Throws an Error carrying the HTTP status and body on failure.
   */
  clientCredentialsToken(opts?: { clientId?: string; clientSecret?: string; scope?: string; resource?: string }): Promise<string>;
  /**
   * Pre-registered clients:
   * - `m2m`: confidential, grant type client_credentials only;
   * - `gatewayBasic` / `gatewayPost`: confidential, no grants, for RFC 7662
   *   introspection with client_secret_basic / client_secret_post (oidc-provider
   *   authenticates introspection with the client's token_endpoint_auth_method).
   *   Their secrets contain characters that RFC 6749 §2.3.1 form-encoding changes.
   */
  clients: {
    m2m: { id: string; secret: string };
    gatewayBasic: { id: string; secret: string };
    gatewayPost: { id: string; secret: string };
    /**
     * `gateway-exchange`: the gateway's own confidential client (client_secret_basic)
     * with the client_credentials and RFC 8693 token-exchange grants, for upstreamAuth.
     */
    gatewayExchange: { id: string; secret: string };
    /** `gateway-exchange-post`: the same grants, with client_secret_post. */
    gatewayExchangePost: { id: string; secret: string };
  };
  /**
   * Token requests that reached a grant handler, by grant type (e.g.
   * `client_credentials`, {@link TOKEN_EXCHANGE_GRANT}), whether they succeeded or not.
   */
  grantCount(grantType: string): number;
  /**
   * Revokes a token at `/token/revocation` (RFC 7009) as the m2m client
   * (the test AS lets any authenticated client revoke any token).
   */
  revokeToken(token: string): Promise<void>;
  /**
   * Authorization code + PKCE as the public `user` client, through the dev
   * login page. `offline_access` is added to the scope, so a refresh token is
   * issued. Defaults: the default resource and its scopes, user `alice`.
   */
  userTokens(opts?: { resource?: string; scope?: string; user?: string }): Promise<{ accessToken: string; refreshToken: string }>;
  /** How many requests reached this path (e.g. `/token/introspection`), whatever their outcome. */
  requestCount(path: string): number;
  /** Public signing keys, one per alg (also served at `${issuer}/jwks`). */
  publicJwks: JWK[];
  close(): Promise<void>;
}

type SigningAlg = NonNullable<ResourceInfo['alg']>;

/** One signing key per alg, so a token's alg determines its kid. */
async function makeSigningKeys(): Promise<JWK[]> {
  const algs: { alg: SigningAlg; gen: string; opts?: { crv?: string; modulusLength?: number } }[] = [
    { alg: 'ES256', gen: 'ES256' },
    { alg: 'RS256', gen: 'RS256', opts: { modulusLength: 2048 } },
    { alg: 'PS256', gen: 'PS256', opts: { modulusLength: 2048 } },
    { alg: 'EdDSA', gen: 'EdDSA', opts: { crv: 'Ed25519' } },
  ];
  return Promise.all(
    algs.map(async ({ alg, gen, opts }) => {
      const { privateKey } = await generateKeyPair(gen, { ...opts, extractable: true });
      const jwk = await exportJWK(privateKey);
      return { ...jwk, kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`, alg, use: 'sig' };
    }),
  );
}

function publicPart(jwk: JWK): JWK {
  // Drop the private members of RSA, EC and OKP keys.
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}

/**
 * Starts the authorization server on 127.0.0.1 (an ephemeral port).
 *
 * @param opts.host host name used in the issuer URL (default `127.0.0.1`,
 *   e.g. `localhost`); the socket is bound to 127.0.0.1 regardless.
 * @param opts.port fixed port (default: an ephemeral one); the demo uses this.
 * @param opts.m2mSecret fixed secret for the m2m client (default: random).
 */
export async function startAuthServer(opts: { host?: string; port?: number; m2mSecret?: string } = {}): Promise<TestAS> {
  // Listen first: the issuer must contain the port, and the Provider needs the issuer.
  let listener: RequestListener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    counts.set(path, (counts.get(path) ?? 0) + 1);
    listener(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${opts.host ?? '127.0.0.1'}:${port}`;

  const keys = await makeSigningKeys();
  const resources = new Map<string, ResourceInfo>();
  const resourceScopes = (): Set<string> =>
    new Set([...resources.values()].flatMap((r) => r.scope.split(' ').filter(Boolean)));
  const m2m = { id: 'm2m', secret: opts.m2mSecret ?? randomBytes(16).toString('base64url') };
  // ' ', '+', ':', '%', '&' and '=' all change under form-urlencoding: a client that skips it fails.
  const gatewayBasic = { id: 'gateway basic:1', secret: `${randomBytes(12).toString('base64url')} +:%&=` };
  const gatewayPost = { id: 'gateway-post', secret: `${randomBytes(12).toString('base64url')} +:%&=` };
  const gatewayExchange = { id: 'gateway-exchange', secret: `${randomBytes(12).toString('base64url')} +:%&=` };
  const gatewayExchangePost = { id: 'gateway-exchange-post', secret: `${randomBytes(12).toString('base64url')} +:%&=` };
  const user = { id: 'user-app', redirectUri: 'http://127.0.0.1/callback' };
  const ttlFromResource = (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }): number =>
    token.resourceServer?.accessTokenTTL ?? 600;

  const provider = new Provider(issuer, {
    jwks: { keys },
    clients: [
      {
        client_id: m2m.id,
        client_secret: m2m.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      ...[
        [gatewayBasic, 'client_secret_basic'],
        [gatewayPost, 'client_secret_post'],
      ].map(([c, method]) => ({
        client_id: (c as typeof gatewayBasic).id,
        client_secret: (c as typeof gatewayBasic).secret,
        token_endpoint_auth_method: method,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      })),
      ...[
        [gatewayExchange, 'client_secret_basic'],
        [gatewayExchangePost, 'client_secret_post'],
      ].map(([c, method]) => ({
        client_id: (c as typeof gatewayExchange).id,
        client_secret: (c as typeof gatewayExchange).secret,
        token_endpoint_auth_method: method,
        grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT],
        response_types: [],
        redirect_uris: [],
      })),
      {
        client_id: user.id,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [user.redirectUri],
      },
    ],
    scopes: [...STATIC_SCOPES],
    // DCR validates client metadata `scope` against the static (OIDC) scopes
    // only, and rejects resource scopes such as mcp:tools, which the MCP SDK
    // sends (its PRM scopes_supported) when it registers. The configuration is
    // deep-copied, so resources registered later cannot extend the static set;
    // instead this validator (which runs before the built-in checks) accepts
    // registered resource scopes and keeps only the static ones in the stored
    // `scope` (oidc-provider uses client `scope` to restrict static scopes only).
    extraClientMetadata: {
      properties: ['scope'],
      validator: (_ctx: unknown, key: string, value: unknown, metadata: Record<string, unknown>) => {
        if (key !== 'scope' || typeof value !== 'string') return;
        const known = resourceScopes();
        const requested = value.split(' ').filter(Boolean);
        const unknown = requested.filter((s) => !STATIC_SCOPES.has(s) && !known.has(s));
        if (unknown.length) {
          throw new oidcErrors.InvalidClientMetadata(`unsupported scope value(s): ${unknown.join(' ')}`);
        }
        const statics = requested.filter((s) => STATIC_SCOPES.has(s));
        if (statics.length) metadata.scope = statics.join(' ');
        else delete metadata.scope;
      },
    },
    pkce: { required: () => true },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Any account id typed into the dev login page is a valid user.
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    // Browser-based tests (headless Chromium) call /token and /reg cross-origin.
    clientBasedCORS: () => true,
    // Explicit values keep oidc-provider from printing a notice per default it uses.
    ttl: {
      AccessToken: ttlFromResource,
      ClientCredentials: ttlFromResource,
      AuthorizationCode: 60,
      RefreshToken: 24 * 3600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    // JSON error pages: completeDevLogin's error messages stay readable.
    renderError: (ctx: { type: string; body: unknown }, out: Record<string, unknown>) => {
      ctx.type = 'json';
      ctx.body = out;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      registration: { enabled: true, initialAccessToken: false },
      // Test AS: any authenticated client may introspect and revoke any token.
      introspection: { enabled: true, allowedPolicy: () => true },
      revocation: { enabled: true, allowedPolicy: () => true },
      resourceIndicators: {
        enabled: true,
        // oneOf: the resources of the grant being used, when there are several.
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) =>
          oneOf ?? resources.keys().next().value,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          const r = resources.get(resource);
          if (!r) throw new oidcErrors.InvalidTarget();
          return {
            scope: r.scope,
            audience: r.url,
            accessTokenFormat: r.format ?? 'jwt',
            accessTokenTTL: r.ttlSeconds ?? 600,
            ...(r.format === 'opaque' ? {} : { jwt: { sign: { alg: r.alg ?? 'ES256' } } }),
          };
        },
      },
    },
  });
  provider.on('server_error', (_ctx: unknown, err: unknown) => {
    console.error('test AS server_error:', err);
  });
  const grants = new Map<string, number>();
  const countGrant = (ctx: unknown): void => {
    const type = (ctx as Partial<GrantContext>).oidc?.params?.grant_type;
    if (type !== undefined) grants.set(type, (grants.get(type) ?? 0) + 1);
  };
  provider.on('grant.success', countGrant);
  provider.on('grant.error', countGrant);

  // RFC 8693 token exchange as an oidc-provider custom grant. The subject token must be an
  // access token of this AS: a JWT verified with its own keys, or an opaque one in its store
  // (anything else is invalid_grant). The new token is for `resource` (or `audience`), with the
  // requested scopes that resource has (all of them when none are requested): this AS's policy
  // lets the exchanging client act for the subject at any registered resource.
  const localKeys = createLocalJWKSet({ keys: keys.map(publicPart) });
  const tokenModels = provider as unknown as {
    AccessToken: { find(v: string): Promise<ProviderToken | undefined> } & (new (init: Record<string, unknown>) => ProviderToken);
    ClientCredentials: { find(v: string): Promise<ProviderToken | undefined> };
    ResourceServer: new (id: string, info: Record<string, unknown>) => unknown;
    registerGrantType(name: string, handler: (ctx: GrantContext) => Promise<void>, params: string[]): void;
  };
  // oidc-provider calls a grant handler with the context only (lib/actions/token.js callTokenHandler).
  tokenModels.registerGrantType(TOKEN_EXCHANGE_GRANT, async (ctx) => {
    const params = ctx.oidc.params;
    if (params.subject_token === undefined || params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new oidcErrors.InvalidRequest('subject_token of type access_token is required');
    }
    let sub: string | undefined;
    try {
      ({ sub } = (await jwtVerify(params.subject_token, localKeys, { issuer, typ: 'at+jwt' })).payload);
    } catch {
      const stored = (await tokenModels.AccessToken.find(params.subject_token)) ?? (await tokenModels.ClientCredentials.find(params.subject_token));
      if (stored === undefined || stored.isExpired === true) throw new oidcErrors.InvalidGrant('subject_token is invalid');
      sub = stored.accountId;
    }
    if (sub === undefined) throw new oidcErrors.InvalidGrant('subject_token has no subject');
    const target = params.resource ?? params.audience;
    const r = target === undefined ? undefined : resources.get(target);
    if (r === undefined) throw new oidcErrors.InvalidTarget('unknown resource or audience');
    const allowed = new Set(r.scope.split(' '));
    const requested = params.scope?.split(' ') ?? [...allowed];
    const scope = requested.filter((sc) => allowed.has(sc)).join(' ');
    const token = new tokenModels.AccessToken({ accountId: sub, client: ctx.oidc.client, scope, gty: 'token_exchange' });
    token.resourceServer = new tokenModels.ResourceServer(r.url, {
      scope: r.scope,
      audience: r.url,
      accessTokenFormat: r.format ?? 'jwt',
      accessTokenTTL: r.ttlSeconds ?? 600,
      ...(r.format === 'opaque' ? {} : { jwt: { sign: { alg: r.alg ?? 'ES256' } } }),
    });
    const value = await token.save();
    ctx.body = { access_token: value, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: token.expiration, scope };
  }, ['subject_token', 'subject_token_type', 'requested_token_type', 'actor_token', 'actor_token_type', 'resource', 'audience', 'scope']);
  listener = provider.callback();

  return {
    issuer,
    provider,
    clients: { m2m, gatewayBasic, gatewayPost, gatewayExchange, gatewayExchangePost },
    grantCount: (grantType: string): number => grants.get(grantType) ?? 0,
    requestCount: (path: string): number => counts.get(path) ?? 0,
    publicJwks: keys.map(publicPart),
    registerResource(r: ResourceInfo): void {
      resources.set(r.url, r);
    },
    async clientCredentialsToken(o = {}): Promise<string> {
      const resource = o.resource ?? resources.keys().next().value;
      const scope = o.scope ?? (resource !== undefined ? resources.get(resource)?.scope : undefined);
      const body = new URLSearchParams({ grant_type: 'client_credentials' });
      if (scope) body.set('scope', scope);
      if (resource !== undefined) body.set('resource', resource);
      // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
      const basic = Buffer.from(
        `${encodeURIComponent(o.clientId ?? m2m.id)}:${encodeURIComponent(o.clientSecret ?? m2m.secret)}`,
      ).toString('base64');
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`client_credentials token request failed: ${res.status} ${text}`);
      const json = JSON.parse(text) as { access_token?: unknown };
      if (typeof json.access_token !== 'string') throw new Error(`no access_token in ${text}`);
      return json.access_token;
    },
    async revokeToken(token: string): Promise<void> {
      const basic = Buffer.from(`${encodeURIComponent(m2m.id)}:${encodeURIComponent(m2m.secret)}`).toString('base64');
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }),
      });
      // RFC 7009 §2.2: 200 whether or not the token was valid.
      if (res.status !== 200) throw new Error(`revocation failed: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    },
    async userTokens(o = {}): Promise<{ accessToken: string; refreshToken: string }> {
      const resource = o.resource ?? resources.keys().next().value;
      if (resource === undefined) throw new Error('userTokens: no resource registered');
      const scope = `${o.scope ?? resources.get(resource)?.scope ?? ''} offline_access`.trim();
      const verifier = randomBytes(32).toString('base64url');
      const authz = new URL(`${issuer}/auth`);
      authz.search = new URLSearchParams({
        client_id: user.id,
        response_type: 'code',
        redirect_uri: user.redirectUri,
        scope,
        resource,
        // offline_access is only granted with an explicit consent prompt (OIDC Core §11).
        prompt: 'consent',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        state: randomBytes(8).toString('hex'),
      }).toString();
      const callback = await completeDevLogin(authz.href, o.user);
      const code = callback.searchParams.get('code');
      if (code === null) throw new Error(`userTokens: no code in ${callback.href}`);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: user.redirectUri,
          code_verifier: verifier,
          client_id: user.id,
          resource,
        }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`userTokens: token request failed: ${res.status} ${text}`);
      const json = JSON.parse(text) as { access_token?: unknown; refresh_token?: unknown };
      if (typeof json.access_token !== 'string' || typeof json.refresh_token !== 'string') {
        throw new Error(`userTokens: no access_token and refresh_token in ${text}`);
      }
      return { accessToken: json.access_token, refreshToken: json.refresh_token };
    },
    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Minimal path-aware cookie jar for a single origin. */
class CookieJar {
  private readonly cookies = new Map<string, { name: string; value: string; path: string }>();

  store(setCookies: string[], requestUrl: URL): void {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      // RFC 6265 default-path: the request path up to its last '/'.
      let path = requestUrl.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${name}\0${path}`;
      if (expired) this.cookies.delete(id);
      else this.cookies.set(id, { name, value, path });
    }
  }

  header(url: URL): string {
    const p = url.pathname;
    return [...this.cookies.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

/**
 * Drives oidc-provider's devInteractions login and consent pages over plain
 * HTTP: follows redirects from `authorizationUrl` with a cookie jar, signs in
 * as `user` (any password is accepted), consents to everything requested, and
 * returns the redirect URL that carries `?code=` (it is not fetched).
 *
 * Throws if the AS redirects back with `?error=`, or on an unexpected page.
 */
export async function completeDevLogin(authorizationUrl: string, user = 'alice'): Promise<URL> {
  const jar = new CookieJar();
  let url = new URL(authorizationUrl);
  const asOrigin = url.origin;
  let form: URLSearchParams | undefined;

  for (let hop = 0; hop < 25; hop++) {
    const cookie = jar.header(url);
    const headers: Record<string, string> = {};
    if (cookie) headers.cookie = cookie;
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method: form ? 'POST' : 'GET', headers, body: form, redirect: 'manual' });
    jar.store(res.headers.getSetCookie(), url);
    form = undefined;

    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (!location) throw new Error(`completeDevLogin: ${res.status} without Location at ${url.href}`);
      const next = new URL(location, url);
      if (next.searchParams.has('code')) return next;
      if (next.searchParams.has('error')) {
        throw new Error(
          `completeDevLogin: AS returned error=${next.searchParams.get('error')} ` +
            `(${next.searchParams.get('error_description') ?? ''})`,
        );
      }
      if (next.origin !== asOrigin) throw new Error(`completeDevLogin: left the AS without a code: ${next.href}`);
      url = next;
      continue;
    }

    const html = await res.text();
    if (res.status !== 200) {
      throw new Error(`completeDevLogin: ${res.status} at ${url.href}: ${html.slice(0, 500)}`);
    }
    // The form posts back to the page's own URL (/interaction/:uid); honour an explicit action anyway.
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (action) url = new URL(action.replace(/&amp;/g, '&'), url);
    if (html.includes('name="prompt" value="login"')) {
      form = new URLSearchParams({ prompt: 'login', login: user, password: 'x' });
    } else if (html.includes('name="prompt" value="consent"')) {
      form = new URLSearchParams({ prompt: 'consent' });
    } else {
      throw new Error(`completeDevLogin: unexpected page at ${url.href}: ${html.slice(0, 500)}`);
    }
  }
  throw new Error('completeDevLogin: too many redirects');
}
