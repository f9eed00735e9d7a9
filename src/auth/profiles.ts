/**
 * Per-issuer token rules, compiled once from the resolved {@link IssuerConfig}
 * (the profile table in config/profiles.ts has already been applied): required
 * claims, forbidden header parameters, audience rule and claim mapping. The
 * code is generic over those fields; no profile names appear here.
 */
import type { JWTHeaderParameters, JWTPayload } from 'jose'
import { InvalidTokenError } from '../errors.js'
import type { IssuerConfig } from '../config/types.js'
import { compileClaimPath, compileFirstString, compilePrincipalMapper, type Principal } from './principal.js'

export interface IssuerRules {
  /**
   * Throws {@link InvalidTokenError} when verified claims or the JWS header break
   * the issuer's rules:
   * - a required claim absent: `missing_claim`; present with another value:
   *   `wrong_type` when the claim names the token kind (`typ`, `token_use`:
   *   a Keycloak ID token, a Cognito ID token), else `invalid_claim` (`ver`);
   * - a forbidden header parameter present (Entra `nonce`: Graph tokens): `wrong_type`;
   * - `aud` holding only forbidden audiences (Keycloak `account`): `wrong_audience`;
   * - `clientIdClaim` rule: the mapped client id absent or not allowed: `wrong_audience`.
   *
   * `header` is undefined for introspection results.
   */
  check: (payload: JWTPayload, header: JWTHeaderParameters | undefined) => void
  /** Map verified claims to a Principal (InvalidTokenError for unusable claims). `expiresAtMs` defaults to exp × 1000. */
  principal: (payload: JWTPayload, expiresAtMs?: number) => Principal
  /**
   * Audiences a token must match on a route with this resource (trailing-slash
   * variants of URLs included, forbidden audiences removed), or null for no
   * `aud` check (the `clientIdClaim` rule, which {@link check} enforces).
   */
  audiences: (resource: string) => readonly string[] | null
}

/** Claims whose value says what kind of token it is: a mismatch means "not an access token". */
const TOKEN_KIND_CLAIMS = new Set(['typ', 'token_use'])

/** Audience values accepted for a resource: as written, and with the trailing slash added or removed. */
export function audienceVariants (values: readonly string[]): string[] {
  const out = new Set<string>()
  for (const v of values) {
    out.add(v)
    const other = v.endsWith('/') ? v.slice(0, -1) : v + '/'
    // Never derive an empty audience (from "/"): it would match tokens with aud "".
    if (other !== '') out.add(other)
  }
  return [...out]
}

/**
 * For introspection results (RFC 7662 §2.2): `aud` is a string or a list of
 * strings that contains one accepted value. Anything else does not match.
 */
export function audienceMatches (aud: unknown, accepted: readonly string[]): boolean {
  if (typeof aud === 'string') return accepted.includes(aud)
  if (Array.isArray(aud)) {
    for (const a of aud) if (typeof a === 'string' && accepted.includes(a)) return true
  }
  return false
}

/** Compile an issuer's rules once, at startup. */
export function compileIssuerRules (config: IssuerConfig): IssuerRules {
  const required = config.requiredClaims.map(([path, value]) => {
    const name = path.join('.')
    return {
      get: compileClaimPath(path),
      value,
      name,
      mismatch: path.length === 1 && TOKEN_KIND_CLAIMS.has(name) ? 'wrong_type' as const : 'invalid_claim' as const
    }
  })
  const forbiddenHeader = [...config.forbiddenHeaderParams]
  // With slash variants: `account/` is no more acceptable than `account`.
  const forbiddenAud = new Set(audienceVariants(config.forbiddenAudiences))
  const clientIdRule = config.audienceRule === 'clientIdClaim'
  // Fail closed: the clientIdClaim rule without an allowlist admits nobody.
  const allowedClients = new Set(config.allowedClientIds ?? [])
  const clientIdOf = compileFirstString(config.claims.clientId)
  const mapper = compilePrincipalMapper(config.claims, config.issuer)

  const allowed = (values: readonly string[]): readonly string[] => Object.freeze(values.filter((v) => !forbiddenAud.has(v)))
  let fixed: readonly string[] | null | undefined
  if (config.audienceRule === 'clientIdClaim') fixed = null
  // Client ids are opaque strings compared exactly (RFC 6749 §2.2), not URLs: no slash variants.
  else if (config.audienceRule === 'clientIds') fixed = allowed(config.allowedClientIds ?? [])
  else if (config.audience !== undefined) fixed = allowed(audienceVariants(config.audience))

  function check (payload: JWTPayload, header: JWTHeaderParameters | undefined): void {
    for (const r of required) {
      const v = r.get(payload)
      if (v === undefined) throw new InvalidTokenError('missing_claim', { detail: `required claim ${r.name} is missing` })
      if (v !== r.value) throw new InvalidTokenError(r.mismatch, { detail: `claim ${r.name} does not have the required value` })
    }
    if (header !== undefined) {
      for (const p of forbiddenHeader) {
        if (Object.hasOwn(header, p)) throw new InvalidTokenError('wrong_type', { detail: `header parameter ${p} is not accepted from this issuer` })
      }
    }
    if (forbiddenAud.size > 0 && onlyForbidden(payload.aud, forbiddenAud)) {
      throw new InvalidTokenError('wrong_audience', { detail: 'aud holds only audiences this issuer may not use for resources' })
    }
    if (clientIdRule) {
      const id = clientIdOf(payload)
      if (id === undefined || !allowedClients.has(id)) {
        throw new InvalidTokenError('wrong_audience', { detail: id === undefined ? 'no client id claim' : 'client id is not in allowedClientIds' })
      }
    }
  }

  return {
    check,
    principal: mapper,
    audiences: (resource) => fixed !== undefined ? fixed : allowed(audienceVariants([resource]))
  }
}

/**
 * True when `aud` is present and every value is forbidden. A token whose `aud`
 * also names this resource is accepted (Keycloak adds `account` next to a mapped
 * audience whenever the user has account roles); `account` alone never is, even
 * if configured as an audience (it is also removed from the accepted list).
 */
function onlyForbidden (aud: unknown, forbidden: ReadonlySet<string>): boolean {
  if (typeof aud === 'string') return forbidden.has(aud)
  if (Array.isArray(aud) && aud.length > 0) {
    for (const a of aud) if (typeof a !== 'string' || !forbidden.has(a)) return false
    return true
  }
  return false
}
