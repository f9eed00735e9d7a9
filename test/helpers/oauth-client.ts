/**
 * An in-memory OAuthClientProvider for the MCP SDK client, whose "browser"
 * is {@link completeDevLogin} by default: the authorization redirect is
 * driven over plain HTTP against the test AS and the resulting code is kept
 * for `auth(..., { authorizationCode })` or `transport.finishAuth(code)`.
 * The `browser` option swaps in a real one (test/helpers/browser.ts).
 */
import { auth, type OAuthClientProvider, type OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';

import { completeDevLogin } from './as.js';

/** Options for {@link MemoryOAuthProvider}. */
export interface MemoryOAuthProviderOptions {
  /** Redirect URI registered via DCR (never fetched). Default `http://127.0.0.1/callback`. */
  redirectUrl?: string;
  /** Account to sign in as on the dev login page. Default `alice`. */
  user?: string;
  /** Merged over the default DCR metadata (public client, auth code + refresh token). */
  clientMetadata?: Partial<OAuthClientMetadata>;
  /** Pre-registered client information (skips DCR). */
  clientInformation?: OAuthClientInformationMixed;
  /**
   * Opens the authorization URL and resolves with the redirect to
   * `redirectUrl` that carries `?code=`. Default: {@link completeDevLogin}
   * as `user`, over plain HTTP.
   */
  browser?: (authorizationUrl: URL) => Promise<URL>;
}

/** In-memory {@link OAuthClientProvider} that completes the dev login itself. */
export class MemoryOAuthProvider implements OAuthClientProvider {
  private readonly redirect: string;
  private readonly user: string;
  private readonly metadataOverrides: Partial<OAuthClientMetadata>;
  private clientInfo: OAuthClientInformationMixed | undefined;
  private savedTokens: OAuthTokens | undefined;
  private verifier: string | undefined;
  private discovery: OAuthDiscoveryState | undefined;
  private readonly browser: (authorizationUrl: URL) => Promise<URL>;

  /** Authorization URLs the SDK asked us to open, in order. */
  readonly authorizationUrls: URL[] = [];
  /** Every token response saved, in order (the latest is also {@link tokens}). */
  readonly tokenHistory: OAuthTokens[] = [];
  /** Code from the last completed authorization, until {@link takeAuthorizationCode}. */
  authorizationCode: string | undefined;

  constructor(opts: MemoryOAuthProviderOptions = {}) {
    this.redirect = opts.redirectUrl ?? 'http://127.0.0.1/callback';
    this.user = opts.user ?? 'alice';
    this.metadataOverrides = opts.clientMetadata ?? {};
    this.clientInfo = opts.clientInformation;
    this.browser = opts.browser ?? ((url) => completeDevLogin(url.href, this.user));
  }

  get redirectUrl(): string {
    return this.redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'mcp-auth-gateway test client',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...this.metadataOverrides,
    };
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.clientInfo;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.clientInfo = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.savedTokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.savedTokens = tokens;
    this.tokenHistory.push(tokens);
  }

  /** Drives the login/consent pages through the browser and keeps the code. */
  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.authorizationUrls.push(authorizationUrl);
    const callback = await this.browser(authorizationUrl);
    const code = callback.searchParams.get('code');
    if (!code) throw new Error(`no code in ${callback.href}`);
    this.authorizationCode = code;
  }

  /** Returns the pending authorization code once. */
  takeAuthorizationCode(): string {
    const code = this.authorizationCode;
    if (!code) throw new Error('no pending authorization code');
    this.authorizationCode = undefined;
    return code;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state;
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.discovery;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'client') this.clientInfo = undefined;
    if (scope === 'all' || scope === 'tokens') this.savedTokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }
}

/**
 * Runs the SDK's whole `auth()` flow (discovery, DCR, PKCE, dev login, code
 * exchange) to completion and returns the tokens.
 *
 * @param serverUrl the MCP server (resource) URL
 * @param opts.resourceMetadataUrl PRM URL, when it is not discoverable from serverUrl
 * @param opts.scope scope to request (else PRM scopes_supported, else client metadata scope)
 */
export async function runOAuthFlow(
  provider: MemoryOAuthProvider,
  serverUrl: string | URL,
  opts: { resourceMetadataUrl?: URL; scope?: string; fetchFn?: typeof fetch } = {},
): Promise<OAuthTokens> {
  const common = { serverUrl, resourceMetadataUrl: opts.resourceMetadataUrl, scope: opts.scope, fetchFn: opts.fetchFn };
  let result = await auth(provider, common);
  if (result === 'REDIRECT') {
    result = await auth(provider, { ...common, authorizationCode: provider.takeAuthorizationCode() });
  }
  const tokens = provider.tokens();
  if (result !== 'AUTHORIZED' || !tokens) throw new Error(`OAuth flow did not complete (${result})`);
  return tokens;
}
