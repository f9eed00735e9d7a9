/**
 * Authorization-server metadata discovery (RFC 8414 §3, OIDC Discovery §4),
 * in the order the MCP spec gives clients (2025-11-25, "Authorization Server
 * Metadata Discovery"), plus the issuer-relative RFC 8414 form some servers
 * (oidc-provider, Okta custom AS) serve.
 */
import { fetchJson, FetchJsonError } from './fetch-json.js'
import { isLoopbackHost } from '../config/schema.js'

export interface AuthorizationServerMetadata {
  readonly issuer: string
  readonly jwks_uri: string
  readonly [key: string]: unknown
}

/** Candidate metadata URLs for an issuer, most specific first. */
export function metadataCandidates (issuer: string): string[] {
  const url = new URL(issuer)
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
  if (path === '') {
    return [`${url.origin}/.well-known/oauth-authorization-server`, `${url.origin}/.well-known/openid-configuration`]
  }
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}${path}/.well-known/oauth-authorization-server`
  ]
}

/** Thrown when discovery found a document that can never be right (a misconfiguration, not an outage). */
export class DiscoveryMismatchError extends Error {}

/** A URL the gateway may fetch key material from: https, or http on loopback. */
export function isFetchableUrl (value: string): boolean {
  try {
    const u = new URL(value)
    return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))
  } catch {
    return false
  }
}

/**
 * Fetch the first metadata document that exists. A 4xx moves on to the next
 * candidate; a network error or 5xx makes the whole attempt fail (retry later),
 * so an outage is never mistaken for "no such document".
 */
export async function discoverMetadata (issuer: string, explicitUrl: string | undefined, opts: { timeoutMs: number, maxBytes: number }): Promise<AuthorizationServerMetadata> {
  const candidates = explicitUrl !== undefined ? [explicitUrl] : metadataCandidates(issuer)
  const tried: string[] = []
  for (const url of candidates) {
    let doc: unknown
    try {
      doc = await fetchJson(url, opts)
    } catch (err) {
      if (err instanceof FetchJsonError && err.status !== undefined && err.status >= 400 && err.status < 500) {
        tried.push(`${url} (${err.status})`)
        continue
      }
      throw err
    }
    if (doc === null || typeof doc !== 'object') throw new DiscoveryMismatchError(`${url}: metadata is not a JSON object`)
    const md = doc as Record<string, unknown>
    // RFC 8414 §3.3: the issuer in the document MUST be identical to the one used to find it.
    if (md.issuer !== issuer) {
      throw new DiscoveryMismatchError(`${url}: metadata issuer ${JSON.stringify(md.issuer)} is not identical to the configured issuer ${JSON.stringify(issuer)}`)
    }
    if (typeof md.jwks_uri !== 'string' || !isFetchableUrl(md.jwks_uri)) {
      throw new DiscoveryMismatchError(`${url}: metadata jwks_uri is missing or not an https:// URL (http only on loopback)`)
    }
    return md as AuthorizationServerMetadata
  }
  throw new DiscoveryMismatchError(`no metadata document found; tried ${tried.join(', ')}`)
}
