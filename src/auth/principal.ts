/**
 * The authenticated caller, as the rest of the gateway sees it. Built from a
 * verified token; never contains the token itself.
 */
import type { JWTPayload } from 'jose'
import { InvalidTokenError } from '../errors.js'

export interface Principal {
  readonly subject: string
  readonly clientId: string | undefined
  /** The configured issuer this token was verified against. */
  readonly issuer: string
  readonly scopes: ReadonlySet<string>
  /** Scopes, space-separated, in token order (for the X-Forwarded-Scopes header). */
  readonly scopeString: string
  /** The verified claims, for claim-mapped headers. */
  readonly claims: Readonly<JWTPayload>
  /** Epoch milliseconds after which this principal must not be used. */
  readonly expiresAtMs: number
}

/** Client id claims, first present wins: RFC 9068 `client_id`, OIDC `azp`, Okta `cid`, Entra v1 `appid`. */
const CLIENT_ID_CLAIMS = ['client_id', 'azp', 'cid', 'appid'] as const

function addScopes (into: string[], value: unknown, claim: string): void {
  if (value === undefined) return
  if (typeof value === 'string') {
    for (const s of value.split(' ')) if (s !== '') into.push(s)
    return
  }
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
    into.push(...(value as string[]))
    return
  }
  throw new InvalidTokenError('invalid_claim', { detail: `claim ${claim} is neither a string nor a list of strings` })
}

/**
 * Map verified claims to a principal. Scopes are the union of `scope` (string or
 * array), `scp` (string or array) and `scopes` (array).
 */
export function principalFromClaims (claims: JWTPayload, issuer: string): Principal {
  const sub = claims.sub
  if (typeof sub !== 'string' || sub === '') {
    throw new InvalidTokenError(sub === undefined ? 'missing_claim' : 'invalid_claim', { detail: 'claim sub is missing or not a non-empty string' })
  }
  let clientId: string | undefined
  for (const c of CLIENT_ID_CLAIMS) {
    const v = claims[c]
    if (typeof v === 'string' && v !== '') {
      clientId = v
      break
    }
  }
  const list: string[] = []
  addScopes(list, claims.scope, 'scope')
  addScopes(list, claims.scp, 'scp')
  addScopes(list, claims.scopes, 'scopes')
  const scopes = new Set(list)
  return Object.freeze({
    subject: sub,
    clientId,
    issuer,
    scopes,
    scopeString: [...scopes].join(' '),
    claims,
    // exp is required by the verifier, so it is a number here.
    expiresAtMs: (claims.exp as number) * 1000
  })
}
