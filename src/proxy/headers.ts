/**
 * Header hygiene towards the upstream, compiled per route at startup:
 * the client's credential and every identity-header name are deleted first,
 * then the identity of the verified principal is set (MCP security best
 * practices, "token passthrough"; oauth2-proxy's no-preserve default).
 */
import type { IncomingMessage } from 'node:http'
import type { RouteConfig } from '../config/types.js'
import type { Principal } from '../auth/principal.js'
import { DEFAULT_IDENTITY_HEADERS } from '../config/defaults.js'

export type HeaderBag = Record<string, string | string[] | undefined>

/** The client's credentials: never forwarded, and dropped from a streaming request ({@link forgetCredentials}). */
const CREDENTIAL_HEADER_NAMES = ['authorization', 'proxy-authorization'] as const
const CREDENTIAL_HEADERS = new Set<string>(CREDENTIAL_HEADER_NAMES)

/**
 * Request headers never forwarded upstream: the client's credentials, hop-by-hop
 * fields the proxy library leaves in (RFC 9110 §7.6.1; `expect` is answered by
 * this server and undici refuses to send it), and client-supplied forwarding
 * headers, which the gateway sets itself (a client must not choose its own IP).
 */
const ALWAYS_STRIPPED = [
  ...CREDENTIAL_HEADER_NAMES,
  'te', 'trailer', 'keep-alive', 'proxy-connection', 'upgrade', 'expect',
  'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip',
  // The signed identity assertion's default header: only the gateway sets it, on any route.
  'x-gateway-assertion'
]

/**
 * Drops the caller's credential headers from a request whose response stays
 * open as a stream (SSE). Node keeps every request header for the request's
 * life, in `rawHeaders` and in the parsed `headers` object; for a stream that
 * is hours, and a JWT is 0.6–2.5 KB (Entra tokens are the large ones). The
 * gateway has read it by then (authentication, token exchange) and forwards it
 * nowhere. Values in `rawHeaders` become '' rather than being spliced out:
 * Node's lazy `headers` getter walks that array by its original count.
 */
export function forgetCredentials (req: IncomingMessage): void {
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if ((name.length === 13 || name.length === 19) && CREDENTIAL_HEADERS.has(name.toLowerCase())) raw[i + 1] = ''
  }
  // Assigned, not deleted: a delete turns the object into a slow dictionary that
  // costs more memory (~450 B per stream) than the token it drops.
  const headers = req.headers
  if (headers.authorization !== undefined) headers.authorization = undefined
  if (headers['proxy-authorization'] !== undefined) headers['proxy-authorization'] = undefined
}

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

/**
 * Request-header rewriting for one route, compiled once. Two forms share one
 * strip list and one identity builder: `raw` builds the flat header list sent
 * upstream from Node's `rawHeaders` (the hot path); calling the function itself
 * rewrites a header object in place. `clientIp` is the X-Forwarded-For value
 * to send: the socket address, or under trustProxy the trusted chain from the
 * client to the socket (proxy/client-ip.ts).
 */
export interface RequestHeaderRewriter {
  (headers: HeaderBag, principal: Principal, clientIp: string | undefined): void
  raw: (rawHeaders: readonly string[], principal: Principal, clientIp: string | undefined) => string[]
}

/** Never copied from the client's raw headers: the proxy sets them (host, framing) or they are hop-by-hop. */
const NOT_COPIED = ['host', 'connection', 'content-length', 'transfer-encoding']

export function compileRequestHeaders (route: RouteConfig, publicUrl: string): RequestHeaderRewriter {
  const pub = new URL(publicUrl)
  const forwardedProto = pub.protocol.slice(0, -1)
  const forwardedHost = pub.host
  const names = route.identityHeaders
  const sub = names.subject.toLowerCase()
  const cid = names.clientId.toLowerCase()
  const scp = names.scopes.toLowerCase()
  const iss = names.issuer.toLowerCase()
  const rol = names.roles.toLowerCase()
  const claimHeaders = route.claimHeaders.map(([h, path]) => [h.toLowerCase(), path] as const)
  // Strip the configured names and the default names too: an upstream may trust the conventional ones.
  const strip = [...new Set([
    ...ALWAYS_STRIPPED,
    ...Object.values(DEFAULT_IDENTITY_HEADERS).map((h) => h.toLowerCase()),
    sub, cid, scp, iss, rol,
    ...claimHeaders.map(([h]) => h),
    // Headers the gateway sets itself (identity/assertion.ts, proxy/upstream-auth.ts), added after this strip.
    ...(route.identityAssertion !== undefined ? [route.identityAssertion.header] : []),
    ...(route.upstreamAuth.type !== 'none' ? [route.upstreamAuth.header] : [])
  ])]
  const notCopied = new Set([...strip, ...NOT_COPIED])

  /** The headers the gateway sets, as a flat [name, value, …] list appended to `out`. */
  const identity = (out: string[], principal: Principal, clientIp: string | undefined): void => {
    // The client's own X-Forwarded-For was stripped: only the chain the gateway trusts goes on.
    if (clientIp !== undefined) out.push('x-forwarded-for', clientIp)
    out.push('x-forwarded-proto', forwardedProto, 'x-forwarded-host', forwardedHost, sub, principal.subject)
    if (principal.clientId !== undefined) out.push(cid, principal.clientId)
    out.push(scp, principal.scopeString, iss, principal.issuer)
    if (principal.roleString !== '') out.push(rol, principal.roleString)
    for (let i = 0; i < claimHeaders.length; i++) {
      const [h, path] = claimHeaders[i]!
      const v = claimValue(principal.claims, path)
      if (v !== undefined) out.push(h, v)
    }
  }

  const rewrite = ((headers: HeaderBag, principal: Principal, clientIp: string | undefined): void => {
    for (let i = 0; i < strip.length; i++) delete headers[strip[i]!]
    const set: string[] = []
    identity(set, principal, clientIp)
    for (let i = 0; i < set.length; i += 2) headers[set[i]!] = set[i + 1]
  }) as RequestHeaderRewriter

  rewrite.raw = (rawHeaders, principal, clientIp) => {
    const out: string[] = []
    let connectionNamed: string | undefined
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const lower = rawHeaders[i]!.toLowerCase()
      if (lower === 'connection') connectionNamed = connectionNamed === undefined ? rawHeaders[i + 1]! : `${connectionNamed},${rawHeaders[i + 1]!}`
      if (notCopied.has(lower)) continue
      // CGI, WSGI and PHP fold '_' into '-': X_Forwarded_User would read as X-Forwarded-User upstream.
      if (lower.includes('_') && notCopied.has(lower.replaceAll('_', '-'))) continue
      out.push(lower, rawHeaders[i + 1]!)
    }
    // Fields the client named in Connection are hop-by-hop (RFC 9110 §7.6.1); drop them before identity is added.
    const kept = connectionNamed === undefined ? out : withoutNamed(out, connectionNamed)
    identity(kept, principal, clientIp)
    return kept
  }
  return rewrite
}

function withoutNamed (headers: string[], connection: string): string[] {
  const named = new Set(connection.split(',').map((n) => n.trim().toLowerCase()))
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) if (!named.has(headers[i]!)) out.push(headers[i]!, headers[i + 1]!)
  return out
}

/** True when the principal's identity can be sent as header values. */
export function identityRepresentable (p: Principal): boolean {
  return SAFE_VALUE_RE.test(p.subject) && (p.clientId === undefined || SAFE_VALUE_RE.test(p.clientId)) && SAFE_VALUE_RE.test(p.scopeString) && SAFE_VALUE_RE.test(p.roleString)
}

/** Connection values that name no field beyond the hop-by-hop ones. */
const CONNECTION_PLAIN = new Set(['keep-alive', 'close'])

/** Response headers that belong to the upstream hop only (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate'])

/**
 * Clean upstream response headers: names lowercased, hop-by-hop fields and
 * those named in Connection removed (RFC 9110 §7.6.1). SSE gets
 * `X-Accel-Buffering: no` and `Cache-Control: no-cache, no-transform` unless
 * the upstream set them, and no Content-Length. The upstream's
 * `Access-Control-*` headers are dropped (the gateway answers CORS). `extra`
 * pairs are added when absent (`vary` is merged into the upstream's). Input
 * and output are flat [name, value, …] lists, as undici and `writeHead` use them.
 */
export function cleanResponseHeaders (raw: ReadonlyArray<string | Buffer>, extra: readonly string[] = []): { headers: string[], sse: boolean } {
  let connectionNamed: Set<string> | undefined
  let sse = false
  let out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase()
    const value = raw[i + 1]!.toString('latin1')
    if (name === 'connection') {
      // The usual values name only hop-by-hop fields, which are dropped anyway: no set to build.
      if (CONNECTION_PLAIN.has(value.toLowerCase())) continue
      connectionNamed ??= new Set()
      for (const n of value.split(',')) connectionNamed.add(n.trim().toLowerCase())
      continue
    }
    if (HOP_BY_HOP.has(name)) continue
    // CORS is the gateway's to answer: the route's allowed origins decide (plugins/origin.ts), never the upstream's `*`.
    if (name.startsWith('access-control-')) continue
    if (name === 'content-type' && value.toLowerCase().startsWith('text/event-stream')) sse = true
    out.push(name, value)
  }
  if (connectionNamed !== undefined) {
    const kept: string[] = []
    for (let i = 0; i < out.length; i += 2) if (!connectionNamed.has(out[i]!)) kept.push(out[i]!, out[i + 1]!)
    out = kept
  }
  if (sse) {
    // Never buffered by a proxy in front, never transformed or cached.
    setIfAbsent(out, 'x-accel-buffering', 'no')
    setIfAbsent(out, 'cache-control', 'no-cache, no-transform')
    for (let i = out.length - 2; i >= 0; i -= 2) if (out[i] === 'content-length') out.splice(i, 2)
  }
  for (let i = 0; i < extra.length; i += 2) {
    if (extra[i] === 'vary') appendVary(out, extra[i + 1]!)
    else setIfAbsent(out, extra[i]!, extra[i + 1]!)
  }
  return { headers: out, sse }
}

/** Add a field name to Vary, keeping the upstream's (RFC 9110 §12.5.5: a list, `*` covers all). */
function appendVary (headers: string[], name: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'vary') continue
    const v = headers[i + 1]!
    if (v.trim() === '*' || v.toLowerCase().split(',').some((n) => n.trim() === name.toLowerCase())) return
    headers[i + 1] = v === '' ? name : `${v}, ${name}`
    return
  }
  headers.push('vary', name)
}

function setIfAbsent (headers: string[], name: string, value: string): void {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return
  headers.push(name, value)
}
