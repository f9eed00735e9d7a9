/**
 * Provider profiles (shared/reference/provider-tokens.md): for each kind of
 * authorization server, where identity lives in its tokens and which quirks
 * the gateway must check. The loader resolves a profile plus the issuer's
 * overrides into explicit IssuerConfig fields, so the auth layer stays generic.
 */
import type { ProfileName } from './types.js'

export interface ProfileDefaults {
  /** Claim paths as written in YAML (dotted for nested claims). */
  readonly claims: {
    readonly subject: readonly string[]
    readonly clientId: readonly string[]
    readonly scopes: readonly string[]
    readonly roles: readonly string[]
  }
  readonly requiredClaims: Readonly<Record<string, string | number | boolean>>
  readonly forbiddenAudiences: readonly string[]
  readonly forbiddenHeaderParams: readonly string[]
  /**
   * `aud` handling: resource binding (RFC 8707), or client binding where the
   * provider cannot put the resource in `aud` (weaker; a startup warning says so).
   */
  readonly audience: 'resource' | 'clientIdsWhenListed' | 'clientIdClaim'
  /** The profile is unusable without an explicit `audience` (the provider's aud never is the MCP URL). */
  readonly requiresAudience: boolean
}

const GENERIC_CLIENT_ID = ['client_id', 'azp', 'cid', 'appid']

export const PROFILES: Readonly<Record<ProfileName, ProfileDefaults>> = {
  generic: {
    // RFC 9068 §2.2: sub is the client id for client_credentials; some servers (oidc-provider introspection) omit it then.
    claims: { subject: ['sub', 'client_id'], clientId: GENERIC_CLIENT_ID, scopes: ['scope', 'scp', 'scopes'], roles: [] },
    requiredClaims: {},
    forbiddenAudiences: [],
    forbiddenHeaderParams: [],
    audience: 'resource',
    requiresAudience: false
  },
  // simple_oauth: aud is the client id (not patchable), scope a JSON array, no sub for client_credentials.
  drupal: {
    claims: { subject: ['sub', 'aud'], clientId: ['client_id', 'aud'], scopes: ['scope', 'scopes'], roles: [] },
    requiredClaims: {},
    forbiddenAudiences: [],
    forbiddenHeaderParams: [],
    audience: 'clientIdsWhenListed',
    requiresAudience: false
  },
  // Keycloak: aud "account" comes from the Audience Resolve mapper and lets any realm client replay tokens.
  keycloak: {
    claims: { subject: ['sub'], clientId: ['azp'], scopes: ['scope'], roles: ['realm_access.roles'] },
    requiredClaims: { typ: 'Bearer' },
    forbiddenAudiences: ['account'],
    forbiddenHeaderParams: [],
    audience: 'resource',
    requiresAudience: false
  },
  auth0: {
    claims: { subject: ['sub'], clientId: ['client_id', 'azp'], scopes: ['scope'], roles: ['permissions'] },
    requiredClaims: {},
    forbiddenAudiences: [],
    forbiddenHeaderParams: [],
    audience: 'resource',
    requiresAudience: false
  },
  // Okta: sub is the login (an email); uid is the stable user id.
  okta: {
    claims: { subject: ['uid', 'sub'], clientId: ['cid'], scopes: ['scp'], roles: [] },
    requiredClaims: {},
    forbiddenAudiences: [],
    forbiddenHeaderParams: [],
    audience: 'resource',
    requiresAudience: false
  },
  // Entra v2: aud is the API's client-id GUID (or App ID URI); sub is pairwise, oid is stable per tenant;
  // Graph tokens carry a nonce header and cannot be validated.
  entra: {
    claims: { subject: ['oid', 'sub'], clientId: ['azp', 'appid'], scopes: ['scp'], roles: ['roles'] },
    requiredClaims: { ver: '2.0' },
    forbiddenAudiences: [],
    forbiddenHeaderParams: ['nonce'],
    audience: 'resource',
    requiresAudience: true
  },
  // Cognito access tokens have no aud; token_use tells them from ID tokens.
  cognito: {
    claims: { subject: ['sub'], clientId: ['client_id'], scopes: ['scope'], roles: ['cognito:groups'] },
    requiredClaims: { token_use: 'access' },
    forbiddenAudiences: [],
    forbiddenHeaderParams: [],
    audience: 'clientIdClaim',
    requiresAudience: false
  }
}

export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[]
