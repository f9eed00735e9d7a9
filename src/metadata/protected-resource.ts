/**
 * RFC 9728 protected-resource metadata documents, built once at startup.
 */
import type { GatewayConfig, RouteConfig } from '../config/types.js'

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
    authorization_servers: Object.freeze(config.authorizationServers.map((a) => a.issuer)),
    scopes_supported: Object.freeze([...route.scopes]),
    bearer_methods_supported: Object.freeze(['header'])
  })
  return { doc, json: JSON.stringify(doc) }
}

/** Well-known path prefix for a route's document (RFC 9728 §3.1: inserted before the resource path). */
export const PRM_PREFIX = '/.well-known/oauth-protected-resource'
