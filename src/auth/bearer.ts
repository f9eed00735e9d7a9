/**
 * Extracts the bearer credential from a request. Only the Authorization header
 * is supported (`bearer_methods_supported: ["header"]`); a token in the query
 * string or a second credential is `invalid_request` (RFC 6750 §2, §3.1).
 */
import { InvalidRequestError } from '../errors.js'

/** What the request carried. `other_scheme` (e.g. Basic) is answered like no credential at all. */
export type Credential =
  | { readonly kind: 'none' }
  | { readonly kind: 'other_scheme' }
  | { readonly kind: 'bearer', readonly token: string }

const NONE: Credential = Object.freeze({ kind: 'none' })
const OTHER: Credential = Object.freeze({ kind: 'other_scheme' })

/** RFC 6750 §2.1 b64token. */
const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/
/** Cheap pre-filter: a query that cannot name `access_token` (raw or percent-encoded) is not parsed. */
const MAYBE_TOKEN_RE = /access|%/i

/** True when a query parameter named `access_token` is present, however its name is encoded. */
function hasQueryToken (query: string): boolean {
  if (!MAYBE_TOKEN_RE.test(query)) return false
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const rawName = eq === -1 ? part : part.slice(0, eq)
    let name = rawName
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '))
    } catch { /* undecodable names are compared raw */ }
    if (name === 'access_token') return true
  }
  return false
}

/**
 * @param authorization every Authorization header value, in order (Node keeps only the first in `headers`, so pass them from `rawHeaders`)
 * @param query the raw query string without `?`, or '' when none
 * @param checkSyntax check the token against the RFC 6750 b64token syntax; the hot path skips it for tokens already in the verified cache, which passed it before, and calls {@link checkTokenSyntax} on a miss
 * @throws InvalidRequestError on a malformed or duplicated credential
 */
export function extractCredential (authorization: readonly string[], query: string, checkSyntax = true): Credential {
  if (query !== '' && hasQueryToken(query)) {
    throw new InvalidRequestError('Access tokens must be sent in the Authorization header, not in the query string')
  }
  if (authorization.length === 0) return NONE
  if (authorization.length > 1) {
    throw new InvalidRequestError('More than one Authorization header was sent')
  }
  const value = authorization[0]!.trim()
  const sp = value.indexOf(' ')
  const scheme = sp === -1 ? value : value.slice(0, sp)
  // The auth-scheme is case-insensitive (RFC 9110 §11.1).
  if (scheme.toLowerCase() !== 'bearer') return value === '' ? NONE : OTHER
  const token = sp === -1 ? '' : value.slice(sp + 1).trim()
  if (token === '') throw new InvalidRequestError('The Bearer credential is empty')
  if (checkSyntax) checkTokenSyntax(token)
  return { kind: 'bearer', token }
}

/** RFC 6750 §2.1: a bearer token is one b64token. @throws InvalidRequestError */
export function checkTokenSyntax (token: string): void {
  if (!B64TOKEN_RE.test(token)) {
    throw new InvalidRequestError(token.includes(' ') || token.includes(',') ? 'More than one Bearer token was sent' : 'The Bearer credential is not a valid token')
  }
}

/** All values of the Authorization header from Node's `rawHeaders` (name/value pairs). */
export function authorizationValues (rawHeaders: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === 13 && name.toLowerCase() === 'authorization') out.push(rawHeaders[i + 1]!)
  }
  return out
}
