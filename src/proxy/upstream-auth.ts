/**
 * The credential the gateway sends upstream in place of the client's token,
 * which is never forwarded (MCP security best practices, "token passthrough"):
 *
 * - `header`: a static value (an API key) from env or file;
 * - `clientCredentials`: the gateway's own OAuth token (RFC 6749 §4.4), one
 *   per route, fetched on first use, reused until shortly before it expires,
 *   one request in flight at a time;
 * - `tokenExchange`: RFC 8693, the caller's token exchanged for one aimed at
 *   the upstream, cached per caller token until shortly before either expires.
 *
 * Token endpoint failures never crash and never reach the upstream: the
 * request gets a {@link UpstreamCredentialError} (503 with Retry-After, or
 * 401/403 when the AS refuses the caller's token in an exchange). Log lines
 * carry a reason code, the HTTP status and the OAuth error code, never a
 * token, a secret or a response body.
 */
import { Agent, request, type Dispatcher } from 'undici'
import { decodeJwt } from 'jose'
import { GatewayError } from '../errors.js'
import type { UpstreamAuthConfig, UpstreamTokenClientConfig } from '../config/types.js'
import type { Principal } from '../auth/principal.js'
import { authorizationValues, extractCredential } from '../auth/bearer.js'
import type { AssertionIssuer } from '../identity/assertion.js'
import {
  MAX_TOKEN_RESPONSE_BYTES, TOKEN_EXCHANGE_CACHE_MAX_ENTRIES, TOKEN_EXCHANGE_NEGATIVE_TTL_MS, UNAVAILABLE_RETRY_AFTER_SECONDS,
  UPSTREAM_TOKEN_DEFAULT_LIFETIME_SECONDS, UPSTREAM_TOKEN_FAILURE_COOLDOWN_MS, UPSTREAM_TOKEN_REFRESH_MARGIN_SECONDS
} from '../config/defaults.js'

/** Minimal logger (pino's shape). */
export interface CredentialLogger {
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/** RFC 8693 §2.1 grant type and token type URIs. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** OAuth error codes are logged only when they look like one (RFC 6749 §5.2): never free text. */
const ERROR_CODE_RE = /^[a-z_]{1,64}$/
/** A token sent as a header value: visible ASCII, no spaces (RFC 6750 §2.1 is stricter still). */
const HEADER_TOKEN_RE = /^[\x21-\x7e]+$/

/**
 * Why the upstream credential could not be had, as the client sees it:
 * - 503 `temporarily_unavailable` with Retry-After: the token endpoint is down,
 *   slow, refuses the gateway's own client, or answers nonsense;
 * - 401 `invalid_token`: the AS refused to exchange the caller's token (`invalid_grant`);
 * - 403 `insufficient_scope`: the AS refused the exchange for this audience or scope
 *   (`invalid_target`, `invalid_scope`, `access_denied`).
 */
export class UpstreamCredentialError extends GatewayError {
  readonly retryAfterSeconds: number | undefined
  constructor (kind: 'unavailable' | 'refused_token' | 'refused_scope', detail: string) {
    if (kind === 'refused_token') super('invalid_token', 401, 'The authorization server refused to exchange the access token for the upstream', { detail })
    else if (kind === 'refused_scope') super('insufficient_scope', 403, 'The authorization server refused a token for the upstream to this caller', { detail })
    else super('temporarily_unavailable', 503, 'The credential for the upstream cannot be obtained; retry later', { detail })
    this.name = 'UpstreamCredentialError'
    this.retryAfterSeconds = kind === 'unavailable' ? UNAVAILABLE_RETRY_AFTER_SECONDS : undefined
  }
}

/** One route's upstream credential. */
export interface UpstreamCredential {
  /** Header name, lowercased. */
  readonly header: string
  /** The header value: a string when cached, else a promise (rejected with {@link UpstreamCredentialError}). */
  value: (principal: Principal, clientToken: string | undefined, nowMs: number) => string | Promise<string>
  /** True when {@link value} needs the caller's token (token exchange). */
  readonly needsClientToken: boolean
  /** Token endpoint requests made, for tests and metrics. */
  readonly stats: { calls: number }
  close: () => void
}

/** `application/x-www-form-urlencoded` encoding of one value (RFC 6749 Appendix B). */
function formEncode (value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1)
}

/** A token endpoint answer the gateway can use: the header value and when to stop using it. */
interface Issued { readonly value: string, readonly staleAtMs: number }

/** A token endpoint request that did not yield a usable token. */
class TokenRequestFailure extends Error {
  constructor (readonly reason: string, readonly status: number | undefined, readonly oauthError: string | undefined) {
    super(reason)
  }
}

/**
 * When to stop using a token obtained at `nowMs` that lives `lifetimeMs`:
 * {@link UPSTREAM_TOKEN_REFRESH_MARGIN_SECONDS} early, or at half its life when that is shorter.
 */
export function staleAt (nowMs: number, lifetimeMs: number): number {
  return nowMs + lifetimeMs - Math.min(UPSTREAM_TOKEN_REFRESH_MARGIN_SECONDS * 1000, lifetimeMs / 2)
}

/** Lifetime of a token response (ms): `expires_in`, else the JWT's `exp`, else the documented default. */
function lifetimeOf (body: Record<string, unknown>, token: string, nowMs: number): number {
  const expiresIn = body.expires_in
  if (typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0) return expiresIn * 1000
  if (typeof expiresIn === 'string' && /^\d+$/.test(expiresIn) && Number(expiresIn) > 0) return Number(expiresIn) * 1000
  try {
    const exp = decodeJwt(token).exp
    if (typeof exp === 'number' && exp * 1000 > nowMs) return exp * 1000 - nowMs
  } catch { /* not a JWT: the default applies */ }
  return UPSTREAM_TOKEN_DEFAULT_LIFETIME_SECONDS * 1000
}

/** An OAuth client of one token endpoint: the gateway's own credentials, its own connection pool. */
class TokenEndpoint {
  readonly #cfg: UpstreamTokenClientConfig
  readonly #headers: Record<string, string>
  readonly #auth: string
  readonly #agent: Agent
  /** Endpoint without query: what log lines show. */
  readonly endpointForLogs: string

  constructor (cfg: UpstreamTokenClientConfig) {
    this.#cfg = cfg
    const url = new URL(cfg.tokenEndpoint)
    this.endpointForLogs = url.origin + url.pathname
    this.#headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    if (cfg.authMethod === 'client_secret_basic') {
      // RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
      this.#headers.authorization = `Basic ${Buffer.from(`${formEncode(cfg.clientId)}:${formEncode(cfg.clientSecret)}`).toString('base64')}`
      this.#auth = ''
    } else {
      this.#auth = `&client_id=${formEncode(cfg.clientId)}&client_secret=${formEncode(cfg.clientSecret)}`
    }
    let params = ''
    if (cfg.scope !== undefined) params += `&scope=${formEncode(cfg.scope)}`
    if (cfg.resource !== undefined) params += `&resource=${formEncode(cfg.resource)}`
    if (cfg.audience !== undefined) params += `&audience=${formEncode(cfg.audience)}`
    this.#auth += params
    // Redirects are never followed (undici's request does not): they could carry the credentials elsewhere.
    this.#agent = new Agent({ connect: { timeout: cfg.timeoutMs }, headersTimeout: cfg.timeoutMs, bodyTimeout: cfg.timeoutMs })
  }

  /**
   * POST `grant` (already form-encoded, starting with `grant_type=`) and return the
   * `Bearer` header value with its stale time.
   * @throws TokenRequestFailure
   */
  async issue (grant: string, nowMs: () => number): Promise<Issued> {
    let res: Dispatcher.ResponseData
    try {
      res = await request(this.#cfg.tokenEndpoint, {
        method: 'POST',
        headers: this.#headers,
        body: grant + this.#auth,
        dispatcher: this.#agent,
        signal: AbortSignal.timeout(this.#cfg.timeoutMs)
      })
    } catch (err) {
      // AbortSignal.timeout rejects with a DOMException named TimeoutError (its numeric `code` says nothing).
      const e = err as { code?: unknown, name?: string }
      const timedOut = e.name === 'TimeoutError' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT'
      throw new TokenRequestFailure(timedOut ? 'timeout' : 'unreachable', undefined, undefined)
    }
    const status = res.statusCode
    let json: unknown
    try {
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > MAX_TOKEN_RESPONSE_BYTES) {
          res.body.destroy()
          throw new TokenRequestFailure('response_too_large', status, undefined)
        }
        chunks.push(chunk as Buffer)
      }
      json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (err) {
      if (err instanceof TokenRequestFailure) throw err
      json = undefined
    }
    const body = json !== null && typeof json === 'object' && !Array.isArray(json) ? json as Record<string, unknown> : undefined
    if (status !== 200) {
      const e = body?.error
      throw new TokenRequestFailure(status >= 500 ? 'server_error' : 'refused', status, typeof e === 'string' && ERROR_CODE_RE.test(e) ? e : undefined)
    }
    if (body === undefined) throw new TokenRequestFailure('invalid_json', status, undefined)
    const token = body.access_token
    if (typeof token !== 'string' || !HEADER_TOKEN_RE.test(token)) throw new TokenRequestFailure('invalid_response', status, undefined)
    // RFC 6749 §5.1 token_type is required; anything but Bearer (DPoP, N_A) cannot be sent as a bearer header.
    if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') throw new TokenRequestFailure('not_bearer', status, undefined)
    const now = nowMs()
    return { value: `Bearer ${token}`, staleAtMs: staleAt(now, lifetimeOf(body, token, now)) }
  }

  close (): void {
    this.#agent.destroy().catch(() => {})
  }
}

function logFailure (log: CredentialLogger, route: string, endpoint: string, grant: string, f: TokenRequestFailure): void {
  const entry = { route, endpoint, grant, reason: f.reason, status: f.status, error: f.oauthError }
  // The gateway's own credentials refused, or a wrong endpoint: a configuration problem.
  if (f.status === 401 || f.status === 403 || f.status === 404) log.error(entry, 'upstream credential request failed')
  else log.warn(entry, 'upstream credential request failed')
}

/** clientCredentials: one token per route, shared by every caller. */
function clientCredentials (cfg: UpstreamTokenClientConfig, route: string, log: CredentialLogger, now: () => number): UpstreamCredential {
  const endpoint = new TokenEndpoint(cfg)
  const grant = 'grant_type=client_credentials'
  let current: Issued | undefined
  let inflight: Promise<string> | undefined
  let failedUntilMs = 0
  const stats = { calls: 0 }
  const fetchToken = async (): Promise<string> => {
    stats.calls++
    try {
      current = await endpoint.issue(grant, now)
      return current.value
    } catch (err) {
      const f = err instanceof TokenRequestFailure ? err : new TokenRequestFailure('error', undefined, undefined)
      logFailure(log, route, endpoint.endpointForLogs, 'client_credentials', f)
      failedUntilMs = now() + UPSTREAM_TOKEN_FAILURE_COOLDOWN_MS
      throw new UpstreamCredentialError('unavailable', `client_credentials ${f.reason}`)
    } finally {
      inflight = undefined
    }
  }
  return {
    header: cfg.header,
    needsClientToken: false,
    stats,
    value: (_principal, _token, nowMs) => {
      if (current !== undefined && nowMs < current.staleAtMs) return current.value
      if (inflight !== undefined) return inflight
      if (nowMs < failedUntilMs) return Promise.reject(new UpstreamCredentialError('unavailable', 'client_credentials failed recently'))
      inflight = fetchToken()
      return inflight
    },
    close: () => { endpoint.close() }
  }
}

/**
 * tokenExchange: one exchanged token per caller token. Keyed by the exact
 * token (like the verified-token cache), not by subject: two tokens of one
 * user may differ in scope, audience or client, and a per-subject entry would
 * let a narrow token ride on a broad token's exchange, or outlive a revoked one.
 * The cost is one exchange per caller token, not per user.
 */
function tokenExchange (cfg: UpstreamTokenClientConfig, route: string, log: CredentialLogger, now: () => number): UpstreamCredential {
  const endpoint = new TokenEndpoint(cfg)
  // Map iteration is insertion order: re-inserting on a hit makes it an LRU.
  const cache = new Map<string, Issued>()
  const refused = new Map<string, { readonly error: UpstreamCredentialError, readonly untilMs: number }>()
  const inflight = new Map<string, Promise<string>>()
  let failedUntilMs = 0
  const stats = { calls: 0 }
  const remember = <V>(map: Map<string, V>, key: string, value: V): void => {
    map.delete(key)
    map.set(key, value)
    if (map.size > TOKEN_EXCHANGE_CACHE_MAX_ENTRIES) map.delete(map.keys().next().value!)
  }
  const exchange = async (token: string, expiresAtMs: number): Promise<string> => {
    stats.calls++
    try {
      const issued = await endpoint.issue(`grant_type=${formEncode(TOKEN_EXCHANGE_GRANT)}&subject_token=${formEncode(token)}&subject_token_type=${formEncode(ACCESS_TOKEN_TYPE)}&requested_token_type=${formEncode(ACCESS_TOKEN_TYPE)}`, now)
      // Never used past the caller's own token.
      remember(cache, token, { value: issued.value, staleAtMs: Math.min(issued.staleAtMs, expiresAtMs) })
      return issued.value
    } catch (err) {
      const f = err instanceof TokenRequestFailure ? err : new TokenRequestFailure('error', undefined, undefined)
      logFailure(log, route, endpoint.endpointForLogs, 'token_exchange', f)
      let error: UpstreamCredentialError
      // RFC 8693 §2.2.2 / RFC 6749 §5.2: a verdict on the caller's token or request, remembered briefly;
      // anything else (our client refused, unsupported grant, 5xx, network) is the AS's or our configuration's fault.
      if (f.status === 400 && f.oauthError === 'invalid_grant') error = new UpstreamCredentialError('refused_token', 'token_exchange invalid_grant')
      else if (f.status === 400 && (f.oauthError === 'invalid_target' || f.oauthError === 'invalid_scope' || f.oauthError === 'access_denied')) error = new UpstreamCredentialError('refused_scope', `token_exchange ${f.oauthError}`)
      else {
        failedUntilMs = now() + UPSTREAM_TOKEN_FAILURE_COOLDOWN_MS
        throw new UpstreamCredentialError('unavailable', `token_exchange ${f.reason}`)
      }
      remember(refused, token, { error, untilMs: now() + TOKEN_EXCHANGE_NEGATIVE_TTL_MS })
      throw error
    } finally {
      inflight.delete(token)
    }
  }
  return {
    header: cfg.header,
    needsClientToken: true,
    stats,
    value: (principal, token, nowMs) => {
      if (token === undefined) return Promise.reject(new UpstreamCredentialError('unavailable', 'no caller token'))
      const hit = cache.get(token)
      if (hit !== undefined) {
        if (nowMs < hit.staleAtMs) {
          cache.delete(token)
          cache.set(token, hit)
          return hit.value
        }
        cache.delete(token)
      }
      const pending = inflight.get(token)
      if (pending !== undefined) return pending
      const no = refused.get(token)
      if (no !== undefined) {
        if (nowMs < no.untilMs) return Promise.reject(no.error)
        refused.delete(token)
      }
      if (nowMs < failedUntilMs) return Promise.reject(new UpstreamCredentialError('unavailable', 'token_exchange failed recently'))
      const p = exchange(token, principal.expiresAtMs)
      inflight.set(token, p)
      return p
    },
    close: () => {
      endpoint.close()
      cache.clear()
      refused.clear()
    }
  }
}

/** The route's upstream credential, or undefined for `none`. */
export function createUpstreamCredential (cfg: UpstreamAuthConfig, route: string, log: CredentialLogger, now: () => number = Date.now): UpstreamCredential | undefined {
  switch (cfg.type) {
    case 'none': return undefined
    case 'header': {
      const value = cfg.value
      return { header: cfg.header, needsClientToken: false, stats: { calls: 0 }, value: () => value, close: () => {} }
    }
    case 'clientCredentials': return clientCredentials(cfg, route, log, now)
    case 'tokenExchange': return tokenExchange(cfg, route, log, now)
  }
}

/** Headers the gateway adds upstream for one request: a flat [name, value, …] list, or a promise of one. */
export type UpstreamExtras = (principal: Principal, rawHeaders: readonly string[], nowMs: number) => string[] | Promise<string[]>

/**
 * Combine a route's assertion and upstream credential into one per-request
 * step; undefined when the route has neither, so such routes pay nothing.
 * Values are added after the client's headers were stripped (headers.ts
 * strips both names), so a client can never supply either.
 */
export function compileUpstreamExtras (assertion: AssertionIssuer | undefined, credential: UpstreamCredential | undefined): UpstreamExtras | undefined {
  if (assertion === undefined && credential === undefined) return undefined
  return (principal, rawHeaders, nowMs) => {
    const a = assertion?.get(principal, nowMs)
    let c: string | Promise<string> | undefined
    if (credential !== undefined) {
      let token: string | undefined
      if (credential.needsClientToken) {
        // Authentication already accepted exactly one Bearer credential from these headers.
        const cred = extractCredential(authorizationValues(rawHeaders), '', false)
        if (cred.kind === 'bearer') token = cred.token
      }
      c = credential.value(principal, token, nowMs)
    }
    if (typeof a !== 'object' && typeof c !== 'object') {
      const out: string[] = []
      if (a !== undefined) out.push(assertion!.header, a)
      if (c !== undefined) out.push(credential!.header, c)
      return out
    }
    return Promise.all([a, c]).then(([av, cv]) => {
      const out: string[] = []
      if (av !== undefined) out.push(assertion!.header, av)
      if (cv !== undefined) out.push(credential!.header, cv)
      return out
    })
  }
}
