/**
 * Origin checks and CORS header values for the protected routes. Pure: no
 * fastify. MCP transports (2025-11-25) require servers to validate `Origin`
 * and answer an invalid one with 403, which stops DNS-rebinding pages from
 * reaching an MCP server through a browser.
 */
import { ANY_ORIGIN } from '../config/values.js'


/**
 * Request headers a browser-based MCP client may send (MCP transports:
 * Streamable HTTP, 2026-07-28 header mirroring). `Mcp-Param-*` names are not in
 * this list: a `*` inside a header name is not a wildcard in
 * Access-Control-Allow-Headers (Fetch §3.2.3, only a lone `*` is, and never for
 * Authorization), so the requested `Mcp-Param-…` names are echoed instead.
 */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Last-Event-ID', 'Mcp-Method', 'Mcp-Name'] as const
/** Response headers a browser client must be able to read: the challenge, the session and the protocol version. */
export const CORS_EXPOSE_HEADERS = 'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version'
/** Methods an MCP client uses on the endpoint (POST, the GET stream, DELETE to end a session). */
export const CORS_ALLOW_METHODS = 'GET, POST, DELETE, OPTIONS'

const MCP_PARAM_PREFIX = 'mcp-param-'
/** RFC 9110 §5.6.2 token: what a header name may contain. */
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Bounds the preflight answer: more requested Mcp-Param headers than this are not echoed. */
export const MAX_ECHOED_PARAM_HEADERS = 64

const STATIC_ALLOW_HEADERS = CORS_ALLOW_HEADERS.join(', ')


/** The origins one route accepts, compiled once. */
export interface OriginPolicy {
  /** `*` was configured: every origin is accepted and gets `Access-Control-Allow-Origin: *`. */
  readonly any: boolean
  /** True when a request carrying this `Origin` value may proceed. */
  allows: (origin: string) => boolean
}

/** Compile a normalised origin list (config/values.ts normaliseOrigin). An empty list refuses every Origin. */
export function compileOriginPolicy (origins: readonly string[]): OriginPolicy {
  if (origins.includes(ANY_ORIGIN)) return { any: true, allows: () => true }
  // Browsers send the serialised form, so an exact Set lookup is the whole check.
  const set = new Set(origins)
  return { any: false, allows: (origin) => set.has(origin) }
}

/**
 * Access-Control-Allow-Headers for a preflight: the fixed MCP list plus each
 * `Mcp-Param-…` name the browser asked for in Access-Control-Request-Headers
 * (at most {@link MAX_ECHOED_PARAM_HEADERS}, each a valid header name).
 * Other requested names are not granted; the browser then refuses the request.
 */
export function allowHeadersFor (requested: string | undefined): string {
  if (requested === undefined || !requested.toLowerCase().includes(MCP_PARAM_PREFIX)) return STATIC_ALLOW_HEADERS
  let out = STATIC_ALLOW_HEADERS
  let n = 0
  const seen = new Set<string>()
  for (const raw of requested.split(',')) {
    const name = raw.trim().toLowerCase()
    if (name.length > MCP_PARAM_PREFIX.length && name.startsWith(MCP_PARAM_PREFIX) && TOKEN_RE.test(name) && !seen.has(name)) {
      if (++n > MAX_ECHOED_PARAM_HEADERS) break
      seen.add(name)
      out += ', ' + name
    }
  }
  return out
}
