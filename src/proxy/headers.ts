/**
 * Header hygiene towards the upstream, compiled per route at startup:
 * the client's credential and every identity-header name are deleted first,
 * then the identity of the verified principal is set (MCP security best
 * practices, "token passthrough"; oauth2-proxy's no-preserve default).
 */
import type { RouteConfig } from '../config/types.js'
import type { Principal } from '../auth/principal.js'
import { DEFAULT_IDENTITY_HEADERS } from '../config/defaults.js'

export type HeaderBag = Record<string, string | string[] | undefined>

/**
 * Request headers never forwarded upstream: the client's credentials, hop-by-hop
 * fields the proxy library leaves in (RFC 9110 §7.6.1; `expect` is answered by
 * this server and undici refuses to send it), and client-supplied forwarding
 * headers, which the gateway sets itself (a client must not choose its own IP).
 */
const ALWAYS_STRIPPED = [
  'authorization', 'proxy-authorization',
  'te', 'trailer', 'keep-alive', 'proxy-connection', 'upgrade', 'expect',
  'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip'
]

/** Header values must be visible ASCII or space; anything else is not representable without an encoding the upstream would have to guess. */
const SAFE_VALUE_RE = /^[\x20-\x7e]*$/

function claimValue (claims: Readonly<Record<string, unknown>>, path: readonly string[]): string | undefined {
  let cur: unknown = claims
  for (const p of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined
    cur = (cur as Record<string, unknown>)[p]
  }
  let out: string | undefined
  if (typeof cur === 'string') out = cur
  else if (typeof cur === 'number' || typeof cur === 'boolean') out = String(cur)
  else if (Array.isArray(cur) && cur.every((v) => typeof v === 'string' || typeof v === 'number')) out = cur.join(' ')
  return out !== undefined && SAFE_VALUE_RE.test(out) ? out : undefined
}

/** Rewrites request headers in place for one route. `clientIp` is the peer address of the client connection. */
export type RequestHeaderRewriter = (headers: HeaderBag, principal: Principal, clientIp: string | undefined) => void

export function compileRequestHeaders (route: RouteConfig, publicUrl: string): RequestHeaderRewriter {
  const pub = new URL(publicUrl)
  const forwardedProto = pub.protocol.slice(0, -1)
  const forwardedHost = pub.host
  const names = route.identityHeaders
  const sub = names.subject.toLowerCase()
  const cid = names.clientId.toLowerCase()
  const scp = names.scopes.toLowerCase()
  const iss = names.issuer.toLowerCase()
  const claimHeaders = route.claimHeaders.map(([h, path]) => [h.toLowerCase(), path] as const)
  // Strip the configured names and the default names too: an upstream may trust the conventional ones.
  const strip = [...new Set([
    ...ALWAYS_STRIPPED,
    ...Object.values(DEFAULT_IDENTITY_HEADERS).map((h) => h.toLowerCase()),
    sub, cid, scp, iss,
    ...claimHeaders.map(([h]) => h)
  ])]

  return (headers, principal, clientIp) => {
    for (let i = 0; i < strip.length; i++) delete headers[strip[i]!]
    // The gateway is the client's first trusted hop: the chain starts here.
    if (clientIp !== undefined) headers['x-forwarded-for'] = clientIp
    headers['x-forwarded-proto'] = forwardedProto
    headers['x-forwarded-host'] = forwardedHost
    headers[sub] = principal.subject
    if (principal.clientId !== undefined) headers[cid] = principal.clientId
    headers[scp] = principal.scopeString
    headers[iss] = principal.issuer
    for (let i = 0; i < claimHeaders.length; i++) {
      const [h, path] = claimHeaders[i]!
      const v = claimValue(principal.claims, path)
      if (v !== undefined) headers[h] = v
    }
  }
}

/** True when the principal's identity can be sent as header values. */
export function identityRepresentable (p: Principal): boolean {
  return SAFE_VALUE_RE.test(p.subject) && (p.clientId === undefined || SAFE_VALUE_RE.test(p.clientId)) && SAFE_VALUE_RE.test(p.scopeString)
}

/** Response headers that belong to the upstream hop only (RFC 9110 §7.6.1). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate']

/** Clean upstream response headers in place; SSE gets `X-Accel-Buffering: no` so no proxy in front buffers it. */
export function rewriteResponseHeaders (headers: HeaderBag): { sse: boolean } {
  // Fields named in Connection are hop-by-hop too and MUST be removed (RFC 9110 §7.6.1).
  const connection = headers.connection
  if (connection !== undefined) {
    for (const name of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
      const n = name.trim().toLowerCase()
      if (n !== '') delete headers[n]
    }
  }
  for (let i = 0; i < HOP_BY_HOP.length; i++) delete headers[HOP_BY_HOP[i]!]
  const ct = headers['content-type']
  const sse = typeof ct === 'string' && ct.toLowerCase().startsWith('text/event-stream')
  if (sse) {
    headers['x-accel-buffering'] = 'no'
    // An SSE stream must never be transformed or cached by intermediaries.
    if (headers['cache-control'] === undefined) headers['cache-control'] = 'no-cache, no-transform'
    delete headers['content-length']
  }
  return { sse }
}
