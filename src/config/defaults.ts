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
/**
 * JWKS unreachable after startup: the keys fetched before keep verifying tokens
 * (stale-if-error) for at most this long from the first failed fetch; then 503.
 * Bounded so keys the AS has since withdrawn do not stay trusted forever.
 */
export const JWKS_MAX_STALE_MS = 24 * 60 * 60 * 1000

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

/**
 * Most messages in one JSON-RPC batch on a policy route (messages); null: no cap. MCP 2025-03-26
 * allows batches of any length and 2025-06-18 removed them, so the default refuses nothing a
 * client may send; operators who want the bound set it (docs/security.md, "Known gaps").
 */
export const DEFAULT_MAX_BATCH_MESSAGES: number | null = null

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

/**
 * stdout log lines are handed to the writer in batches of this many bytes
 * (or every LOG_FLUSH_INTERVAL_MS): one write per line cost ~10 % CPU per request.
 * Each batch is one synchronous write (~45 µs of CPU for 64 KiB to a file here; one
 * per ~240 request lines). When the writes went through libuv's thread pool, that
 * round trip cost ~30 µs whatever the size, so 64 KiB batches cost ~4 µs less per
 * request than 4 KiB ones (BENCHMARKS.md). The same applies to stderr and file audit logs.
 * process.exit() and uncaught exceptions write the batch out; a kill -9 (or an
 * out-of-memory kill) loses at most this much, and at most LOG_FLUSH_INTERVAL_MS of lines.
 */
export const LOG_BUFFER_BYTES = 65_536
/** Longest a log line waits in the buffer. */
export const LOG_FLUSH_INTERVAL_MS = 1000
/**
 * Bytes of log lines held for a destination that refuses them (disk full, I/O
 * error), retried with every batch; lines beyond it are dropped and counted.
 * Without a bound a full disk would grow the gateway's memory until it is killed.
 */
export const LOG_MAX_HELD_BYTES = 16 * 1024 * 1024
/** A failing log destination is reported on stderr at most this often. */
export const LOG_FAILURE_REPORT_INTERVAL_MS = 60_000

/** Mirrored AS metadata (mirrorAuthorizationServerMetadata) is refetched after this long. */
export const AS_METADATA_MIRROR_TTL_MS = 300_000
/** Scopes never advertised in PRM scopes_supported: they are about refresh tokens, not this resource. */
export const SCOPES_NOT_ADVERTISED = ['offline_access'] as const

/** Largest JSON tools/list answer buffered for filtering; over it the client gets a 502, never an unfiltered list. */
export const MAX_TOOLS_LIST_RESPONSE_BYTES = 8 * 1024 * 1024
/** Required-scope lists memoised per (method, name) on a policy route; bounded so hostile names cannot grow it. */
export const POLICY_MEMO_MAX_ENTRIES = 1024
/**
 * Deepest nesting of arrays and objects in a policy route's JSON-RPC body (levels). Deeper is a 400:
 * the body is re-serialised, and JSON.stringify recurses (a few thousand levels overflow the stack).
 */
export const MAX_JSON_RPC_DEPTH = 256
/** Largest RFC 7662 response read; real ones are well under 4 KiB. */
export const MAX_INTROSPECTION_RESPONSE_BYTES = 64 * 1024
/** Inactive introspection results remembered at most (entries are token hashes, so size is bounded whatever the token). */
export const INTROSPECTION_NEGATIVE_CACHE_MAX_ENTRIES = 10_000

/** Largest request head (request line and headers, bytes): over it 431. Node's own default; leaves room for an 8 KiB token. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024
/** The request line and headers must arrive within this long, or 408 and the socket is closed (slowloris). */
export const DEFAULT_HEADERS_TIMEOUT_SECONDS = 10
/** The whole request (headers and body, not the response) must arrive within this long, or 408. A 4 MiB body at 100 KiB/s fits. */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 60
/** How often Node checks sockets against the header and request timeouts (Node's default is 30 s, which would stretch a 10 s bound to 40 s). */
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000
/** Idle keep-alive time of a client connection: Fastify's own default, kept for the reloadable server (runtime.ts) it no longer creates. */
export const SERVER_KEEP_ALIVE_TIMEOUT_MS = 72_000
/** SIGHUP reload: how long the new config's authorization servers may take to be ready before the reload is abandoned. */
export const RELOAD_READY_TIMEOUT_MS = 10_000
/** Open SSE streams (GET streams, legacy /sse) across all callers; more get 503. Each holds a client socket and an upstream connection. */
export const DEFAULT_MAX_STREAMS = 10_000
/** Open SSE streams per caller (issuer and subject); more get 429. A client needs one per session. */
export const DEFAULT_MAX_STREAMS_PER_PRINCIPAL = 100
/**
 * Memory sizing for `limits.maxStreams` (BENCHMARKS.md, Node 24.14+ as the image runs it, the
 * runtime with the largest figures): what one idle SSE stream holds, in bytes (23.1–23.9 KB
 * measured; Node's HTTP server connection is most of it).
 */
export const IDLE_STREAM_MEMORY_BYTES = 24 * 1024
/** Memory sizing: a freshly started gateway process, in bytes (90–110 MB measured). */
export const PROCESS_BASE_MEMORY_BYTES = 110 * 1024 * 1024
/** Memory sizing: headroom for request load on top of the open streams, in bytes (60–80 MB measured). */
export const LOAD_HEADROOM_MEMORY_BYTES = 80 * 1024 * 1024
/** `Retry-After` on 429/503 for too many streams: streams end when clients leave. */
export const STREAM_LIMIT_RETRY_AFTER_SECONDS = 5

/** rateLimits.store when not set. */
export const DEFAULT_RATE_LIMIT_STORE = 'memory'
/** rateLimits.onStoreError when not set: refuse requests (503) while the store cannot be reached. */
export const DEFAULT_RATE_LIMIT_ON_STORE_ERROR = 'deny'
/** rateLimits.perPrincipal.key when not set. */
export const DEFAULT_RATE_LIMIT_PRINCIPAL_KEY = 'subject'
/** Keys (IPs, callers, caller+tool) the memory store tracks; least recently used are dropped first. */
export const RATE_LIMIT_MEMORY_MAX_KEYS = 50_000
/** Prefix of every rate-limit key in Redis, after redis.keyPrefix (so `mcp-gw:rl:` by default). */
export const RATE_LIMIT_REDIS_PREFIX = 'rl:'
/** Keys longer than this (long subjects, tool names) are replaced by their SHA-256 in the store. */
export const RATE_LIMIT_MAX_KEY_CHARS = 200
/** With onStoreError allow, a failing store is logged at most once per this long. */
export const RATE_LIMIT_STORE_ERROR_LOG_INTERVAL_MS = 10_000

/** Signed identity assertion (routes[].identityAssertion): JWS algorithm when `signingAlgorithm` is not set. */
export const DEFAULT_SIGNING_ALGORITHM = 'ES256'
/** Algorithms the gateway signs assertions with; each needs its own key type (EC curve, RSA ≥ 2048 bits, Ed25519). */
export const SIGNING_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const
/** Smallest RSA signing key accepted (bits; RFC 7518 §3.3). */
export const MIN_RSA_SIGNING_KEY_BITS = 2048
/** Assertion lifetime when `ttlSeconds` is not set. */
export const DEFAULT_ASSERTION_TTL_SECONDS = 30
/** Longest assertion lifetime allowed: the assertion is a bearer credential for the upstream. */
export const MAX_ASSERTION_TTL_SECONDS = 60
/** Header carrying the assertion upstream; always stripped from client requests. */
export const DEFAULT_ASSERTION_HEADER = 'X-Gateway-Assertion'
/** JWS `typ` of the assertion (RFC 8725 §3.11 explicit typing): upstreams check it so no other JWT passes as one. */
export const ASSERTION_JWT_TYPE = 'mcp-gateway-assertion+jwt'
/**
 * With `reuse` on, one signed assertion serves a principal's requests on a route for at most this
 * fraction of its lifetime, so it always reaches the upstream with at least the rest still valid.
 */
export const ASSERTION_REUSE_FRACTION = 0.5
/** /.well-known/jwks.json `Cache-Control: max-age`: publish a new key at least this long before it signs. */
export const JWKS_MAX_AGE_SECONDS = 300

/** Upstream credentials (routes[].upstreamAuth): header that carries the credential when `name` is not set. */
export const DEFAULT_UPSTREAM_AUTH_HEADER = 'Authorization'
/** Token endpoint client authentication when `authMethod` is not set (RFC 6749 §2.3.1). */
export const DEFAULT_UPSTREAM_AUTH_METHOD = 'client_secret_basic'
/** Per-call timeout of token endpoint requests (client credentials, token exchange). */
export const DEFAULT_UPSTREAM_AUTH_TIMEOUT_SECONDS = 5
/** A fetched upstream token is replaced this long before it expires (or at half its lifetime when that is shorter). */
export const UPSTREAM_TOKEN_REFRESH_MARGIN_SECONDS = 30
/** Lifetime assumed when a token response has no `expires_in` and the token is no JWT with `exp` (RFC 6749 §5.1 leaves it to the AS). */
export const UPSTREAM_TOKEN_DEFAULT_LIFETIME_SECONDS = 300
/** After a failed token request, requests fail fast (503) this long instead of each calling the AS again. */
export const UPSTREAM_TOKEN_FAILURE_COOLDOWN_MS = 1_000
/** Largest token endpoint response read (bytes). */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
/** Exchanged tokens remembered per route (entries, one per caller token), least recently used evicted first. */
export const TOKEN_EXCHANGE_CACHE_MAX_ENTRIES = 10_000
/** A caller token the AS refused to exchange is refused without a new call for this long. */
export const TOKEN_EXCHANGE_NEGATIVE_TTL_MS = 10_000

/** Session binding (sessions:): where bindings live when `store` is not set. */
export const DEFAULT_SESSION_STORE = 'memory'
/** A binding unused this long is forgotten (refreshed by every request and while a stream of the session is open). */
export const DEFAULT_SESSION_IDLE_TTL_SECONDS = 3600
/** Longest configurable idle TTL: a week. */
export const MAX_SESSION_IDLE_TTL_SECONDS = 7 * 86_400
/** What a request whose session check needs an unreachable store gets when `onStoreError` is not set: 503. */
export const DEFAULT_SESSION_ON_STORE_ERROR = 'deny'
/** Bindings the memory store holds at most (entries, ~300 bytes each); the least recently used is evicted first. */
export const SESSION_MEMORY_MAX_ENTRIES = 100_000
/** `Retry-After` of the 503 answered while the session store is unreachable. */
export const SESSION_STORE_RETRY_AFTER_SECONDS = 5
/** Session store failures and evictions are logged at most once per this interval (each request still gets its request line). */
export const SESSION_STORE_WARN_INTERVAL_MS = 10_000

/** Redis (redis:): prefix of every key the gateway writes, so one Redis can serve several gateways or applications. */
export const DEFAULT_REDIS_KEY_PREFIX = 'mcp-gw:'
/** Redis: how long a (re)connection attempt may take. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS = 5
/** Redis: how long a command may wait for its reply; then the request fails with the configured fail mode. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_SECONDS = 1
/** Redis reconnect backoff: 100 ms per attempt, capped here, forever. */
export const REDIS_RECONNECT_MAX_DELAY_MS = 2_000

/** metrics.enabled when not set: Prometheus metrics are served. */
export const DEFAULT_METRICS_ENABLED = true
/** metrics.path when not set: where the Prometheus text format is served. */
export const DEFAULT_METRICS_PATH = '/metrics'
/** metrics.listen.host when not set: the separate metrics listener stays on loopback. */
export const DEFAULT_METRICS_LISTEN_HOST = '127.0.0.1'
/** Prefix of every metric name (the gateway's and the default process metrics). */
export const METRICS_PREFIX = 'mcp_gateway_'
/** Buckets of request_duration_seconds (seconds): sub-millisecond answers up to long tool calls; open streams land in +Inf. */
export const METRICS_DURATION_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const
/** Buckets of overhead_seconds (seconds): the gateway's own time before the upstream is called, normally well under a millisecond. */
export const METRICS_OVERHEAD_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const

/** health.livenessPath when not set: 200 while the process serves requests. */
export const DEFAULT_LIVENESS_PATH = '/healthz'
/** health.readinessPath when not set: 200 once every issuer's metadata and keys are loaded. */
export const DEFAULT_READINESS_PATH = '/readyz'

/** audit.enabled when not set: no audit log. */
export const DEFAULT_AUDIT_ENABLED = false
/** audit.destination when not set. */
export const DEFAULT_AUDIT_DESTINATION = 'stdout'
/** audit.includeArguments when not set: tool and prompt arguments (personal data, secrets) stay out of the audit log. */
export const DEFAULT_AUDIT_INCLUDE_ARGUMENTS = false
/** Tool, prompt and method names and resource URIs in audit lines are cut to this many characters (they come from request bodies). */
export const AUDIT_MAX_NAME_CHARS = 256
/**
 * At most this many audit lines per request (a JSON-RPC batch gives one per message); the
 * rest are counted in one more line (`omittedMessages`). Without it, one 4 MiB batch of
 * ~90,000 messages wrote 90,000 lines (26 MB) and held the event loop for ~1 s.
 */
export const AUDIT_MAX_LINES_PER_REQUEST = 100
