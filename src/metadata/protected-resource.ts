/**
 * RFC 9728 protected-resource metadata documents, built once at startup.
 */
import type { GatewayConfig, RouteConfig } from '../config/types.js'
import { SCOPES_NOT_ADVERTISED } from '../config/defaults.js'

export interface ProtectedResourceMetadata {
  readonly resource: string
  readonly authorization_servers: readonly string[]
  readonly scopes_supported: readonly string[]
  readonly bearer_methods_supported: readonly string[]
}

/** The metadata document of a route, serialised once. */
export function buildMetadata (config: GatewayConfig, route: RouteConfig): { doc: ProtectedResourceMetadata, json: string } {
  const doc: ProtectedResourceMetadata = Object.freeze({
    // RFC 9728 §3.3: must be identical to the resource the client used to fetch it.
    resource: route.resource,
    // Issuers exactly as written: clients compare them with the AS metadata `issuer`.
    // Only the issuers this route trusts.
    authorization_servers: Object.freeze([...route.issuers]),
    scopes_supported: Object.freeze(routeScopes(route)),
    bearer_methods_supported: Object.freeze(['header'])
  })
  return { doc, json: JSON.stringify(doc) }
}

/**
 * Every scope the route can ask for: its own, then the policy's, in config
 * order, without offline_access (clients request that for themselves).
 */
export function routeScopes (route: RouteConfig): string[] {
  const out = new Set<string>(route.scopes)
  const p = route.policy
  if (p !== undefined) {
    for (const s of p.default) out.add(s)
    for (const list of p.methods.values()) for (const s of list) out.add(s)
    for (const group of [p.tools, p.resources, p.prompts]) for (const [, list] of group) for (const s of list) out.add(s)
  }
  for (const s of SCOPES_NOT_ADVERTISED) out.delete(s)
  return [...out]
}

/** Well-known path prefix for a route's document (RFC 9728 §3.1: inserted before the resource path). */
export const PRM_PREFIX = '/.well-known/oauth-protected-resource'
