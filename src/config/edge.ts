/**
 * Normalisation of the settings that guard the gateway's edge: allowed
 * browser origins, trusted proxies, rate limits and connection bounds. Called
 * by load.ts once the schema has passed; adds problems and warnings there.
 */
import { ANY_ORIGIN, normaliseOrigin } from './values.js'
import type { RawConfig } from './schema.js'
import type { GatewayConfig, RateLimitsConfig, RateWindow } from './types.js'
import * as D from './defaults.js'

/** Serialised, de-duplicated origins (the schema has checked each entry). */
export function normaliseOrigins (list: readonly string[]): readonly string[] {
  const out = new Set<string>()
  for (const v of list) {
    const r = normaliseOrigin(v)
    if ('origin' in r) out.add(r.origin)
  }
  return Object.freeze([...out])
}

/** The origins of one route: its own list, else the top-level one (default: publicUrl only). */
export function routeOrigins (own: readonly string[] | undefined, top: readonly string[], where: string, warnings: string[]): readonly string[] {
  if (own === undefined) return top
  const list = normaliseOrigins(own)
  if (list.includes(ANY_ORIGIN)) warnings.push(`${where}.allowedOrigins contains "*": browser pages on any site may call this route with a token they hold (the MCP Origin check is off)`)
  return list
}

export interface EdgeSettings {
  readonly allowedOrigins: readonly string[]
  readonly trustProxy: GatewayConfig['trustProxy']
  readonly rateLimits: RateLimitsConfig | undefined
  readonly limits: Omit<GatewayConfig['limits'], 'maxBodyBytes' | 'maxBatchMessages' | 'maxTokenBytes'>
}

const windowOf = (w: { max: number, windowSeconds: number } | undefined): RateWindow | undefined =>
  w === undefined ? undefined : Object.freeze({ max: w.max, windowMs: Math.max(1, Math.round(w.windowSeconds * 1000)) })

/** Top-level edge settings with defaults applied. */
export function normaliseEdge (raw: RawConfig, publicUrl: string, warnings: string[], problems: string[]): EdgeSettings {
  const allowedOrigins = raw.allowedOrigins === undefined ? Object.freeze([publicUrl]) : normaliseOrigins(raw.allowedOrigins)
  if (allowedOrigins.includes(ANY_ORIGIN)) warnings.push('allowedOrigins contains "*": browser pages on any site may call the MCP routes with a token they hold (the MCP Origin check is off)')

  const trustProxy = raw.trustProxy ?? false
  if (trustProxy === true) warnings.push('trustProxy is true: every X-Forwarded-For entry is believed, so a client that reaches the gateway directly can choose its IP (and its per-IP rate limit); give the proxy count or ranges instead')

  let rateLimits: RateLimitsConfig | undefined
  const rl = raw.rateLimits
  if (rl !== undefined) {
    const store = rl.store ?? D.DEFAULT_RATE_LIMIT_STORE
    const onStoreError = rl.onStoreError ?? D.DEFAULT_RATE_LIMIT_ON_STORE_ERROR
    if (store === 'redis' && (raw as { redis?: unknown }).redis === undefined) {
      problems.push('rateLimits.store: redis without a redis connection: configure the top-level redis settings, or use store: memory')
    }
    if (store === 'redis' && onStoreError === 'allow') warnings.push('rateLimits.onStoreError is allow: while Redis is unreachable, requests pass with no rate limit')
    if (rl.perTool !== undefined && raw.routes.some((r) => r.policy === undefined)) {
      warnings.push(`rateLimits.perTool applies only to routes with a policy (they read the JSON-RPC body); not to ${raw.routes.filter((r) => r.policy === undefined).map((r) => r.path).join(', ')}`)
    }
    if (rl.perIp === undefined && rl.perPrincipal === undefined && rl.perTool === undefined) {
      warnings.push('rateLimits sets no limit: add perIp, perPrincipal or perTool')
    }
    const perPrincipal = windowOf(rl.perPrincipal)
    rateLimits = Object.freeze({
      store,
      onStoreError,
      perIp: windowOf(rl.perIp),
      perPrincipal: perPrincipal === undefined ? undefined : Object.freeze({ ...perPrincipal, key: rl.perPrincipal!.key ?? D.DEFAULT_RATE_LIMIT_PRINCIPAL_KEY }),
      perTool: windowOf(rl.perTool)
    })
  }

  const l = raw.limits
  const maxHeaderBytes = l?.maxHeaderBytes ?? D.DEFAULT_MAX_HEADER_BYTES
  const maxTokenBytes = l?.maxTokenBytes ?? D.DEFAULT_MAX_TOKEN_BYTES
  if (maxHeaderBytes < maxTokenBytes + 1024) {
    problems.push(`limits.maxHeaderBytes: smaller than limits.maxTokenBytes plus 1024: the request head must fit the largest accepted token (${maxTokenBytes} bytes) and the other headers`)
  }
  const headersTimeoutMs = (l?.headersTimeoutSeconds ?? D.DEFAULT_HEADERS_TIMEOUT_SECONDS) * 1000
  const requestTimeoutMs = (l?.requestTimeoutSeconds ?? D.DEFAULT_REQUEST_TIMEOUT_SECONDS) * 1000
  if (headersTimeoutMs > requestTimeoutMs) {
    problems.push('limits.headersTimeoutSeconds: longer than limits.requestTimeoutSeconds: the headers are part of the request, so their timeout must be at most the request timeout')
  }
  const maxStreams = l?.maxStreams ?? D.DEFAULT_MAX_STREAMS
  const maxStreamsPerPrincipal = l?.maxStreamsPerPrincipal ?? Math.min(D.DEFAULT_MAX_STREAMS_PER_PRINCIPAL, maxStreams)
  return {
    allowedOrigins,
    trustProxy: Array.isArray(trustProxy) ? Object.freeze([...trustProxy]) : trustProxy,
    rateLimits,
    limits: { maxHeaderBytes, headersTimeoutMs, requestTimeoutMs, maxStreams, maxStreamsPerPrincipal }
  }
}
