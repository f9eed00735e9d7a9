/**
 * Token → Principal for a route: cache lookup first (synchronous), then the
 * issuer's verifier on a miss. Audiences are compiled per (route, issuer) at
 * startup so the hot path only does map lookups.
 */
import { decodeJwt } from 'jose'
import { InvalidTokenError } from '../errors.js'
import type { GatewayConfig, RouteConfig } from '../config/types.js'
import { IssuerVerifier, type VerifierLogger, type VerifierOptions } from './jwt.js'
import { principalFromClaims, type Principal } from './principal.js'
import { TokenCache } from './token-cache.js'

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

/** Per-route authentication handle, compiled once. */
export interface RouteAuth {
  /** Verified tokens for this route: a token verified for one route's audiences is not valid for another's. */
  readonly cache: TokenCache
  /** Accepted audiences for each issuer. */
  readonly audiences: ReadonlyMap<string, readonly string[]>
  /** Verifications in progress, by token (single flight). */
  readonly inflight: Map<string, Promise<Principal>>
  /** Extra condition a principal must meet before it is cached and admitted (checked once per token). */
  readonly admissible: (p: Principal) => boolean
}

export class Authenticator {
  readonly verifiers: ReadonlyMap<string, IssuerVerifier>
  readonly #caches: TokenCache[] = []
  readonly #maxTokenBytes: number
  readonly #maxEntries: number

  constructor (config: GatewayConfig, log: VerifierLogger, opts?: VerifierOptions) {
    const verifiers = new Map<string, IssuerVerifier>()
    for (const as of config.authorizationServers) verifiers.set(as.issuer, new IssuerVerifier(as, log, opts))
    this.verifiers = verifiers
    this.#maxEntries = config.tokenCache.maxEntries
    this.#maxTokenBytes = config.limits.maxTokenBytes
  }

  start (): void {
    for (const v of this.verifiers.values()) v.start()
  }

  stop (): void {
    for (const v of this.verifiers.values()) v.stop()
    for (const c of this.#caches) c.clear()
  }

  /** True once every issuer's metadata and keys have loaded. */
  get ready (): boolean {
    for (const v of this.verifiers.values()) if (v.state !== 'ready') return false
    return true
  }

  /** Cache hits and misses over all routes. */
  get cacheStats (): { hits: number, misses: number, size: number } {
    let hits = 0
    let misses = 0
    let size = 0
    for (const c of this.#caches) { hits += c.hits; misses += c.misses; size += c.size }
    return { hits, misses, size }
  }

  whenReady (): Promise<void> {
    return Promise.all([...this.verifiers.values()].map(async (v) => await v.whenReady())).then(() => undefined)
  }

  /**
   * @param admissible checked once per verified token, before caching; a principal that fails it is
   *   refused as `invalid_claim` (the route uses it for identity that cannot be sent as header values)
   */
  compileRoute (route: RouteConfig, admissible: (p: Principal) => boolean = () => true): RouteAuth {
    const audiences = new Map<string, readonly string[]>()
    for (const v of this.verifiers.values()) {
      audiences.set(v.config.issuer, Object.freeze(audienceVariants(v.config.audience ?? [route.resource])))
    }
    const cache = new TokenCache(this.#maxEntries)
    this.#caches.push(cache)
    return { cache, audiences, inflight: new Map(), admissible }
  }

  /** Cache hit, or undefined. Synchronous so the common case costs no promise. */
  cached (route: RouteAuth, token: string, nowMs: number): Principal | undefined {
    if (token.length > this.#maxTokenBytes) throw new InvalidTokenError('too_large')
    return route.cache.get(token, nowMs)
  }

  /**
   * Full verification on a cache miss; caches the result. Concurrent misses for
   * the same token share one verification (a burst of parallel first calls
   * costs one signature check).
   */
  verify (route: RouteAuth, token: string): Promise<Principal> {
    let pending = route.inflight.get(token)
    if (pending === undefined) {
      pending = this.#verify(route, token).finally(() => { route.inflight.delete(token) })
      route.inflight.set(token, pending)
    }
    return pending
  }

  async #verify (route: RouteAuth, token: string): Promise<Principal> {
    let iss: unknown
    try {
      iss = decodeJwt(token).iss
    } catch {
      throw new InvalidTokenError('malformed', { detail: 'not a decodable JWT' })
    }
    if (typeof iss !== 'string') throw new InvalidTokenError('missing_claim', { detail: 'claim iss is missing' })
    const verifier = this.verifiers.get(iss)
    const audiences = route.audiences.get(iss)
    if (verifier === undefined || audiences === undefined) throw new InvalidTokenError('unknown_issuer')
    const { payload } = await verifier.verify(token, audiences)
    const principal = principalFromClaims(payload, verifier.config.issuer)
    if (!route.admissible(principal)) {
      throw new InvalidTokenError('invalid_claim', { detail: 'identity claims contain characters that cannot be sent as header values' })
    }
    route.cache.set(token, principal, Date.now())
    return principal
  }
}
