/**
 * The normalised, frozen configuration handed to the rest of the gateway.
 * Every default is already applied; every URL is already parsed and checked.
 * Core modules import these types only, never the loader.
 */
import type { KeyObject } from 'node:crypto'

/** Provider profiles: each sets claim mapping, audience rule, required claims and quirks (config/profiles.ts). */
export type ProfileName = 'generic' | 'drupal' | 'keycloak' | 'auth0' | 'okta' | 'entra' | 'cognito'

/** How an issuer's tokens are validated: locally as JWTs, by RFC 7662 introspection, or by shape. */
export type TokenType = 'jwt' | 'opaque' | 'auto'

/** A claim location: the claim name, or the path of names into nested objects (`realm_access.roles` → ['realm_access', 'roles']). */
export type ClaimPath = readonly string[]

/** Where the principal's fields are read from. Already resolved from the profile and overrides. */
export interface ClaimMapping {
  /** Candidates in order; the first present non-empty string wins. */
  readonly subject: readonly ClaimPath[]
  /** Candidates in order; the first present non-empty string wins. */
  readonly clientId: readonly ClaimPath[]
  /** Union of every listed claim; each a space-separated string or a list of strings. */
  readonly scopes: readonly ClaimPath[]
  /** Union of every listed claim (lists of strings); used for headers and logs, never for scope checks. */
  readonly roles: readonly ClaimPath[]
}

/**
 * How `aud` is checked, resolved from the profile:
 * - `resource`: `aud` must contain one of {@link IssuerConfig.audience}, or the route's resource when that is undefined;
 * - `clientIds`: `aud` must contain one of {@link IssuerConfig.allowedClientIds} (drupal; client binding, weaker);
 * - `clientIdClaim`: no `aud` check; the mapped client id must be in `allowedClientIds` (cognito; weaker).
 */
export type AudienceRule = 'resource' | 'clientIds' | 'clientIdClaim'

/** RFC 7662 client settings for one issuer. */
export interface IntrospectionConfig {
  readonly endpoint: string
  readonly clientId: string
  /** Resolved at load time from `{ fromEnv }` or `{ fromFile }`. Never logged. */
  readonly clientSecret: string
  readonly authMethod: 'client_secret_basic' | 'client_secret_post'
  /** Upper bound on how long an active result is trusted (it is also capped by `exp`). */
  readonly cacheTtlMs: number
  /** How long an inactive result is remembered (stops floods of the same bad token). */
  readonly negativeCacheTtlMs: number
  readonly timeoutMs: number
}

/** One trusted authorization server. */
export interface IssuerConfig {
  /** Exactly as configured; compared byte for byte with `iss` and with the metadata `issuer`. */
  readonly issuer: string
  readonly profile: ProfileName
  readonly tokenType: TokenType
  /** Explicit JWKS URL, or undefined to discover it from the AS metadata. */
  readonly jwksUri: string | undefined
  /** Explicit metadata URL, or undefined to try RFC 8414 then OIDC discovery. */
  readonly metadataUrl: string | undefined
  /** Accepted JWS algorithms: all asymmetric, or (with {@link sharedSecret}) all HS*. Never mixed. */
  readonly algorithms: readonly string[]
  /** HS* key, resolved at load time. When set the issuer has no JWKS and accepts only HS* algorithms. */
  readonly sharedSecret: Uint8Array | undefined
  readonly audienceRule: AudienceRule
  /** Accepted audiences for the `resource` rule; undefined means "the resource URL of the route being called". */
  readonly audience: readonly string[] | undefined
  /** Client ids accepted by the `clientIds` / `clientIdClaim` audience rules. */
  readonly allowedClientIds: readonly string[] | undefined
  /** `aud` values that are refused even if listed (keycloak `account`). */
  readonly forbiddenAudiences: readonly string[]
  /** False only when set explicitly: tokens without `iss` are then accepted, pinned by this issuer's keys. */
  readonly requireIssuer: boolean
  /** Claims that must be present with exactly this value: [path, value]. */
  readonly requiredClaims: ReadonlyArray<readonly [ClaimPath, string | number | boolean]>
  /** JWS header parameters whose presence rejects the token (entra `nonce`: Graph tokens). */
  readonly forbiddenHeaderParams: readonly string[]
  readonly claims: ClaimMapping
  readonly clockToleranceSeconds: number
  /** RFC 7662 settings; set when tokenType is `opaque` or `auto`. */
  readonly introspection: IntrospectionConfig | undefined
}

/** Scopes required per JSON-RPC operation on one route. Glob keys use `*` only. */
export interface PolicyConfig {
  /** Required for every request of the route (union with the other matches). */
  readonly default: readonly string[]
  /** By JSON-RPC method, e.g. tools/call. */
  readonly methods: ReadonlyMap<string, readonly string[]>
  /** By tool name (tools/call `params.name`), exact or glob; every matching entry applies. */
  readonly tools: ReadonlyArray<readonly [pattern: string, scopes: readonly string[]]>
  /** By resource URI (resources/read, resources/subscribe, resources/unsubscribe `params.uri`). */
  readonly resources: ReadonlyArray<readonly [pattern: string, scopes: readonly string[]]>
  /** By prompt name (prompts/get `params.name`). */
  readonly prompts: ReadonlyArray<readonly [pattern: string, scopes: readonly string[]]>
  /** Remove tools the caller may not call from tools/list results. Default: true when `tools` has entries. */
  readonly filterToolsList: boolean
}

/** Names of the identity headers sent upstream. */
export interface IdentityHeaderNames {
  readonly subject: string
  readonly clientId: string
  readonly scopes: string
  readonly issuer: string
  /** Sent only when the principal has roles. */
  readonly roles: string
}

/** A signed identity assertion for the upstream (routes[].identityAssertion). */
export interface IdentityAssertionConfig {
  /** `aud` claim: the configured value or the upstream origin. */
  readonly audience: string
  /** Lifetime (`exp` − `iat`), at most 60 s. */
  readonly ttlSeconds: number
  /** Header name, lowercased. */
  readonly header: string
  /** Reuse one signed assertion per principal for up to half its lifetime; false: a fresh one (new jti) per request. */
  readonly reuse: boolean
}

/** OAuth client settings of the gateway at a token endpoint (client credentials, token exchange). */
export interface UpstreamTokenClientConfig {
  /** Header name, lowercased; the value is `Bearer <token>`. */
  readonly header: string
  readonly tokenEndpoint: string
  readonly clientId: string
  /** Resolved at load time. Never logged. */
  readonly clientSecret: string
  readonly authMethod: 'client_secret_basic' | 'client_secret_post'
  /** Space-separated, or undefined to request none. */
  readonly scope: string | undefined
  readonly resource: string | undefined
  readonly audience: string | undefined
  readonly timeoutMs: number
}

/** The credential sent upstream in place of the client's token (routes[].upstreamAuth). */
export type UpstreamAuthConfig =
  | { readonly type: 'none' }
  /** A static header: `header` lowercased, `value` resolved at load time and never logged. */
  | { readonly type: 'header', readonly header: string, readonly value: string }
  | ({ readonly type: 'clientCredentials' } & UpstreamTokenClientConfig)
  | ({ readonly type: 'tokenExchange' } & UpstreamTokenClientConfig)

/** A private key for identity assertions, parsed at load time. */
export interface SigningKeyConfig {
  /** `kid` in the JWKS and in the JWS header. */
  readonly kid: string
  /** Node KeyObject of type private. */
  readonly privateKey: KeyObject
}

/** At most `max` requests per fixed window of `windowMs`. */
export interface RateWindow {
  readonly max: number
  readonly windowMs: number
}

/** rateLimits: each limit is undefined when not configured. */
export interface RateLimitsConfig {
  /** memory: per process; redis: shared by every replica through the top-level redis connection. */
  readonly store: 'memory' | 'redis'
  /** deny: 503 while the store fails (fail closed); allow: requests pass unlimited. */
  readonly onStoreError: 'deny' | 'allow'
  /** Per client IP, before authentication. */
  readonly perIp: RateWindow | undefined
  /** Per issuer and subject (or client id), after authentication. */
  readonly perPrincipal: (RateWindow & { readonly key: 'subject' | 'clientId' }) | undefined
  /** Per caller and tools/call name, on policy routes. */
  readonly perTool: RateWindow | undefined
}

/** One protected route. */
export interface RouteConfig {
  /** Stable label used in logs: the configured path. */
  readonly id: string
  /** Public path prefix, e.g. /mcp (no trailing slash). */
  readonly path: string
  /** Upstream origin, e.g. http://127.0.0.1:3001 */
  readonly upstreamOrigin: string
  /** Upstream base path without trailing slash ('' for the root). */
  readonly upstreamPath: string
  /** The route's resource identifier (RFC 8707 / RFC 9728 `resource`). */
  readonly resource: string
  /** Absolute URL of this route's protected-resource metadata document. */
  readonly resourceMetadataUrl: string
  /** Scopes required on every request. */
  readonly scopes: readonly string[]
  /** Issuers this route trusts (a subset of authorizationServers[].issuer); tokens are routed by `iss`. */
  readonly issuers: readonly string[]
  /** Per-operation scopes; undefined when the route does not inspect bodies. */
  readonly policy: PolicyConfig | undefined
  readonly identityHeaders: IdentityHeaderNames
  /** Extra upstream headers: [header name, claim path split on dots]. */
  readonly claimHeaders: ReadonlyArray<readonly [string, readonly string[]]>
  /** Signed identity assertion; undefined: none is sent. */
  readonly identityAssertion: IdentityAssertionConfig | undefined
  readonly upstreamAuth: UpstreamAuthConfig
  /** Browser origins accepted on this route, serialised (policy/origin.ts); `*` accepts every origin; empty refuses every Origin. */
  readonly allowedOrigins: readonly string[]
  readonly timeouts: {
    readonly connectMs: number
    readonly headersMs: number
    readonly idleMs: number
  }
}

export interface ListenConfig {
  readonly host: string
  readonly port: number
  /** PEM contents, read at load time. */
  readonly tls: { readonly cert: Buffer, readonly key: Buffer } | undefined
}

/** Session binding (sessions:): session ids recorded against the identity that created them (session/binding.ts). */
export interface SessionsConfig {
  /** memory: per process; redis: shared by every replica through the top-level redis connection. */
  readonly store: 'memory' | 'redis'
  /** A binding unused this long is forgotten; every use and every open stream of the session refreshes it. */
  readonly idleTtlMs: number
  /** deny: 503 while the store fails (fail closed); allow: such requests are forwarded unchecked. */
  readonly onStoreError: 'deny' | 'allow'
}

/** The shared Redis connection (redis:), used by every store set to `redis` (session/redis.ts). */
export interface RedisConfig {
  /** The URL as configured; it never holds credentials, so it may be logged. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Database number from the URL path; 0 by default. */
  readonly db: number
  /** rediss://: TLS, verified against the system CAs (NODE_EXTRA_CA_CERTS adds more). */
  readonly tls: boolean
  /** ACL user (Redis 6+); undefined: the default user. */
  readonly username: string | undefined
  /** Resolved at load time. Never logged. */
  readonly password: string | undefined
  /** Prefix of every key the gateway writes. */
  readonly keyPrefix: string
  readonly connectTimeoutMs: number
  /** A command without a reply within this is failed (then the store's fail mode applies). */
  readonly commandTimeoutMs: number
}

/** Prometheus metrics (metrics:; observability/metrics.ts). */
export interface MetricsConfig {
  readonly enabled: boolean
  /** Path of the Prometheus text endpoint. */
  readonly path: string
  /** A separate plain-HTTP listener serving only `path`; undefined: served on the main listener. */
  readonly listen: { readonly host: string, readonly port: number } | undefined
}

/** Probe paths (health:; plugins/health.ts). */
export interface HealthConfig {
  readonly livenessPath: string
  readonly readinessPath: string
}

/** Where audit lines go: stdout, stderr, or a file (absolute path, appended to). */
export type AuditDestination = 'stdout' | 'stderr' | { readonly file: string }

/** The audit log (audit:; observability/audit.ts): one line per MCP operation. */
export interface AuditConfig {
  readonly enabled: boolean
  readonly destination: AuditDestination
  /** Add tools/call and prompts/get `params.arguments` to the lines. */
  readonly includeArguments: boolean
}

/** The whole gateway configuration after validation. */
export interface GatewayConfig {
  readonly listen: ListenConfig
  /** Origin clients use, without trailing slash. */
  readonly publicUrl: string
  readonly authorizationServers: readonly IssuerConfig[]
  readonly routes: readonly RouteConfig[]
  readonly limits: {
    readonly maxBodyBytes: number
    /** Most messages in one JSON-RPC batch on a policy route; more get 400 (-32600). null: no cap. */
    readonly maxBatchMessages: number | null
    readonly maxTokenBytes: number
    /** Request line plus headers; more gets 431 (Node maxHeaderSize). */
    readonly maxHeaderBytes: number
    /** Node headersTimeout: headers not received within it get 408. */
    readonly headersTimeoutMs: number
    /** Node requestTimeout: the whole request (not the response) not received within it gets 408. */
    readonly requestTimeoutMs: number
    /** Open SSE streams in total; more get 503. */
    readonly maxStreams: number
    /** Open SSE streams per issuer and subject; more get 429. */
    readonly maxStreamsPerPrincipal: number
  }
  /** Which proxies may report the client address in X-Forwarded-For (proxy/client-ip.ts). */
  readonly trustProxy: boolean | number | readonly string[]
  /** Request rate limits; undefined when none is configured. */
  readonly rateLimits: RateLimitsConfig | undefined
  readonly tokenCache: { readonly maxEntries: number }
  /** Issuer whose AS metadata is mirrored at the gateway's /.well-known/oauth-authorization-server and openid-configuration; undefined: off. */
  readonly mirrorAuthorizationServerMetadata: string | undefined
  readonly logLevel: string
  readonly shutdownTimeoutMs: number
  /**
   * Identity assertion signing: `keys` as configured (the first signs, all are published);
   * empty when none are configured (the gateway then generates one at start if a route needs it).
   */
  readonly signing: { readonly algorithm: string, readonly keys: readonly SigningKeyConfig[] }
  /** Session binding; always on. */
  readonly sessions: SessionsConfig
  /** Redis connection; undefined when no `redis` section is configured. */
  readonly redis: RedisConfig | undefined
  readonly metrics: MetricsConfig
  readonly health: HealthConfig
  readonly audit: AuditConfig
  /** Risky but accepted settings, printed once at startup. */
  readonly warnings: readonly string[]
}
