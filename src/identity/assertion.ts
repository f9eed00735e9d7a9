/**
 * The signed identity assertion: a short-lived JWT, signed by the gateway,
 * that tells the upstream who the verified caller is. Stronger than identity
 * headers: the upstream verifies it against /.well-known/jwks.json instead of
 * trusting that only the gateway can reach it.
 *
 * Header: { alg, kid, typ: "mcp-gateway-assertion+jwt" } (RFC 8725 §3.11).
 * Claims: iss (publicUrl), aud, sub, client_id, scope, idp (the token's
 * issuer), iat, exp (at most 60 s later, and never after the caller's token
 * expires), jti.
 *
 * Signing costs ~100 µs of CPU with jose (ES256, bench/assertion.ts), about
 * as much as the rest of a proxied request. With `reuse: true` (opt-in) one
 * assertion serves a principal's requests on a route for at most half its
 * lifetime; see {@link createAssertionIssuer}.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { ASSERTION_JWT_TYPE, ASSERTION_REUSE_FRACTION } from '../config/defaults.js'
import type { IdentityAssertionConfig } from '../config/types.js'
import type { Principal } from '../auth/principal.js'
import type { SigningKeys } from './keys.js'

/** The claims of one assertion. */
export interface AssertionClaims {
  readonly iss: string
  readonly aud: string
  readonly sub: string
  /** Absent when the caller's token names no client. */
  readonly client_id?: string
  /** Space-separated, in token order; '' when the token has none. */
  readonly scope: string
  /** The issuer that authenticated the caller. */
  readonly idp: string
  readonly iat: number
  readonly exp: number
  readonly jti: string
}

/** The claims for `principal` at `nowMs`. Pure; exported for tests. */
export function assertionClaims (principal: Principal, cfg: IdentityAssertionConfig, issuer: string, nowMs: number): AssertionClaims {
  const iat = Math.floor(nowMs / 1000)
  // Never vouch for a caller beyond its own token's expiry.
  const exp = Math.min(iat + cfg.ttlSeconds, Math.floor(principal.expiresAtMs / 1000))
  return {
    iss: issuer,
    aud: cfg.audience,
    sub: principal.subject,
    ...(principal.clientId !== undefined ? { client_id: principal.clientId } : {}),
    scope: principal.scopeString,
    idp: principal.issuer,
    iat,
    exp,
    jti: randomUUID()
  }
}

/** Sign claims with the current key. */
export async function signAssertion (claims: AssertionClaims, keys: SigningKeys): Promise<string> {
  return await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: keys.algorithm, kid: keys.current.kid, typ: ASSERTION_JWT_TYPE })
    .sign(keys.current.privateKey)
}

/** Issues the assertion header value of one route. */
export interface AssertionIssuer {
  /** Header name, lowercased. */
  readonly header: string
  /** The signed JWT for this principal: a string when a reusable one is at hand, else a promise. */
  get: (principal: Principal, nowMs: number) => string | Promise<string>
}

interface Entry {
  value: string | Promise<string>
  readonly reuseUntilMs: number
}

/**
 * The issuer of one route's assertions.
 *
 * Reuse (cfg.reuse): assertions are cached in a WeakMap keyed by the
 * principal object. A principal is built once per verified token and shared
 * through the token cache, so different callers (or two tokens of one caller)
 * never share an assertion, and entries vanish with their principals. An
 * entry serves for {@link ASSERTION_REUSE_FRACTION} of its remaining lifetime,
 * so every assertion arrives with at least half of it left. Concurrent misses
 * of one principal share one signing. The jti then names the assertion, not
 * the request: an upstream that refuses a repeated jti needs `reuse: false`.
 */
export function createAssertionIssuer (cfg: IdentityAssertionConfig, keys: SigningKeys, issuer: string): AssertionIssuer {
  const sign = async (principal: Principal, nowMs: number): Promise<string> => await signAssertion(assertionClaims(principal, cfg, issuer, nowMs), keys)
  if (!cfg.reuse) return { header: cfg.header, get: sign }
  const cache = new WeakMap<Principal, Entry>()
  const get = (principal: Principal, nowMs: number): string | Promise<string> => {
    const hit = cache.get(principal)
    if (hit !== undefined && hit.reuseUntilMs > nowMs) return hit.value
    const claims = assertionClaims(principal, cfg, issuer, nowMs)
    const entry: Entry = {
      value: signAssertion(claims, keys).then(
        (jwt) => { entry.value = jwt; return jwt },
        (err: unknown) => { if (cache.get(principal) === entry) cache.delete(principal); throw err }
      ),
      reuseUntilMs: nowMs + (claims.exp * 1000 - nowMs) * ASSERTION_REUSE_FRACTION
    }
    cache.set(principal, entry)
    return entry.value
  }
  return { header: cfg.header, get }
}
