/**
 * The authenticated caller, as the rest of the gateway sees it. Built from a
 * verified token (or introspection result) through the issuer's claim mapping;
 * never contains the token itself.
 */
import type { JWTPayload } from 'jose'
import { InvalidTokenError } from '../errors.js'
import type { ClaimMapping, ClaimPath } from '../config/types.js'

export interface Principal {
  readonly subject: string
  readonly clientId: string | undefined
  /** The configured issuer this token was verified against. */
  readonly issuer: string
  readonly scopes: ReadonlySet<string>
  /** Scopes, space-separated, in token order (for the X-Forwarded-Scopes header). */
  readonly scopeString: string
  /** Roles/groups/permissions from the issuer's role claims; never used for scope checks. */
  readonly roles: ReadonlySet<string>
  /** Roles, space-separated (for the roles identity header; empty when none). */
  readonly roleString: string
  /** The verified claims, for claim-mapped headers. */
  readonly claims: Readonly<JWTPayload>
  /** Epoch milliseconds after which this principal must not be used. */
  readonly expiresAtMs: number
}

/** Reads one claim location from a claims object; undefined when any step is absent. */
export type ClaimGetter = (claims: Readonly<JWTPayload>) => unknown

/**
 * Compile a claim path into a getter. Only own properties of plain objects are
 * followed, so a path can never reach `Object.prototype` (`constructor`,
 * `__proto__`) or index into an array.
 */
export function compileClaimPath (path: ClaimPath): ClaimGetter {
  const keys = [...path]
  if (keys.length === 1) {
    const k = keys[0] as string
    return (claims) => Object.hasOwn(claims, k) ? claims[k] : undefined
  }
  return (claims) => {
    let v: unknown = claims
    for (const k of keys) {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined
      v = (v as Record<string, unknown>)[k]
    }
    return v
  }
}

/** Dotted name of a path, for log details. */
function pathName (path: ClaimPath): string {
  return path.join('.')
}

/** Appends the space-separated items of a string or the items of a list of strings; false for any other shape. */
function addItems (into: string[], value: unknown): boolean {
  if (typeof value === 'string') {
    for (const s of value.split(' ')) if (s !== '') into.push(s)
    return true
  }
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v !== 'string') return false
    for (const v of value as string[]) if (v !== '') into.push(v)
    return true
  }
  return false
}

/** Maps verified claims to a principal; `expiresAtMs` defaults to `exp` × 1000. */
export type PrincipalMapper = (claims: Readonly<JWTPayload>, expiresAtMs?: number) => Principal

/** Compiled first-usable-string lookup over candidate paths. */
export type FirstStringGetter = (claims: Readonly<JWTPayload>) => string | undefined

/**
 * Client id lookup: the first candidate whose value is a non-empty string;
 * unusable values (numbers, lists, '') are skipped, the client id being optional.
 */
export function compileFirstString (candidates: readonly ClaimPath[]): FirstStringGetter {
  const getters = candidates.map(compileClaimPath)
  return (claims) => {
    for (const g of getters) {
      const v = g(claims)
      if (typeof v === 'string' && v !== '') return v
    }
    return undefined
  }
}

/**
 * Compile a {@link ClaimMapping} for one issuer, once at startup.
 *
 * - subject: the first candidate that is present. It must be a non-empty
 *   string (else `invalid_claim`): a malformed `sub` never falls back to a
 *   later candidate such as drupal's `aud`, which would attribute a user's
 *   token to the client. None present: `missing_claim`.
 * - clientId: the first candidate holding a non-empty string (optional).
 * - scopes: union of every scope claim, each a space-separated string or a
 *   list of strings; any other shape (null, number, object, mixed list) is
 *   `invalid_claim`. Token order, first occurrence wins.
 * - roles: same shapes and same refusal as scopes (they reach the upstream as
 *   a header it may act on, so a malformed one is not silently dropped).
 */
export function compilePrincipalMapper (mapping: ClaimMapping, issuer: string): PrincipalMapper {
  const subjects = mapping.subject.map((p) => ({ get: compileClaimPath(p), name: pathName(p) }))
  const clientId = compileFirstString(mapping.clientId)
  const scopeClaims = mapping.scopes.map((p) => ({ get: compileClaimPath(p), name: pathName(p) }))
  const roleClaims = mapping.roles.map((p) => ({ get: compileClaimPath(p), name: pathName(p) }))
  const subjectNames = subjects.map((s) => s.name).join(', ')

  function subjectOf (claims: Readonly<JWTPayload>): string {
    for (const s of subjects) {
      const v = s.get(claims)
      if (v === undefined) continue
      if (typeof v === 'string' && v !== '') return v
      throw new InvalidTokenError('invalid_claim', { detail: `claim ${s.name} is not a non-empty string` })
    }
    throw new InvalidTokenError('missing_claim', { detail: `no subject claim (${subjectNames})` })
  }

  function union (claims: Readonly<JWTPayload>, list: typeof scopeClaims): Set<string> {
    const items: string[] = []
    for (const c of list) {
      const v = c.get(claims)
      if (v !== undefined && !addItems(items, v)) {
        throw new InvalidTokenError('invalid_claim', { detail: `claim ${c.name} is neither a string nor a list of strings` })
      }
    }
    return new Set(items)
  }

  return (claims, expiresAtMs) => {
    const subject = subjectOf(claims)
    const scopes = union(claims, scopeClaims)
    const roles = roleClaims.length === 0 ? EMPTY : union(claims, roleClaims)
    return Object.freeze({
      subject,
      clientId: clientId(claims),
      issuer,
      scopes,
      scopeString: [...scopes].join(' '),
      roles,
      roleString: roles.size === 0 ? '' : [...roles].join(' '),
      claims,
      // exp is required by the JWT verifier, so it is a number here; introspection passes its own bound.
      expiresAtMs: expiresAtMs ?? (claims.exp as number) * 1000
    })
  }
}

const EMPTY: ReadonlySet<string> = Object.freeze(new Set<string>())

/** The generic profile's mapping (RFC 9068 names plus the common vendor ones); the profile table itself lives in config/profiles.ts. */
const GENERIC_MAPPING: ClaimMapping = {
  subject: [['sub'], ['client_id']],
  clientId: [['client_id'], ['azp'], ['cid'], ['appid']],
  scopes: [['scope'], ['scp'], ['scopes']],
  roles: []
}

/**
 * One-off mapping for tests and tools: compiles `mapping` (default: the generic
 * profile's) on every call. Request paths use {@link compilePrincipalMapper}.
 */
export function principalFromClaims (claims: JWTPayload, issuer: string, mapping: ClaimMapping = GENERIC_MAPPING): Principal {
  return compilePrincipalMapper(mapping, issuer)(claims)
}
