/**
 * RFC 7662 token introspection for opaque access tokens: the HTTP exchange,
 * the `active` / token-type decision, a bounded negative cache and single
 * flight. Positive results are cached by the caller (as principals, until
 * min(exp, now + cacheTtlMs)), which also checks iss/aud/exp/scope.
 *
 * Fails closed: any doubt about the endpoint (down, slow, 5xx, not JSON, our
 * credentials refused) is a {@link TemporarilyUnavailableError}, never cached.
 * Never logs the token, the client secret or a response body.
 */
import { Agent, request, type Dispatcher } from 'undici'
import { InvalidTokenError, TemporarilyUnavailableError, type InvalidTokenReason } from '../errors.js'
import type { IntrospectionConfig } from '../config/types.js'
import { INTROSPECTION_NEGATIVE_CACHE_MAX_ENTRIES as NEGATIVE_CACHE_MAX_ENTRIES, MAX_INTROSPECTION_RESPONSE_BYTES, UNAVAILABLE_RETRY_AFTER_SECONDS } from '../config/defaults.js'
import type { VerifierLogger } from './jwt.js'
import { tokenKey } from './token-cache.js'
import { NOOP_TELEMETRY, type Telemetry } from '../observability/telemetry.js'

/** Introspection error codes (RFC 6749 §5.2 style) are logged only if they look like one: never free text. */
const ERROR_CODE = /^[a-z_]{1,64}$/

/** Short, stable reason codes for log lines and error details. */
type FailureReason = 'timeout' | 'unreachable' | 'client_auth_failed' | 'rejected_request' | 'unexpected_status' | 'server_error' | 'response_too_large' | 'invalid_json' | 'invalid_response' | 'stopped'

interface Remembered {
  readonly reason: InvalidTokenReason
  readonly untilMs: number
}

/**
 * Why an active introspection response does not describe a bearer access
 * token, or undefined when it does. Pure; exported for tests.
 *
 * A response must say it is a bearer token, through `token_type` (RFC 7662
 * §2.2, values from RFC 6749 §7.1) or Keycloak's `typ`. Saying nothing is
 * refused: oidc-provider, Spring Authorization Server and MITREid mark a
 * refresh token only by leaving `token_type` out. Ory's `token_use`, when
 * present, must be `access_token`. `DPoP` and any `cnf` mean a
 * sender-constrained token (RFC 9449 §7.1, RFC 8705 §3): the gateway checks
 * no proof of possession, so accepting it as a bearer token would undo the binding.
 */
export function notBearerAccessToken (r: Readonly<Record<string, unknown>>): string | undefined {
  const tokenType = r.token_type
  const typ = r.typ
  if (tokenType !== undefined && !isBearer(tokenType)) return 'token_type is not Bearer'
  if (typ !== undefined && !isBearer(typ)) return 'typ is not Bearer'
  if (tokenType === undefined && typ === undefined) return 'no token_type'
  if (r.token_use !== undefined && r.token_use !== 'access_token') return 'token_use is not access_token'
  if (r.cnf !== undefined) return 'sender-constrained (cnf)'
  return undefined
}

const NOT_JSON = Symbol('not JSON')

function parseJson (buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'))
  } catch {
    return NOT_JSON
  }
}

function isBearer (v: unknown): boolean {
  return typeof v === 'string' && v.toLowerCase() === 'bearer'
}

/** `application/x-www-form-urlencoded` encoding of one value (the WHATWG algorithm, as RFC 6749 §2.3.1 and Appendix B ask). */
function formEncode (value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1)
}

/** RFC 7662 client for one issuer's introspection endpoint. */
export class Introspector {
  /** Lookups made (HTTP requests started) and negative-cache hits, for tests and metrics. */
  readonly stats = { calls: 0, negativeHits: 0 }
  readonly #issuer: string
  readonly #config: IntrospectionConfig
  readonly #log: VerifierLogger
  readonly #now: () => number
  /** The endpoint without query or credentials: what log lines show. */
  readonly #endpointForLogs: string
  readonly #headers: Record<string, string>
  /** Appended to `token=…`: the hint and, for client_secret_post, the credentials. */
  readonly #bodySuffix: string
  readonly #agent: Agent
  #stopped = false
  /** Keyed by SHA-256 of the token: bounded memory whatever the token size. */
  readonly #negative = new Map<string, Remembered>()
  readonly #inflight = new Map<string, Promise<Record<string, unknown>>>()
  readonly #telemetry: Telemetry

  constructor (issuer: string, config: IntrospectionConfig, log: VerifierLogger, opts: { now?: () => number, telemetry?: Telemetry } = {}) {
    this.#issuer = issuer
    this.#telemetry = opts.telemetry ?? NOOP_TELEMETRY
    this.#config = config
    this.#log = log
    this.#now = opts.now ?? Date.now
    const url = new URL(config.endpoint)
    this.#endpointForLogs = url.origin + url.pathname
    this.#headers = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json'
    }
    let suffix = '&token_type_hint=access_token'
    if (config.authMethod === 'client_secret_basic') {
      // RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
      const pair = `${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`
      this.#headers.authorization = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`
    } else {
      suffix += `&client_id=${formEncode(config.clientId)}&client_secret=${formEncode(config.clientSecret)}`
    }
    this.#bodySuffix = suffix
    // Own connection pool: closed by stop(). undici's request never follows redirects,
    // which could otherwise carry the token and credentials to another host.
    this.#agent = new Agent({
      connect: { timeout: config.timeoutMs },
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs
    })
  }

  /**
   * RFC 7662 lookup. Resolves with the response members of an active bearer
   * access token (frozen; shared by concurrent callers of the same token).
   *
   * @throws {InvalidTokenError} `inactive` for `active: false`; `malformed` when
   *   the endpoint refuses the token's type (400 unsupported_token_type, e.g. a
   *   JWT at oidc-provider); `wrong_type` when the response is not a bearer
   *   access token (see {@link notBearerAccessToken}). Remembered for
   *   `negativeCacheTtlMs`.
   * @throws {TemporarilyUnavailableError} when the endpoint cannot give an
   *   answer (down, timeout, 5xx, not JSON, our credentials refused). Not cached.
   */
  async introspect (token: string): Promise<Record<string, unknown>> {
    const key = tokenKey(token)
    const known = this.#negative.get(key)
    if (known !== undefined) {
      if (known.untilMs > this.#now()) {
        this.stats.negativeHits++
        this.#telemetry.introspection(this.#issuer, 'negative_cache_hit')
        throw new InvalidTokenError(known.reason, { detail: 'introspection result remembered' })
      }
      this.#negative.delete(key)
    }
    let pending = this.#inflight.get(key)
    if (pending === undefined) {
      pending = this.#lookup(token, key).finally(() => { this.#inflight.delete(key) })
      this.#inflight.set(key, pending)
    }
    return await pending
  }

  /** One HTTP call: call_ok when the endpoint gave a verdict (active or not), call_error when it could not (a 503 for the caller). */
  async #lookup (token: string, key: string): Promise<Record<string, unknown>> {
    try {
      const r = await this.#call(token, key)
      this.#telemetry.introspection(this.#issuer, 'call_ok')
      return r
    } catch (err) {
      if (!this.#stopped) this.#telemetry.introspection(this.#issuer, err instanceof InvalidTokenError ? 'call_ok' : 'call_error')
      throw err
    }
  }

  /** Abort lookups in flight (destroying the pool fails them), forget everything and close the connections. */
  stop (): void {
    this.#stopped = true
    this.#negative.clear()
    this.#inflight.clear()
    this.#agent.destroy().catch(() => {})
  }

  async #call (token: string, key: string): Promise<Record<string, unknown>> {
    if (this.#stopped) throw this.#unavailable('stopped', undefined, undefined)
    this.stats.calls++
    let res: Dispatcher.ResponseData
    try {
      res = await request(this.#config.endpoint, {
        method: 'POST',
        headers: this.#headers,
        body: `token=${formEncode(token)}${this.#bodySuffix}`,
        dispatcher: this.#agent,
        // Bounds the whole exchange, body included; the pool's own timeouts bound each phase.
        signal: AbortSignal.timeout(this.#config.timeoutMs)
      })
    } catch (err) {
      throw this.#networkFailure(err)
    }

    const status = res.statusCode
    if (status === 200 || status === 400) {
      const json = parseJson(await this.#readBody(res))
      if (status === 400) return this.#badRequest(json, key)
      if (json === NOT_JSON) throw this.#unavailable('invalid_json', 'HTTP 200', 'warn')
      if (json === null || typeof json !== 'object' || Array.isArray(json)) throw this.#unavailable('invalid_response', 'not an object', 'warn')
      const body = json as Record<string, unknown>
      if (body.active === false) throw this.#remember(key, 'inactive', 'inactive')
      // RFC 7662 §2.2: `active` is a REQUIRED boolean; anything else is a broken endpoint, not a verdict.
      if (body.active !== true) throw this.#unavailable('invalid_response', 'active is not a boolean', 'warn')
      const notAccess = notBearerAccessToken(body)
      if (notAccess !== undefined) throw this.#remember(key, 'wrong_type', notAccess)
      return Object.freeze(body)
    }

    await res.body.dump().catch(() => {})
    // RFC 6749 §5.2: a refused client is 401 (or 403 when it may not introspect): wrong gateway credentials.
    if (status === 401 || status === 403) throw this.#unavailable('client_auth_failed', `HTTP ${status}`, 'error')
    if (status >= 500) throw this.#unavailable('server_error', `HTTP ${status}`, 'warn')
    // 3xx (redirects are not followed), 404, other 4xx: the endpoint setting is wrong.
    throw this.#unavailable('unexpected_status', `HTTP ${status}`, 'error')
  }

  /** 400: the token's type is refused (a verdict on the token), or our request is (a misconfiguration). */
  #badRequest (json: unknown, key: string): never {
    const error = json !== null && typeof json === 'object' ? (json as { error?: unknown }).error : undefined
    if (error === 'unsupported_token_type') throw this.#remember(key, 'malformed', 'unsupported_token_type')
    const code = typeof error === 'string' && ERROR_CODE.test(error) ? error : 'no error code'
    if (error === 'invalid_client') throw this.#unavailable('client_auth_failed', `HTTP 400 ${code}`, 'error')
    throw this.#unavailable('rejected_request', `HTTP 400 ${code}`, 'error')
  }

  /** Read at most {@link MAX_INTROSPECTION_RESPONSE_BYTES}; failures are outages. */
  async #readBody (res: Dispatcher.ResponseData): Promise<Buffer> {
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > MAX_INTROSPECTION_RESPONSE_BYTES) {
          res.body.destroy()
          throw this.#unavailable('response_too_large', `over ${MAX_INTROSPECTION_RESPONSE_BYTES} bytes`, 'warn')
        }
        chunks.push(chunk as Buffer)
      }
    } catch (err) {
      if (err instanceof TemporarilyUnavailableError) throw err
      throw this.#networkFailure(err)
    }
    return Buffer.concat(chunks, size)
  }

  #networkFailure (err: unknown): TemporarilyUnavailableError {
    if (this.#stopped) return this.#unavailable('stopped', undefined, undefined)
    const e = err as { code?: unknown, name?: unknown } | null
    // Only the stable code or error name, never a message (it could quote the URL or a header).
    const code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'error'
    const timedOut = code === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
    return this.#unavailable(timedOut ? 'timeout' : 'unreachable', code, 'warn')
  }

  /** One log line (issuer, endpoint, reason code) and the 503 error. `level` undefined: no log (shutting down). */
  #unavailable (reason: FailureReason, detail: string | undefined, level: 'warn' | 'error' | undefined): TemporarilyUnavailableError {
    if (level !== undefined) {
      this.#log[level]({ issuer: this.#issuer, endpoint: this.#endpointForLogs, reason, detail }, 'token introspection failed')
    }
    return new TemporarilyUnavailableError(UNAVAILABLE_RETRY_AFTER_SECONDS, { detail: `introspection ${reason}${detail === undefined ? '' : ` (${detail})`}` })
  }

  /** Remember a refused token for negativeCacheTtlMs (oldest entry evicted at the bound) and return the error. */
  #remember (key: string, reason: InvalidTokenReason, detail: string): InvalidTokenError {
    const ttl = this.#config.negativeCacheTtlMs
    if (ttl > 0 && !this.#stopped) {
      this.#negative.delete(key)
      this.#negative.set(key, { reason, untilMs: this.#now() + ttl })
      if (this.#negative.size > NEGATIVE_CACHE_MAX_ENTRIES) {
        // Insertion order is expiry order (one TTL for all): the first entry is the oldest.
        const oldest = this.#negative.keys().next().value
        if (oldest !== undefined) this.#negative.delete(oldest)
      }
    }
    return new InvalidTokenError(reason, { detail: `introspection: ${detail}` })
  }
}
