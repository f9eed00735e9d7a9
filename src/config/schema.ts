/**
 * The one source of truth for the configuration file: runtime validation and
 * the TypeScript input types both come from this zod schema. Every object is
 * strict, so an unknown key is an error, never silently ignored.
 *
 * Value rules live next to the field they check and produce messages of the
 * form `what is wrong: the rule`; load.ts prefixes the path.
 */
import { z } from 'zod'
import { SUPPORTED_ALGORITHMS, SYMMETRIC_ALGORITHMS, MAX_CLOCK_TOLERANCE_SECONDS } from './defaults.js'
import { PROFILE_NAMES } from './profiles.js'

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
  for (const reserved of ['/healthz', '/readyz']) {
    if (value === reserved || value.startsWith(reserved + '/')) {
      ctx.addIssue({ code: 'custom', message: `path is under ${reserved}: that path is reserved for health checks` })
    }
  }
})

/** RFC 7230 token: what a header field name may contain. */
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers whose meaning belongs to HTTP itself or to the client's credential; never settable. */
const RESERVED_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'host', 'content-length', 'content-type', 'transfer-encoding', 'connection',
  'keep-alive', 'upgrade', 'te', 'trailer', 'cookie', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id',
  // Set by the gateway itself on every forwarded request.
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip'
])
const headerName = z.string().superRefine((value, ctx) => {
  if (!HEADER_NAME_RE.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'not a valid header name: must be an HTTP token (letters, digits and !#$%&\'*+.^_`|~-)' })
  } else if (RESERVED_HEADERS.has(value.toLowerCase()) || value.toLowerCase().startsWith('mcp-')) {
    ctx.addIssue({ code: 'custom', message: `reserved header ${JSON.stringify(value)}: identity headers must not replace HTTP, credential, forwarding or MCP protocol headers` })
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
    subject: claimCandidates.optional(),
    clientId: claimCandidates.optional(),
    scopes: claimList.optional(),
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
  subject: headerName.optional(),
  clientId: headerName.optional(),
  scopes: headerName.optional(),
  issuer: headerName.optional(),
  roles: headerName.optional()
})

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
  /** Upstream timeouts. */
  timeouts: z.strictObject({
    connectSeconds: seconds(300).optional(),
    headersSeconds: seconds(86_400).optional(),
    idleSeconds: seconds(86_400).optional()
  }).optional()
})

const listenSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int({ message: 'not an integer: port must be an integer' }).min(0, { message: 'out of range: port must be 0–65535' }).max(65535, { message: 'out of range: port must be 0–65535' }).optional(),
  tls: z.strictObject({
    certFile: z.string().min(1),
    keyFile: z.string().min(1)
  }).optional()
})

/** The whole configuration file. */
export const configSchema = z.strictObject({
  listen: listenSchema.optional(),
  publicUrl,
  authorizationServers: z.array(authorizationServerSchema).min(1, { message: 'empty list: at least one authorization server is required' }),
  routes: z.array(routeSchema).min(1, { message: 'empty list: at least one route is required' }),
  /** Limits applied to every request. */
  limits: z.strictObject({
    maxBodyBytes: z.number().int().positive().max(256 * 1024 * 1024, { message: 'too large: must be at most 268435456 bytes' }).optional(),
    maxTokenBytes: z.number().int().min(256, { message: 'too small: must be at least 256 bytes' }).max(16 * 1024, { message: 'too large: must be at most 16384 bytes' }).optional()
  }).optional(),
  /** Verified-token cache. */
  tokenCache: z.strictObject({
    maxEntries: z.number().int().min(0, { message: 'negative: must be 0 (disabled) or more' }).max(10_000_000).optional()
  }).optional(),
  /** Serve an issuer's AS metadata on the gateway origin (for 2025-03-26 clients): true with one issuer, or the issuer URL. */
  mirrorAuthorizationServerMetadata: z.union([z.boolean(), z.string().min(1)]).optional(),
  /** Log verbosity. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  /** Grace period for in-flight requests on SIGTERM/SIGINT. */
  shutdownTimeoutSeconds: seconds(600).optional()
})

export type RawConfig = z.infer<typeof configSchema>
export type RawRoute = z.infer<typeof routeSchema>
export type RawAuthorizationServer = z.infer<typeof authorizationServerSchema>
export type RawSecretRef = z.infer<typeof secretRefSchema>
