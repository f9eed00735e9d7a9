/**
 * The one source of truth for the configuration file: runtime validation and
 * the TypeScript input types both come from this zod schema. Every object is
 * strict, so an unknown key is an error, never silently ignored.
 *
 * Value rules live next to the field they check and produce messages of the
 * form `what is wrong: the rule`; load.ts prefixes the path.
 */
import { z } from 'zod'
import { SUPPORTED_ALGORITHMS, SYMMETRIC_ALGORITHMS, MAX_CLOCK_TOLERANCE_SECONDS, SIGNING_ALGORITHMS, MAX_ASSERTION_TTL_SECONDS } from './defaults.js'
import { PROFILE_NAMES } from './profiles.js'
import { checkTrustedRange, normaliseOrigin } from './values.js'
import { MAX_SESSION_IDLE_TTL_SECONDS } from './defaults.js'

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]', '::1'])

/** True for 127.0.0.0/8, ::1 and localhost: the only hosts where plain http is tolerated. */
export function isLoopbackHost (hostname: string): boolean {
  if (LOOPBACK_HOSTS.has(hostname)) return true
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

function parseUrl (value: string): URL | undefined {
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

/**
 * An https URL, or http on a loopback host (load.ts warns about those).
 * Used for every URL the gateway itself fetches (issuer, metadata, JWKS): SSRF
 * and MITM on key material are the risks (MCP security best practices, SSRF).
 */
const fetchedUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a valid absolute URL: must be an absolute https:// URL' })
    return
  }
  if (url.username !== '' || url.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL contains credentials: credentials must not be embedded in URLs' })
  }
  if (url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL has a fragment: a fragment is not allowed here' })
  }
  if (url.protocol === 'https:') return
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return
  if (url.protocol === 'http:') {
    ctx.addIssue({ code: 'custom', message: 'plain http:// on a non-loopback host: must be https:// (http:// is accepted only on 127.0.0.0/8, ::1 or localhost)' })
  } else {
    ctx.addIssue({ code: 'custom', message: `unsupported scheme ${JSON.stringify(url.protocol)}: must be https://` })
  }
})

/** An absolute http(s) URL with no credentials, query or fragment. */
const upstreamUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    ctx.addIssue({ code: 'custom', message: 'not an http(s) URL: upstream must be an absolute http:// or https:// URL' })
    return
  }
  if (url.username !== '' || url.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL contains credentials: credentials must not be embedded in the upstream URL' })
  }
  if (url.search !== '' || url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL has a query or fragment: upstream must be a base URL without query or fragment' })
  }
})

const publicUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    ctx.addIssue({ code: 'custom', message: 'not an http(s) URL: publicUrl must be the origin clients use, such as https://mcp.example.com' })
    return
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    ctx.addIssue({ code: 'custom', message: 'publicUrl has a path, query or fragment: it must be an origin only (paths belong to routes[].path)' })
  }
  if (url.username !== '' || url.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL contains credentials: publicUrl must be an origin only' })
  }
})

/** Resource identifiers (RFC 8707 §2): absolute, no fragment. */
const resourceUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    ctx.addIssue({ code: 'custom', message: 'not an http(s) URL: a resource must be an absolute URL (RFC 8707 §2)' })
    return
  }
  if (url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL has a fragment: a resource indicator must not have a fragment (RFC 8707 §2)' })
  }
})

// Unreserved characters only (RFC 3986 §2.3): anything else could be read as router syntax (":param", "*") or need encoding.
const ROUTE_PATH_RE = /^(\/[A-Za-z0-9._~-]+)+$/
const routePath = z.string().superRefine((value, ctx) => {
  if (!ROUTE_PATH_RE.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'invalid path: must start with "/", have no trailing "/" or empty segments, and use only letters, digits and . _ ~ - (e.g. /mcp)' })
    return
  }
  const segments = value.split('/')
  if (segments.includes('.') || segments.includes('..')) {
    ctx.addIssue({ code: 'custom', message: 'path has a "." or ".." segment: route paths must be normalised' })
  }
  if (value === '/.well-known' || value.startsWith('/.well-known/')) {
    ctx.addIssue({ code: 'custom', message: 'path is under /.well-known: that prefix is reserved for metadata' })
  }
  // Clashes with the health and metrics paths (configurable) are cross-checks in load.ts.
})

/** RFC 7230 token: what a header field name may contain. */
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers whose meaning belongs to HTTP itself or to the client's credential; never settable. */
const RESERVED_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'host', 'content-length', 'content-type', 'transfer-encoding', 'connection',
  'keep-alive', 'upgrade', 'te', 'trailer', 'cookie', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id',
  // Set by the gateway itself on every forwarded request.
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip',
  // The signed identity assertion's default header (routes[].identityAssertion).
  'x-gateway-assertion'
])
const headerName = z.string().superRefine((value, ctx) => {
  if (!HEADER_NAME_RE.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'not a valid header name: must be an HTTP token (letters, digits and !#$%&\'*+.^_`|~-)' })
  } else if (RESERVED_HEADERS.has(value.toLowerCase()) || value.toLowerCase().startsWith('mcp-')) {
    ctx.addIssue({ code: 'custom', message: `reserved header ${JSON.stringify(value)}: identity headers must not replace HTTP, credential, forwarding or MCP protocol headers` })
  }
})

/**
 * A header the gateway sets for the upstream (assertion, upstream credential):
 * reserved names are refused like identity headers, except `allowed`, the one
 * name that header exists to carry (X-Gateway-Assertion, Authorization).
 */
const gatewaySetHeaderName = (allowed: string, what: string): z.ZodString => z.string().superRefine((value, ctx) => {
  const lower = value.toLowerCase()
  if (!HEADER_NAME_RE.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'not a valid header name: must be an HTTP token (letters, digits and !#$%&\'*+.^_`|~-)' })
  } else if (lower !== allowed && (RESERVED_HEADERS.has(lower) || lower.startsWith('mcp-'))) {
    ctx.addIssue({ code: 'custom', message: `reserved header ${JSON.stringify(value)}: the ${what} must not replace HTTP, credential, forwarding or MCP protocol headers` })
  }
})

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]+$/
const scope = z.string().regex(SCOPE_RE, { message: 'invalid scope: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)' })

const CLAIM_PATH_RE = /^[A-Za-z0-9_:$-]+(\.[A-Za-z0-9_:$-]+)*$/
const claimPath = z.string().regex(CLAIM_PATH_RE, { message: 'invalid claim path: use a claim name, or dotted names for nested claims (e.g. realm_access.roles)' })

const seconds = (max: number): z.ZodNumber => z.number().positive({ message: 'not positive: must be a number of seconds greater than 0' }).max(max, { message: `too large: must be at most ${max} seconds` })

/** RFC 8414 §2: an issuer identifier has no query or fragment. */
const issuerUrl = fetchedUrl.superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url !== undefined && (url.search !== '' || value.includes('?'))) {
    ctx.addIssue({ code: 'custom', message: 'issuer has a query: an issuer identifier has no query or fragment (RFC 8414 §2)' })
  }
})

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * A secret given by reference, never inline: `{ fromEnv: NAME }` or
 * `{ fromFile: path }` (exactly one). Resolved once at load time.
 */
export const secretRefSchema = z.strictObject({
  /** Environment variable holding the secret. */
  fromEnv: z.string().regex(ENV_NAME_RE, { message: 'invalid variable name: use letters, digits and underscores' }).optional(),
  /** File holding the secret (a trailing newline is ignored); relative paths are resolved from the config file's directory. */
  fromFile: z.string().min(1, { message: 'empty path: give the path of the file holding the secret' }).optional()
}).superRefine((v, ctx) => {
  if ((v.fromEnv === undefined) === (v.fromFile === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'not exactly one source: give either fromEnv or fromFile' })
  }
})

const ALL_ALGORITHMS = [...SUPPORTED_ALGORITHMS, ...SYMMETRIC_ALGORITHMS] as const

/** A claim path or an ordered list of them (first present wins). */
const claimCandidates = z.union([claimPath, z.array(claimPath).min(1, { message: 'empty list: list at least one claim or omit the key' })])
const claimList = z.array(claimPath)

const introspectionSchema = z.strictObject({
  /** RFC 7662 introspection endpoint. */
  endpoint: fetchedUrl,
  /** The gateway's own client id at the authorization server. */
  clientId: z.string().min(1),
  /** The gateway's client secret: `{ fromEnv }` or `{ fromFile }`. */
  clientSecret: secretRefSchema,
  /** Client authentication (RFC 6749 §2.3.1). Default client_secret_basic. */
  authMethod: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
  /** How long an active result is trusted, capped by the token's `exp`. Default 60. */
  cacheTtlSeconds: seconds(3600).optional(),
  /** How long an inactive result is remembered. Default 10. */
  negativeCacheTtlSeconds: seconds(300).optional(),
  /** Per-call timeout. Default 5. */
  timeoutSeconds: seconds(60).optional()
})

const authorizationServerSchema = z.strictObject({
  /** Issuer identifier, compared byte for byte with the token's `iss` and the AS metadata's `issuer` (RFC 8414 §3.3). */
  issuer: issuerUrl,
  /** Provider profile: claim mapping, audience rule, required claims and quirks. Default generic. */
  profile: z.enum(PROFILE_NAMES).optional(),
  /** jwt: local validation; opaque: RFC 7662 introspection; auto: JWT-shaped tokens locally, others by introspection. Default jwt. */
  tokenType: z.enum(['jwt', 'opaque', 'auto']).optional(),
  /** JWKS URL. When absent, discovered from the AS metadata. */
  jwksUri: fetchedUrl.optional(),
  /** Explicit AS metadata URL, overriding RFC 8414 / OIDC discovery. */
  metadataUrl: fetchedUrl.optional(),
  /** Accepted JWS algorithms: asymmetric ones, or HS* together with sharedSecret. */
  algorithms: z.array(z.enum(ALL_ALGORITHMS, { message: `unsupported algorithm: must be one of ${ALL_ALGORITHMS.join(', ')} (never "none")` })).min(1, { message: 'empty list: list at least one algorithm or omit the key' }).optional(),
  /** Key for HS* algorithms. Such an issuer never accepts asymmetric algorithms, and has no JWKS. */
  sharedSecret: secretRefSchema.optional(),
  /** Accepted `aud` values. Default: the resource URL of the route being called. */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Client ids accepted in place of resource binding (drupal: `aud`; cognito: `client_id`). Weaker: a startup warning says so. */
  allowedClientIds: z.array(z.string().min(1)).min(1, { message: 'empty list: list at least one client id or omit the key' }).optional(),
  /** Set to false to accept tokens without `iss` (league/oauth2-server); they are pinned by this issuer's keys. Default true. */
  requireIssuer: z.boolean().optional(),
  /** Where identity is read from, overriding the profile. */
  claims: z.strictObject({
    /** Claim (or ordered candidates, first present wins) holding the subject; it must be a non-empty string. */
    subject: claimCandidates.optional(),
    /** Claim (or ordered candidates, first non-empty string wins) holding the client id; optional in tokens. */
    clientId: claimCandidates.optional(),
    /** Claims whose union is the granted scopes (space-separated strings or lists). */
    scopes: claimList.optional(),
    /** Claims whose union is the roles sent upstream; never used for scope checks. */
    roles: claimList.optional()
  }).optional(),
  /** Claims that must have exactly this value, added to (or overriding) the profile's. */
  requiredClaims: z.record(claimPath, z.union([z.string(), z.number(), z.boolean()])).optional(),
  /** RFC 7662 introspection, for tokenType opaque or auto. */
  introspection: introspectionSchema.optional(),
  /** Tolerated clock skew on exp/nbf/iat. */
  clockToleranceSeconds: z.number().min(0, { message: 'negative: must be 0 or more' }).max(MAX_CLOCK_TOLERANCE_SECONDS, { message: `too large: must be at most ${MAX_CLOCK_TOLERANCE_SECONDS} seconds` }).optional()
})

const scopeList = z.array(scope)
const patternMap = z.record(z.string().min(1, { message: 'empty name: a pattern must not be empty' }), scopeList)

const policySchema = z.strictObject({
  /** Scopes required for every operation. Required: write [] to require nothing beyond the route's scopes. */
  default: scopeList,
  /** By JSON-RPC method. */
  methods: z.record(z.string().min(1), scopeList).optional(),
  /** By tool name; `*` is a wildcard. Every matching entry applies. */
  tools: patternMap.optional(),
  /** By resource URI; `*` is a wildcard. */
  resources: patternMap.optional(),
  /** By prompt name; `*` is a wildcard. */
  prompts: patternMap.optional(),
  /** Remove tools the caller may not call from tools/list results. Default true when tools has entries. */
  filterToolsList: z.boolean().optional()
})

const identityHeadersSchema = z.strictObject({
  /** Header carrying the caller's subject. Default X-Forwarded-User. */
  subject: headerName.optional(),
  /** Header carrying the token's client id (not sent when the token has none). Default X-Forwarded-Client-Id. */
  clientId: headerName.optional(),
  /** Header carrying the granted scopes, space-separated. Default X-Forwarded-Scopes. */
  scopes: headerName.optional(),
  /** Header carrying the issuer that verified the token. Default X-Forwarded-Issuer. */
  issuer: headerName.optional(),
  /** Header carrying the roles, space-separated (sent only when there are some). Default X-Forwarded-Roles. */
  roles: headerName.optional()
})

/** Signed identity assertion for the upstream (src/identity/assertion.ts). Presence enables it. */
const identityAssertionSchema = z.strictObject({
  /** `aud` of the assertion. Default: the upstream origin. */
  audience: z.string().min(1, { message: 'empty audience: give the value the upstream expects in aud, or omit the key' }).optional(),
  /** Lifetime in seconds. Default 30, at most 60. */
  ttlSeconds: z.number().int({ message: 'not an integer: must be a whole number of seconds' }).positive({ message: 'not positive: must be a number of seconds greater than 0' }).max(MAX_ASSERTION_TTL_SECONDS, { message: `too large: must be at most ${MAX_ASSERTION_TTL_SECONDS} seconds` }).optional(),
  /** Header carrying it. Default X-Gateway-Assertion. */
  header: gatewaySetHeaderName('x-gateway-assertion', 'assertion header').optional(),
  /** Reuse one signed assertion per caller and route for up to half its lifetime (default true); false signs a fresh one (new jti) for every request. */
  reuse: z.boolean().optional()
})

const UPSTREAM_AUTH_TYPES = ['none', 'header', 'clientCredentials', 'tokenExchange'] as const
/** The keys each upstreamAuth type accepts besides `type`. */
export const UPSTREAM_AUTH_KEYS: Readonly<Record<(typeof UPSTREAM_AUTH_TYPES)[number], readonly string[]>> = {
  none: [],
  header: ['name', 'value'],
  clientCredentials: ['name', 'tokenEndpoint', 'clientId', 'clientSecret', 'authMethod', 'scope', 'resource', 'audience', 'timeoutSeconds'],
  tokenExchange: ['name', 'tokenEndpoint', 'clientId', 'clientSecret', 'authMethod', 'scope', 'resource', 'audience', 'timeoutSeconds']
}
/** The keys each upstreamAuth type requires (exported for the JSON Schema: scripts/gen-schema.ts). */
export const UPSTREAM_AUTH_REQUIRED: Readonly<Record<(typeof UPSTREAM_AUTH_TYPES)[number], readonly string[]>> = {
  none: [],
  header: ['value'],
  clientCredentials: ['tokenEndpoint', 'clientId', 'clientSecret'],
  tokenExchange: ['tokenEndpoint', 'clientId', 'clientSecret']
}

/** The credential the gateway sends upstream in place of the client's (src/proxy/upstream-auth.ts). */
const upstreamAuthSchema = z.strictObject({
  /** none (default), header (a static secret), clientCredentials (the gateway's own token), tokenExchange (RFC 8693, per caller). */
  type: z.enum(UPSTREAM_AUTH_TYPES),
  /** Header carrying the credential. Default Authorization. */
  name: gatewaySetHeaderName('authorization', 'upstream credential header').optional(),
  /** header: the whole header value, `{ fromEnv }` or `{ fromFile }`. */
  value: secretRefSchema.optional(),
  /** Token endpoint of the authorization server. */
  tokenEndpoint: fetchedUrl.optional(),
  /** The gateway's own client id there. */
  clientId: z.string().min(1).optional(),
  /** Its client secret: `{ fromEnv }` or `{ fromFile }`. */
  clientSecret: secretRefSchema.optional(),
  /** Client authentication (RFC 6749 §2.3.1). Default client_secret_basic. */
  authMethod: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
  /** Scopes requested: a space-separated string or a list. */
  scope: z.union([z.string().superRefine((v, ctx) => {
    if (!v.split(' ').every((s) => SCOPE_RE.test(s))) ctx.addIssue({ code: 'custom', message: 'invalid scope: scopes are printable ASCII separated by single spaces, without quotes or backslashes (RFC 6749 §3.3)' })
  }), z.array(scope).min(1, { message: 'empty list: list at least one scope or omit the key' })]).optional(),
  /** RFC 8707 resource indicator requested. */
  resource: resourceUrl.optional(),
  /** `audience` parameter (RFC 8693 §2.1; some servers accept it for client credentials too). */
  audience: z.string().min(1).optional(),
  /** Per-call timeout. Default 5. */
  timeoutSeconds: seconds(60).optional()
}).superRefine((v, ctx) => {
  const allowed = UPSTREAM_AUTH_KEYS[v.type]
  for (const [key, value] of Object.entries(v)) {
    if (key !== 'type' && value !== undefined && !allowed.includes(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: `not used by type ${v.type}: ${allowed.length === 0 ? 'type none takes no other keys' : `type ${v.type} takes ${allowed.join(', ')}`}` })
    }
  }
  for (const key of UPSTREAM_AUTH_REQUIRED[v.type]) {
    if ((v as Record<string, unknown>)[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `missing: type ${v.type} needs ${key}` })
  }
})

/** One allowed browser origin (scheme://host[:port]) or `*`; compared in serialised form (policy/origin.ts). */
const allowedOrigin = z.string().superRefine((value, ctx) => {
  const r = normaliseOrigin(value)
  if ('problem' in r) ctx.addIssue({ code: 'custom', message: r.problem })
})
const allowedOriginList = z.array(allowedOrigin)

/** `{ max, windowSeconds }`: at most `max` requests per window (fixed window, @fastify/rate-limit). */
const rateWindow = {
  /** Requests allowed per window. */
  max: z.number().int({ message: 'not an integer: must be a whole number of requests' }).positive({ message: 'not positive: must be at least 1 request' }).max(1_000_000_000, { message: 'too large: must be at most 1000000000' }),
  /** Window length. */
  windowSeconds: seconds(86_400)
}

const rateLimitsSchema = z.strictObject({
  /** memory (per gateway process, the default) or redis (shared by every replica; needs the top-level redis settings). */
  store: z.enum(['memory', 'redis']).optional(),
  /** When the store cannot be reached: deny (503 with Retry-After, the default: fail closed) or allow (requests pass unlimited). */
  onStoreError: z.enum(['deny', 'allow']).optional(),
  /** Per client IP (see trustProxy), checked before any token work. */
  perIp: z.strictObject(rateWindow).optional(),
  /** Per caller after authentication: issuer and subject, or issuer and client id. */
  perPrincipal: z.strictObject({
    /** subject (default) or clientId (tokens without a client id count by subject). */
    key: z.enum(['subject', 'clientId']).optional(),
    ...rateWindow
  }).optional(),
  /** Per caller and tool name (tools/call), on routes with a policy (the only ones that read bodies). */
  perTool: z.strictObject(rateWindow).optional()
})

const trustProxySchema = z.union([
  z.boolean(),
  z.number().int({ message: 'not an integer: trustProxy as a number is the count of proxies in front of the gateway' }).min(1, { message: 'too small: give at least 1 hop, or false to trust no proxy' }).max(32, { message: 'too large: must be at most 32 hops' }),
  z.array(z.string().superRefine((value, ctx) => {
    const problem = checkTrustedRange(value)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
  })).min(1, { message: 'empty list: list at least one proxy address or range, or use false' })
])

const routeSchema = z.strictObject({
  /** Public path prefix on the gateway, e.g. /mcp. */
  path: routePath,
  /** Requests to {path}{rest} go to {upstream}{rest}. */
  upstream: upstreamUrl,
  /** Resource identifier of this route. Default: publicUrl + path. */
  resource: resourceUrl.optional(),
  /** Scopes required on every request of the route. */
  scopes: z.array(scope).optional(),
  /** Issuers this route trusts (authorizationServers[].issuer values). Default: all of them. */
  issuers: z.array(z.string().min(1)).min(1, { message: 'empty list: list at least one issuer or omit the key' }).optional(),
  /** Per-operation scopes; the route then inspects JSON-RPC bodies. */
  policy: policySchema.optional(),
  /** Renames the identity headers sent upstream. */
  identityHeaders: identityHeadersSchema.optional(),
  /** Extra headers sent upstream, each set from a token claim: `X-Forwarded-Email: email`. */
  claims: z.record(headerName, claimPath).optional(),
  /** Sign a short-lived JWT naming the caller for every forwarded request (X-Gateway-Assertion). */
  identityAssertion: identityAssertionSchema.optional(),
  /** The credential sent upstream in place of the client's token (which is never forwarded). */
  upstreamAuth: upstreamAuthSchema.optional(),
  /** Browser origins allowed on this route, replacing the top-level allowedOrigins. */
  allowedOrigins: allowedOriginList.optional(),
  /** Upstream timeouts. */
  timeouts: z.strictObject({
    /** Time allowed to connect to the upstream (TLS handshake included); then 504. Default 10. */
    connectSeconds: seconds(300).optional(),
    /** Time allowed for the upstream's response headers; then 504. Default 300. */
    headersSeconds: seconds(86_400).optional(),
    /** Longest silence inside the upstream's response body (SSE keep-alives count); then the connection is cut. Default 300. */
    idleSeconds: seconds(86_400).optional()
  }).optional()
})

const listenSchema = z.strictObject({
  /** Address to listen on. Default 127.0.0.1 (loopback only; use 0.0.0.0 in a container). */
  host: z.string().min(1).optional(),
  /** TCP port; 0 picks a free one. Default 8080. */
  port: z.number().int({ message: 'not an integer: port must be an integer' }).min(0, { message: 'out of range: port must be 0–65535' }).max(65535, { message: 'out of range: port must be 0–65535' }).optional(),
  /** Terminate HTTPS here with this certificate and key (read once at load time). Default: plain HTTP. */
  tls: z.strictObject({
    /** PEM certificate chain; relative to the config file's directory. */
    certFile: z.string().min(1),
    /** PEM private key matching certFile; relative to the config file's directory. */
    keyFile: z.string().min(1)
  }).optional()
})

/**
 * The Redis URL: redis:// (or rediss:// for TLS), a host, an optional port and an
 * optional database number as the path. Credentials never go in the URL, which is
 * logged: they have their own keys, and the password is a secret reference.
 */
const redisUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value)
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
    ctx.addIssue({ code: 'custom', message: 'not a Redis URL: must be redis://host:port/db, or rediss://host:port/db for TLS' })
    return
  }
  if (url.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL contains a password: give it with redis.password ({ fromEnv } or { fromFile }), never in the URL' })
  } else if (url.username !== '') {
    ctx.addIssue({ code: 'custom', message: 'URL contains a user name: give it with redis.username; credentials never go in the URL' })
  }
  if (url.hostname === '') {
    ctx.addIssue({ code: 'custom', message: 'no host: must be redis://host:port/db' })
  }
  if (!/^\/?(\d{1,5})?$/.test(url.pathname)) {
    ctx.addIssue({ code: 'custom', message: 'path is not a database number: the path may only be a database number, e.g. redis://host:6379/0' })
  }
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    ctx.addIssue({ code: 'custom', message: 'URL has a query or fragment: set connection options with the redis keys, not in the URL' })
  }
})

/** The shared Redis connection (session/redis.ts); required when any store is redis. */
const redisSchema = z.strictObject({
  /** redis://host:port/db, or rediss:// for TLS. No credentials in it. */
  url: redisUrl,
  /** ACL user (Redis 6+). Default: the default user. */
  username: z.string().min(1, { message: 'empty user name: give the ACL user or omit the key' }).optional(),
  /** The password: `{ fromEnv }` or `{ fromFile }`. */
  password: secretRefSchema.optional(),
  /** Prefix of every key the gateway writes. Default mcp-gw: */
  keyPrefix: z.string().max(128, { message: 'too long: a key prefix must be at most 128 characters' }).regex(/^[\x21-\x7E]*$/, { message: 'invalid key prefix: use printable ASCII without spaces' }).optional(),
  /** How long a (re)connection attempt may take. Default 5. */
  connectTimeoutSeconds: seconds(300).optional(),
  /** How long a command may wait for its reply before the store counts as failed. Default 1. */
  commandTimeoutSeconds: seconds(60).optional()
})

/** Session binding (session/binding.ts); always on. */
const sessionsSchema = z.strictObject({
  /** memory (per gateway process, the default) or redis (shared by every replica; needs the top-level redis settings). */
  store: z.enum(['memory', 'redis']).optional(),
  /** A binding unused this long is forgotten; requests and open streams of the session refresh it. Default 3600. */
  idleTtlSeconds: seconds(MAX_SESSION_IDLE_TTL_SECONDS).optional(),
  /** When the store cannot be reached: deny (503 with Retry-After, the default: fail closed) or allow (forwarded unchecked). */
  onStoreError: z.enum(['deny', 'allow']).optional()
})

const portNumber = z.number().int({ message: 'not an integer: port must be an integer' }).min(0, { message: 'out of range: port must be 0–65535' }).max(65535, { message: 'out of range: port must be 0–65535' })

/** Prometheus metrics (observability/metrics.ts). */
const metricsSchema = z.strictObject({
  /** Serve the metrics. Default true. */
  enabled: z.boolean().optional(),
  /** Path of the Prometheus text endpoint (unauthenticated, never rate limited). Default /metrics. */
  path: routePath.optional(),
  /** Serve the metrics on this separate plain-HTTP address only, not on the main listener. Default: the main listener. */
  listen: z.strictObject({
    /** Address of the metrics listener. Default 127.0.0.1. */
    host: z.string().min(1).optional(),
    /** TCP port of the metrics listener; 0 picks a free one. */
    port: portNumber
  }).optional()
})

/** Liveness and readiness probe paths (plugins/health.ts); both unauthenticated and never rate limited. */
const healthSchema = z.strictObject({
  /** Liveness: 200 while the process serves requests. Default /healthz. */
  livenessPath: routePath.optional(),
  /** Readiness: 200 once every issuer's metadata and keys are loaded, else 503. Default /readyz. */
  readinessPath: routePath.optional()
})

/** The audit log (observability/audit.ts): one JSON line per MCP operation. */
const auditSchema = z.strictObject({
  /** Write the audit log. Default false. */
  enabled: z.boolean().optional(),
  /** stdout (default, with the other logs), stderr, or `{ file: path }` (appended to). */
  destination: z.union([
    z.enum(['stdout', 'stderr']),
    z.strictObject({
      /** File the lines are appended to; relative to the config file's directory. Its directory must exist. */
      file: z.string().min(1, { message: 'empty path: give the path of the audit log file' })
    })
  ]).optional(),
  /** Add the arguments of tools/call and prompts/get to each line. Default false: they may hold personal data or secrets. */
  includeArguments: z.boolean().optional()
})

/** The whole configuration file. */
export const configSchema = z.strictObject({
  /** Where the gateway listens. */
  listen: listenSchema.optional(),
  /** The origin MCP clients use (scheme, host, port; no path); resource and metadata URLs are built from it. */
  publicUrl,
  /**
   * Browser origins allowed to call the MCP routes (CORS). A request whose Origin is not
   * listed gets 403; requests without Origin (non-browser clients) are not affected.
   * Default: publicUrl only. `*` allows every origin (a startup warning says so).
   */
  allowedOrigins: allowedOriginList.optional(),
  /** Which proxies in front of the gateway are trusted to report the client address in X-Forwarded-For: false (default), true, a hop count, or CIDR ranges. */
  trustProxy: trustProxySchema.optional(),
  /** Request rate limits on the MCP routes (none by default). */
  rateLimits: rateLimitsSchema.optional(),
  /** Session binding: a session id is honoured only for the identity it was created for. */
  sessions: sessionsSchema.optional(),
  /** The Redis connection shared by every store set to redis. */
  redis: redisSchema.optional(),
  /** Prometheus metrics: `{ enabled, path, listen }`. */
  metrics: metricsSchema.optional(),
  /** Liveness and readiness probe paths. */
  health: healthSchema.optional(),
  /** One structured line per MCP operation (who called which tool, the decision, the upstream status). */
  audit: auditSchema.optional(),
  /** Authorization servers whose access tokens are accepted (at least one). */
  authorizationServers: z.array(authorizationServerSchema).min(1, { message: 'empty list: at least one authorization server is required' }),
  /** Protected routes: a public path prefix proxied to an upstream MCP server (at least one). */
  routes: z.array(routeSchema).min(1, { message: 'empty list: at least one route is required' }),
  /** Limits applied to every request. */
  limits: z.strictObject({
    /** Largest request body read (bytes); more gets 413. Default 4194304. */
    maxBodyBytes: z.number().int().positive().max(256 * 1024 * 1024, { message: 'too large: must be at most 268435456 bytes' }).optional(),
    /**
     * Most messages in one JSON-RPC batch on a route with a policy (the gateway reads and decides
     * every message there); a longer batch gets 400 with JSON-RPC error -32600 and nothing is
     * forwarded. Routes without a policy forward bodies as received. Default: no cap.
     */
    maxBatchMessages: z.number().int().positive({ message: 'not positive: must be at least 1 message' }).max(1_000_000, { message: 'too large: must be at most 1000000 messages' }).optional(),
    /** Longest bearer token accepted (characters); more gets 401. Default 8192. */
    maxTokenBytes: z.number().int().min(256, { message: 'too small: must be at least 256 bytes' }).max(16 * 1024, { message: 'too large: must be at most 16384 bytes' }).optional(),
    /** Largest request line plus headers (bytes); more gets 431. Default 16384. */
    maxHeaderBytes: z.number().int().min(4096, { message: 'too small: must be at least 4096 bytes' }).max(1024 * 1024, { message: 'too large: must be at most 1048576 bytes' }).optional(),
    /** Time allowed to receive the request headers; then 408 (slowloris). Default 10. */
    headersTimeoutSeconds: seconds(3600).optional(),
    /** Time allowed to receive the whole request, body included (not the response); then 408. Default 60. */
    requestTimeoutSeconds: seconds(3600).optional(),
    /** Open SSE streams in total (GET streams and SSE answers to POSTs); more get 503. Default 10000. */
    maxStreams: z.number().int().positive({ message: 'not positive: must be at least 1 stream' }).max(10_000_000, { message: 'too large: must be at most 10000000 streams' }).optional(),
    /** Open SSE streams per caller (issuer and subject), GET streams and SSE answers to POSTs; more get 429. Default 100. */
    maxStreamsPerPrincipal: z.number().int().positive({ message: 'not positive: must be at least 1 stream' }).max(10_000_000, { message: 'too large: must be at most 10000000 streams' }).optional()
  }).optional(),
  /** Verified-token cache. */
  tokenCache: z.strictObject({
    /** Verified tokens cached per route (LRU, never used past exp); 0 disables the cache. Default 10000. */
    maxEntries: z.number().int().min(0, { message: 'negative: must be 0 (disabled) or more' }).max(10_000_000).optional()
  }).optional(),
  /** Serve an issuer's AS metadata on the gateway origin (for 2025-03-26 clients): true with one issuer, or the issuer URL. */
  mirrorAuthorizationServerMetadata: z.union([z.boolean(), z.string().min(1)]).optional(),
  /** Log verbosity. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  /** Grace period for in-flight requests on SIGTERM/SIGINT. */
  shutdownTimeoutSeconds: seconds(600).optional(),
  /** Private keys for identity assertions: the first signs, all are published at /.well-known/jwks.json (rotation). */
  signingKeys: z.array(z.strictObject({
    /** A PEM private key (PKCS#8, SEC1 or PKCS#1) or a private JWK (JSON). Relative to the config file's directory. */
    file: z.string().min(1, { message: 'empty path: give the path of the private key file' }),
    /** Key id published in the JWKS and sent in the JWS header. Default: the JWK's kid, else its RFC 7638 thumbprint. */
    kid: z.string().min(1, { message: 'empty kid: give a key id or omit the key' }).max(128, { message: 'too long: a kid must be at most 128 characters' }).optional()
  })).min(1, { message: 'empty list: list at least one key or omit signingKeys' }).optional(),
  /** JWS algorithm of identity assertions. Default ES256. Every signing key must fit it. */
  signingAlgorithm: z.enum(SIGNING_ALGORITHMS, { message: `unsupported algorithm: must be one of ${SIGNING_ALGORITHMS.join(', ')}` }).optional()
})

export type RawConfig = z.infer<typeof configSchema>
export type RawRoute = z.infer<typeof routeSchema>
export type RawAuthorizationServer = z.infer<typeof authorizationServerSchema>
export type RawSecretRef = z.infer<typeof secretRefSchema>
