/** The systems the bench knows, in the order they run within a round. */

export type SystemId =
  | 'direct' | 'nginx' | 'haproxy-plain' | 'haproxy-jwt' | 'express-sdk' | 'express-keepalive'
  | 'fastify-http-proxy-jose' | 'node-answer' | 'node-undici-jose' | 'gateway' | 'gateway-policy' | 'gateway-introspection' | 'gateway-ratelimit' | 'sdk-direct' | 'sdk-floor' | 'sdk-gateway'

export interface SystemInfo {
  id: SystemId
  /** Letter in the list, when it has one. */
  letter?: string
  label: string
  /** 'proxy': the ~300-byte bare upstream behind it; 'real': the SDK upstream. */
  group: 'proxy' | 'real'
  /** Set for systems that cannot exist yet: reported as such, never measured. */
  notAvailableYet?: string
  /** Whether it is in the default full run. */
  default: boolean
}

export const CATALOGUE: readonly SystemInfo[] = [
  { id: 'direct', letter: 'a', label: 'upstream directly (bare Fastify, no proxy)', group: 'proxy', default: true },
  { id: 'nginx', letter: 'b', label: 'nginx, plain reverse proxy, upstream keepalive, 1 worker', group: 'proxy', default: true },
  { id: 'haproxy-plain', label: 'HAProxy, plain reverse proxy, nbthread 1', group: 'proxy', default: false },
  { id: 'haproxy-jwt', letter: 'c', label: 'HAProxy, jwt_verify RS256 + iss/aud/exp/scope checks, nbthread 1', group: 'proxy', default: true },
  { id: 'express-sdk', letter: 'd', label: 'express + SDK requireBearerAuth (jose, no cache) + http-proxy-middleware, defaults (new upstream connection per request)', group: 'proxy', default: true },
  { id: 'express-keepalive', label: 'the same with a keep-alive agent', group: 'proxy', default: false },
  { id: 'fastify-http-proxy-jose', label: 'Fastify + @fastify/http-proxy + jose (onRequest hook, verified-token Map cache), defaults', group: 'proxy', default: true },
  { id: 'node-answer', label: 'one Node leg, no proxy: node:http server reading the body and answering the same 300 bytes itself (no upstream, no auth, no logs)', group: 'proxy', default: true },
  { id: 'node-undici-jose', label: 'leanest Node proxy: node:http + undici Pool.dispatch + jose + verified-token Map cache, no framework, no logs', group: 'proxy', default: true },
  { id: 'gateway', letter: 'e', label: 'mcp-auth-gateway, JWT route (warm token)', group: 'proxy', default: true },
  {
    id: 'gateway-policy',
    letter: 'f',
    label: 'mcp-auth-gateway, per-tool policy route (body inspected)',
    group: 'proxy',
    default: true
  },
  {
    id: 'gateway-introspection',
    letter: 'g',
    label: 'mcp-auth-gateway, introspection route (opaque tokens)',
    group: 'proxy',
    default: true
  },
  // Optional: what rate limits cost (a common production setting); its own process, as limits apply to every route.
  {
    id: 'gateway-ratelimit',
    label: 'mcp-auth-gateway, JWT route with perIp + perPrincipal rate limits (memory store, never reached)',
    group: 'proxy',
    default: false
  },
  { id: 'sdk-direct', label: 'real MCP SDK server (stateless, JSON responses) directly', group: 'real', default: true },
  // The bound for the gateway's figure: what any Node proxy loses in front of this upstream.
  { id: 'sdk-floor', label: 'real MCP SDK server through the leanest Node proxy (node:http + undici + jose + cache)', group: 'real', default: true },
  { id: 'sdk-gateway', label: 'real MCP SDK server through the gateway', group: 'real', default: true }
]

export const SMOKE_SYSTEMS: readonly SystemId[] = ['direct', 'gateway']

export function systemInfo (id: SystemId): SystemInfo {
  const s = CATALOGUE.find((x) => x.id === id)
  if (s === undefined) throw new Error(`unknown system ${id}`)
  return s
}

/** Per-round CPU ratios reported (numerator / denominator), when both ran. */
export const CPU_RATIOS: ReadonlyArray<{ num: SystemId, den: SystemId }> = [
  { num: 'gateway', den: 'nginx' },
  { num: 'gateway', den: 'haproxy-plain' },
  { num: 'gateway', den: 'haproxy-jwt' },
  { num: 'gateway', den: 'express-sdk' },
  { num: 'gateway', den: 'express-keepalive' },
  { num: 'gateway', den: 'fastify-http-proxy-jose' },
  { num: 'gateway', den: 'node-undici-jose' },
  // What Node itself costs against the C proxies: one bare leg, and the leanest two-leg proxy.
  { num: 'node-answer', den: 'nginx' },
  { num: 'node-undici-jose', den: 'haproxy-jwt' },
  // Issue 4: the policy route must cost at most 1.15× the plain JWT route.
  { num: 'gateway-policy', den: 'gateway' },
  { num: 'gateway-introspection', den: 'gateway' },
  { num: 'gateway-ratelimit', den: 'gateway' }
]
