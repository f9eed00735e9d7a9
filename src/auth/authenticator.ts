/**
 * Token → Principal for a route: cache lookup first (synchronous), then, on a
 * miss, the right issuer's check: local JWT validation (jwt.ts) or RFC 7662
 * introspection (introspection.ts), followed by the issuer's profile rules
 * (profiles.ts). Everything a route needs is compiled once, so the hot path
 * only does map lookups.
 */
import { decodeJwt, type JWTPayload } from 'jose'
import { InvalidTokenError } from '../errors.js'
import type { GatewayConfig, IssuerConfig, RouteConfig } from '../config/types.js'
import { IssuerVerifier, type KeyOutageStats, type VerifierLogger, type VerifierOptions } from './jwt.js'
import { Introspector } from './introspection.js'
import { audienceMatches, compileIssuerRules, type IssuerRules } from './profiles.js'
import type { Principal } from './principal.js'
import { TokenCache } from './token-cache.js'
import { NOOP_TELEMETRY, type Telemetry } from '../observability/telemetry.js'

/** One issuer as a route sees it: its checks and the audiences compiled for the route's resource. */
interface RouteIssuer {
  readonly config: IssuerConfig
  readonly verifier: IssuerVerifier | undefined
  readonly introspector: Introspector | undefined
  readonly rules: IssuerRules
  /** Accepted `aud` values for this route, or null when the issuer binds tokens to client ids instead. */
  readonly audiences: readonly string[] | null
}

/** Per-route authentication handle, compiled once. */
export interface RouteAuth {
  /** Verified tokens for this route: a token verified for one route's audiences is not valid for another's. */
  readonly cache: TokenCache
  /** Trusted issuers by `iss`. */
  readonly byIssuer: ReadonlyMap<string, RouteIssuer>
  /** The issuer that accepts JWTs without `iss` (requireIssuer: false), if any. */
  readonly issuerless: RouteIssuer | undefined
  /** The issuer that introspects tokens that are not JWTs, if any (at most one: config checks it). */
  readonly opaque: RouteIssuer | undefined
  /** Verifications in progress, by token (single flight). */
  readonly inflight: Map<string, Promise<Principal>>
  /** Extra condition a principal must meet before it is cached and admitted (checked once per token). */
  readonly admissible: (p: Principal) => boolean
}

interface IssuerHandle {
  readonly config: IssuerConfig
  readonly verifier: IssuerVerifier | undefined
  readonly introspector: Introspector | undefined
  readonly rules: IssuerRules
}

/** A compact JWS has three base64url parts (RFC 7515 §7.1); anything else can only be introspected. */
const JWT_SHAPE_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export class Authenticator {
  readonly verifiers: ReadonlyMap<string, IssuerVerifier>
  readonly #issuers: ReadonlyMap<string, IssuerHandle>
  readonly #caches: TokenCache[] = []
  readonly #maxTokenBytes: number
  readonly #maxEntries: number
  readonly #telemetry: Telemetry
  /** Principals that came from introspection: their cache hits are introspection_total cache_hit. */
  readonly #introspected = new WeakSet<Principal>()

  constructor (config: GatewayConfig, log: VerifierLogger, opts?: VerifierOptions, telemetry: Telemetry = NOOP_TELEMETRY) {
    const verifiers = new Map<string, IssuerVerifier>()
    const issuers = new Map<string, IssuerHandle>()
    this.#telemetry = telemetry
    for (const as of config.authorizationServers) {
      // Opaque-only issuers need no keys: nothing of theirs is verified locally.
      const verifier = as.tokenType === 'opaque' ? undefined : new IssuerVerifier(as, log, opts, telemetry)
      if (verifier !== undefined) verifiers.set(as.issuer, verifier)
      const introspector = as.introspection === undefined ? undefined : new Introspector(as.issuer, as.introspection, log, { telemetry })
      issuers.set(as.issuer, { config: as, verifier, introspector, rules: compileIssuerRules(as) })
    }
    this.verifiers = verifiers
    this.#issuers = issuers
    this.#maxEntries = config.tokenCache.maxEntries
    this.#maxTokenBytes = config.limits.maxTokenBytes
  }

  start (): void {
    for (const v of this.verifiers.values()) v.start()
  }

  stop (): void {
    for (const v of this.verifiers.values()) v.stop()
    for (const i of this.#issuers.values()) i.introspector?.stop()
    for (const c of this.#caches) c.clear()
  }

  /** True once every issuer that validates JWTs has loaded its metadata and keys. */
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

  /** JWKS outages after startup, over all issuers: failed fetches, and tokens refused because their key could not be had. */
  get keyOutageStats (): KeyOutageStats {
    const out: KeyOutageStats = { jwksFetchFailures: 0, unknownKeyDuringOutage: 0 }
    for (const v of this.verifiers.values()) {
      out.jwksFetchFailures += v.outageStats.jwksFetchFailures
      out.unknownKeyDuringOutage += v.outageStats.unknownKeyDuringOutage
    }
    return out
  }

  whenReady (): Promise<void> {
    return Promise.all([...this.verifiers.values()].map(async (v) => await v.whenReady())).then(() => undefined)
  }

  /**
   * @param admissible checked once per verified token, before caching; a principal that fails it is
   *   refused as `invalid_claim` (the route uses it for identity that cannot be sent as header values)
   */
  compileRoute (route: RouteConfig, admissible: (p: Principal) => boolean = () => true): RouteAuth {
    const byIssuer = new Map<string, RouteIssuer>()
    let issuerless: RouteIssuer | undefined
    let opaque: RouteIssuer | undefined
    for (const iss of route.issuers) {
      const h = this.#issuers.get(iss)
      if (h === undefined) throw new Error(`route ${route.id} trusts unknown issuer ${iss}`)
      const entry: RouteIssuer = Object.freeze({ ...h, audiences: h.rules.audiences(route.resource) })
      byIssuer.set(iss, entry)
      if (!h.config.requireIssuer) issuerless = entry
      if (h.introspector !== undefined) opaque = entry
    }
    const cache = new TokenCache(this.#maxEntries)
    this.#caches.push(cache)
    return { cache, byIssuer, issuerless, opaque, inflight: new Map(), admissible }
  }

  /** Cache hit, or undefined. Synchronous so the common case costs no promise. */
  cached (route: RouteAuth, token: string, nowMs: number): Principal | undefined {
    if (token.length > this.#maxTokenBytes) throw new InvalidTokenError('too_large')
    const p = route.cache.get(token, nowMs)
    // Only routes with an introspecting issuer pay for this check.
    if (p !== undefined && route.opaque !== undefined && this.#introspected.has(p)) this.#telemetry.introspection(p.issuer, 'cache_hit')
    return p
  }

  /**
   * Full verification on a cache miss; caches the result. Concurrent misses for
   * the same token share one verification (a burst of parallel first calls
   * costs one signature check or one introspection call).
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
    const principal = JWT_SHAPE_RE.test(token) ? await this.#verifyJwtShaped(route, token) : await this.#introspect(route, route.opaque, token)
    if (!route.admissible(principal)) {
      throw new InvalidTokenError('invalid_claim', { detail: 'identity claims contain characters that cannot be sent as header values' })
    }
    route.cache.set(token, principal, Date.now())
    return principal
  }

  /** Route a JWT by its (unverified) `iss` to the one issuer that may vouch for it; only that issuer's check makes it trusted. */
  async #verifyJwtShaped (route: RouteAuth, token: string): Promise<Principal> {
    let iss: unknown
    try {
      iss = decodeJwt(token).iss
    } catch {
      // Three dot-separated parts but not a JWT: an opaque token of that shape is possible.
      if (route.opaque !== undefined) return await this.#introspect(route, route.opaque, token)
      throw new InvalidTokenError('malformed', { detail: 'not a decodable JWT' })
    }
    let entry: RouteIssuer | undefined
    if (typeof iss === 'string') {
      entry = route.byIssuer.get(iss)
      if (entry === undefined) throw new InvalidTokenError('unknown_issuer')
    } else if (iss === undefined) {
      entry = route.issuerless
      if (entry === undefined) {
        if (route.opaque?.config.tokenType === 'opaque') return await this.#introspect(route, route.opaque, token)
        throw new InvalidTokenError('missing_claim', { detail: 'claim iss is missing' })
      }
    } else {
      throw new InvalidTokenError('invalid_claim', { detail: 'claim iss is not a string' })
    }
    // tokenType opaque: the issuer's tokens are checked by introspection only, whatever their shape.
    if (entry.verifier === undefined) return await this.#introspect(route, entry, token)
    const { payload, header } = await entry.verifier.verify(token, entry.audiences)
    entry.rules.check(payload, header)
    return entry.rules.principal(payload)
  }

  /** RFC 7662, then the same checks a JWT gets: iss, exp, nbf, aud, then the profile rules (RFC 7662 §4: the RS decides). */
  async #introspect (_route: RouteAuth, entry: RouteIssuer | undefined, token: string): Promise<Principal> {
    if (entry?.introspector === undefined) throw new InvalidTokenError('malformed', { detail: 'not a JWT and no issuer of this route introspects' })
    const claims = await entry.introspector.introspect(token) as JWTPayload
    const cfg = entry.config
    const nowS = Date.now() / 1000
    if (claims.iss !== undefined && claims.iss !== cfg.issuer) throw new InvalidTokenError('wrong_issuer', { detail: 'introspection iss differs from the issuer' })
    if (typeof claims.exp !== 'number') throw new InvalidTokenError('missing_claim', { detail: 'introspection result has no exp' })
    if (claims.exp <= nowS - cfg.clockToleranceSeconds) throw new InvalidTokenError('expired')
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > nowS + cfg.clockToleranceSeconds)) throw new InvalidTokenError('not_yet_valid')
    if (entry.audiences !== null) {
      if (claims.aud === undefined) throw new InvalidTokenError('missing_claim', { detail: 'introspection result has no aud' })
      if (!audienceMatches(claims.aud, entry.audiences)) throw new InvalidTokenError('wrong_audience')
    }
    entry.rules.check(claims, undefined)
    // Trusted until exp, but no longer than the configured TTL, so revocation shows within it.
    const principal = entry.rules.principal(claims, Math.min(claims.exp * 1000, Date.now() + cfg.introspection!.cacheTtlMs))
    this.#introspected.add(principal)
    return principal
  }
}
