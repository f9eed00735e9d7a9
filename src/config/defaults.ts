/**
 * Every default of the gateway, in one place, with units in the names.
 * Change a value here and the docs (docs/configuration.md) in the same commit.
 */

/** Listener address. Loopback by default: exposing the gateway is an explicit choice. */
export const DEFAULT_LISTEN_HOST = '127.0.0.1'
export const DEFAULT_LISTEN_PORT = 8080

/** Config file used when neither `--config` nor `MCP_GATEWAY_CONFIG` is given. */
export const DEFAULT_CONFIG_PATH = './gateway.yaml'

/** Signing algorithms accepted when an issuer sets no `algorithms`. Asymmetric only: HS* and `none` are never accepted. */
export const DEFAULT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const
/** Every algorithm an issuer may allow. Symmetric algorithms are absent on purpose (key-confusion attacks). */
export const SUPPORTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const

/** Clock skew tolerated on exp/nbf/iat. One minute covers ordinary NTP drift. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60
/** Upper bound on the configurable tolerance: more would make exp meaningless. */
export const MAX_CLOCK_TOLERANCE_SECONDS = 300

/** jose remote JWKS: how long a fetch may take. */
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000
/** jose remote JWKS: minimum time between refetches triggered by an unknown `kid` (stops key-miss floods). */
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000
/** jose remote JWKS: a key set older than this is refetched before use. */
export const DEFAULT_JWKS_MAX_AGE_MS = 600_000

/** AS metadata fetch: per-attempt timeout and the largest document accepted. */
export const DEFAULT_METADATA_TIMEOUT_MS = 5_000
export const MAX_METADATA_BYTES = 256 * 1024
/** Discovery retry backoff at startup: first delay, doubling up to the cap, forever. */
export const DISCOVERY_RETRY_INITIAL_MS = 500
export const DISCOVERY_RETRY_MAX_MS = 30_000
/** `Retry-After` sent with 503 while keys are not available. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5

/** Verified-token cache size (entries). Each entry is a principal, about 1 KiB. */
export const DEFAULT_TOKEN_CACHE_MAX_ENTRIES = 10_000
/** Tokens larger than this are rejected before any parsing (bytes). Real access tokens are 1–4 KiB. */
export const DEFAULT_MAX_TOKEN_BYTES = 8 * 1024

/** Largest request body forwarded (bytes). MCP messages are small; tool arguments may carry documents. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

/** Upstream connect timeout. */
export const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECONDS = 10
/** Time to wait for upstream response headers; longer is a 504. Tool calls can be slow. */
export const DEFAULT_UPSTREAM_HEADERS_TIMEOUT_SECONDS = 300
/**
 * Longest silence allowed inside an upstream response body. SSE streams stay
 * open for hours but the SDK servers send keep-alives, so only true silence trips it.
 */
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS = 300
/**
 * Longest an idle upstream connection is kept, whatever Keep-Alive hint the
 * upstream sends (Fastify sends 72 s). When a client leaves mid-stream, the
 * upstream request is aborted and undici 7 opens a replacement connection;
 * this bounds how long such idle connections linger after a mass disconnect.
 */
export const UPSTREAM_KEEPALIVE_MAX_MS = 10_000

/**
 * Connections per upstream: unlimited. Every open SSE stream (the GET stream,
 * legacy /sse, a streaming POST) holds one for its whole life, so a cap would
 * queue new tool calls behind idle streams.
 */
export const DEFAULT_UPSTREAM_CONNECTIONS = null

/** On SIGTERM/SIGINT, in-flight requests get this long to finish before sockets are closed. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 10

/** The legacy SSE `endpoint` event is looked for within this many leading bytes of the stream. */
export const MAX_SSE_ENDPOINT_SCAN_BYTES = 64 * 1024

/** Identity header names sent upstream. */
export const DEFAULT_IDENTITY_HEADERS = {
  subject: 'X-Forwarded-User',
  clientId: 'X-Forwarded-Client-Id',
  scopes: 'X-Forwarded-Scopes',
  issuer: 'X-Forwarded-Issuer',
  /** Sent only when the issuer's role claims yield roles. */
  roles: 'X-Forwarded-Roles'
} as const

export const DEFAULT_LOG_LEVEL = 'info'

/** Symmetric algorithms an issuer with `sharedSecret` may allow (RFC 7518 §3.2). Never mixed with asymmetric ones. */
export const SYMMETRIC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const
/** Shortest shared secret per HS algorithm (bytes): at least the hash output size (RFC 7518 §3.2). */
export const MIN_SHARED_SECRET_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 }

/** Profile used when an issuer sets none. */
export const DEFAULT_PROFILE = 'generic'
/** Token validation when an issuer sets no `tokenType`: local JWT validation. */
export const DEFAULT_TOKEN_TYPE = 'jwt'

/** RFC 7662: client authentication when `introspection.authMethod` is not set. */
export const DEFAULT_INTROSPECTION_AUTH_METHOD = 'client_secret_basic'
/** An active introspection result is trusted at most this long (also capped by its `exp`): revocation shows within it. */
export const DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS = 60
/** An inactive result is remembered this long, so a flood of one bad token costs one call per period. */
export const DEFAULT_INTROSPECTION_NEGATIVE_CACHE_TTL_SECONDS = 10
/** Per-call timeout of the introspection request. */
export const DEFAULT_INTROSPECTION_TIMEOUT_SECONDS = 5

/** stdout log lines are written in batches of this many bytes (or every LOG_FLUSH_INTERVAL_MS): one write per line cost ~10 % CPU per request. */
export const LOG_BUFFER_BYTES = 4096
/** Longest a log line waits in the buffer. */
export const LOG_FLUSH_INTERVAL_MS = 1000

/** Mirrored AS metadata (mirrorAuthorizationServerMetadata) is refetched after this long. */
export const AS_METADATA_MIRROR_TTL_MS = 300_000
/** Scopes never advertised in PRM scopes_supported: they are about refresh tokens, not this resource. */
export const SCOPES_NOT_ADVERTISED = ['offline_access'] as const

/** Largest JSON tools/list answer buffered for filtering; over it the client gets a 502, never an unfiltered list. */
export const MAX_TOOLS_LIST_RESPONSE_BYTES = 8 * 1024 * 1024
/** Required-scope lists memoised per (method, name) on a policy route; bounded so hostile names cannot grow it. */
export const POLICY_MEMO_MAX_ENTRIES = 1024
/** Largest RFC 7662 response read; real ones are well under 4 KiB. */
export const MAX_INTROSPECTION_RESPONSE_BYTES = 64 * 1024
/** Inactive introspection results remembered at most (entries are token hashes, so size is bounded whatever the token). */
export const INTROSPECTION_NEGATIVE_CACHE_MAX_ENTRIES = 10_000
