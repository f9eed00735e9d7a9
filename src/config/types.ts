/**
 * The normalised, frozen configuration handed to the rest of the gateway.
 * Every default is already applied; every URL is already parsed and checked.
 * Core modules import these types only, never the loader.
 */

/** One trusted authorization server. */
export interface IssuerConfig {
  /** Exactly as configured; compared byte for byte with `iss` and with the metadata `issuer`. */
  readonly issuer: string
  /** Explicit JWKS URL, or undefined to discover it from the AS metadata. */
  readonly jwksUri: string | undefined
  /** Explicit metadata URL, or undefined to try RFC 8414 then OIDC discovery. */
  readonly metadataUrl: string | undefined
  readonly algorithms: readonly string[]
  /** Accepted audiences; undefined means "the resource URL of the route being called". */
  readonly audience: readonly string[] | undefined
  readonly clockToleranceSeconds: number
}

/** Names of the identity headers sent upstream. */
export interface IdentityHeaderNames {
  readonly subject: string
  readonly clientId: string
  readonly scopes: string
  readonly issuer: string
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
  readonly identityHeaders: IdentityHeaderNames
  /** Extra upstream headers: [header name, claim path split on dots]. */
  readonly claimHeaders: ReadonlyArray<readonly [string, readonly string[]]>
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

/** The whole gateway configuration after validation. */
export interface GatewayConfig {
  readonly listen: ListenConfig
  /** Origin clients use, without trailing slash. */
  readonly publicUrl: string
  readonly authorizationServers: readonly IssuerConfig[]
  readonly routes: readonly RouteConfig[]
  readonly limits: { readonly maxBodyBytes: number, readonly maxTokenBytes: number }
  readonly tokenCache: { readonly maxEntries: number }
  readonly logLevel: string
  readonly shutdownTimeoutMs: number
  /** Risky but accepted settings, printed once at startup. */
  readonly warnings: readonly string[]
}
