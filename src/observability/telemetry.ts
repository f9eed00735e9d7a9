/**
 * The seam between the request path and the metrics: plain interfaces the
 * core modules and plugins call, with no dependency on prom-client (only
 * observability/metrics.ts implements them). {@link NOOP_TELEMETRY} stands in
 * when metrics are off or a module is used on its own.
 *
 * Label values passed here are bounded by construction: route ids and
 * issuers come from the config, outcomes and limits are the gateway's own
 * codes, and names from request bodies go through {@link compileDenialLabel}.
 * Never a subject, client id, token, session id or query string.
 */
import type { PolicyConfig } from '../config/types.js'

/** introspection_total `result`. */
export type IntrospectionResult = 'call_ok' | 'call_error' | 'cache_hit' | 'negative_cache_hit'

/** rate_limit_rejections_total `limit`. */
export type RateLimitKind = 'perIp' | 'perPrincipal' | 'perTool'

/** What one route records. Bound once per route at startup, so the request path does no label lookup of its own. */
export interface RouteTelemetry {
  /**
   * One finished request: requests_total and request_duration_seconds.
   * @param status the HTTP status; 0 when the client left before the response ended (outcome client_closed)
   */
  request: (method: string, status: number, outcome: string, durationMs: number) => void
  /** overhead_seconds: time from the request's arrival until the upstream request was dispatched. */
  overhead: (ms: number) => void
  /** token_cache_total: a verified-token cache hit or miss. */
  tokenCache: (hit: boolean) => void
  /** rate_limit_rejections_total: a 429 from one of the limits. */
  rateLimited: (limit: RateLimitKind) => void
  /** policy_denials_total: one refused message; `label` from {@link compileDenialLabel}. */
  policyDenied: (label: string) => void
  /** session_rejections_total: a session id refused for this caller (404). */
  sessionRejected: () => void
}

/** What the gateway records; one per process (it outlives SIGHUP generations). */
export interface Telemetry {
  /** The handle of a route, by its id (the same handle for the same id across reloads). */
  route: (id: string) => RouteTelemetry
  /** The handle for requests outside the MCP routes (metadata, probes, metrics, 404): route label `none`. */
  readonly none: RouteTelemetry
  /** open_streams: an SSE stream through the gateway began / ended. */
  streamOpened: () => void
  streamClosed: () => void
  /** jwks_fetches_total: one HTTP fetch of an issuer's JWKS; ok when it answered 200. */
  jwksFetch: (issuer: string, ok: boolean) => void
  /** jwks_unknown_kid_during_outage_total: a token refused because its key was not in the last set fetched while the JWKS is down. */
  jwksUnknownKeyDuringOutage: (issuer: string) => void
  /** introspection_total. */
  introspection: (issuer: string, result: IntrospectionResult) => void
}

const noop = (): void => {}

export const NOOP_ROUTE_TELEMETRY: RouteTelemetry = Object.freeze({
  request: noop,
  overhead: noop,
  tokenCache: noop,
  rateLimited: noop,
  policyDenied: noop,
  sessionRejected: noop
})

export const NOOP_TELEMETRY: Telemetry = Object.freeze({
  route: () => NOOP_ROUTE_TELEMETRY,
  none: NOOP_ROUTE_TELEMETRY,
  streamOpened: noop,
  streamClosed: noop,
  jwksFetch: noop,
  jwksUnknownKeyDuringOutage: noop,
  introspection: noop
})

/** Label of requests outside the MCP routes, and of denials with no JSON-RPC method (a GET refused by the policy). */
export const NO_ROUTE_LABEL = 'none'
/** Label of every name not known in advance. */
export const OTHER_LABEL = 'other'

/** MCP request and notification methods (2025-11-25): named in policy_denials_total as they are. */
const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'resources/list', 'resources/templates/list', 'resources/read',
  'resources/subscribe', 'resources/unsubscribe', 'prompts/list', 'prompts/get', 'completion/complete', 'logging/setLevel',
  'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed'
])

/**
 * The policy_denials_total `tool` label of a refused message, bounded whatever
 * the body says (the names are the caller's text): a tools/call name only if
 * it is literally a key of the route's `policy.tools`; another method by its
 * name only if the policy names it or it is an MCP method; else `other`.
 */
export function compileDenialLabel (policy: PolicyConfig): (method: string | undefined, name: string | undefined) => string {
  const tools = new Set(policy.tools.map(([k]) => k))
  const methods = new Set([...MCP_METHODS, ...policy.methods.keys()])
  return (method, name) => {
    if (method === undefined) return NO_ROUTE_LABEL
    if (method === 'tools/call') return name !== undefined && tools.has(name) ? name : OTHER_LABEL
    return methods.has(method) ? method : OTHER_LABEL
  }
}
