/**
 * Per-issuer JWT access-token verification: one jose remote JWKS per issuer
 * (cached, refetched on an unknown `kid` after a cooldown, with timeouts), or
 * the issuer's shared secret for an HS* issuer, and `jwtVerify` with every
 * constraint explicit. jose does all JWT/JWK work.
 */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify, errors as joseErrors, type JWTPayload, type JWTVerifyGetKey, type JWTHeaderParameters, type FlattenedJWSInput, type CryptoKey } from 'jose'
import { InvalidTokenError, TemporarilyUnavailableError, type InvalidTokenReason } from '../errors.js'
import type { IssuerConfig } from '../config/types.js'
import * as D from '../config/defaults.js'
import { discoverMetadata, DiscoveryMismatchError } from './discovery.js'
import { NOOP_TELEMETRY, type Telemetry } from '../observability/telemetry.js'

/** Header `typ` values accepted for access tokens (RFC 9068 §2.1; many servers send JWT or nothing). */
const ACCEPTED_TYP = new Set(['at+jwt', 'application/at+jwt', 'jwt'])

/** HMAC algorithms (RFC 7518 §3.2): only for issuers configured with a shared secret. */
function isSymmetric (alg: string): boolean {
  return alg.startsWith('HS')
}

/** Raised by the key resolver when the JWKS cannot be fetched: an outage, not a bad token. */
class KeySourceUnavailable extends Error {}

export interface VerifierLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export type VerifierState = 'starting' | 'ready'

export interface VerifyResult {
  readonly payload: JWTPayload
  readonly header: JWTHeaderParameters
}

/** Options a verifier uses; injectable for tests. */
export interface VerifierOptions {
  readonly jwksTimeoutMs?: number
  readonly jwksCooldownMs?: number
  readonly jwksMaxAgeMs?: number
  readonly metadataTimeoutMs?: number
  readonly retryInitialMs?: number
  readonly retryMaxMs?: number
  /** How long the keys fetched before a JWKS outage keep verifying tokens once it began. */
  readonly jwksMaxStaleMs?: number
}

/** Key-source outage counters of one issuer (for metrics). */
export interface KeyOutageStats {
  /** JWKS fetches that failed after startup (at most one attempt per cooldown while the outage lasts). */
  jwksFetchFailures: number
  /** Tokens refused (401) because their key was not in the last key set fetched while the JWKS was unreachable. */
  unknownKeyDuringOutage: number
}

export class IssuerVerifier {
  readonly config: IssuerConfig
  #state: VerifierState = 'starting'
  #getKey: JWTVerifyGetKey | undefined
  #remote: ReturnType<typeof createRemoteJWKSet> | undefined
  #jwksUri: string | undefined
  #stopped = false
  #timer: NodeJS.Timeout | undefined
  #ready: Promise<void>
  #resolveReady!: () => void
  readonly #log: VerifierLogger
  readonly #opts: Required<VerifierOptions>
  /** The shared secret of an HS* issuer: the only key, no metadata or JWKS. */
  readonly #secret: Uint8Array | undefined
  /** Accepted algs, never mixing families (key confusion, RFC 8725 §3.1): an empty list refuses every token. */
  readonly #algorithms: string[]
  /** The last key set fetched, while the JWKS cannot be fetched (stale-if-error); undefined when the source is up. */
  #stale: ReturnType<typeof createLocalJWKSet> | undefined
  /** While the source is down, no new fetch is tried before this time (one attempt per cooldown, not one per request). */
  #retryKeysAtMs = 0
  #downSinceMs = 0
  /** Concurrent callers share one failed fetch (jose single-flights reloads): it is counted and logged once. */
  #lastFetchError: unknown
  /** Outage counters; read by {@link Authenticator.keyOutageStats}. */
  readonly outageStats: KeyOutageStats = { jwksFetchFailures: 0, unknownKeyDuringOutage: 0 }
  readonly #telemetry: Telemetry

  constructor (config: IssuerConfig, log: VerifierLogger, opts: VerifierOptions = {}, telemetry: Telemetry = NOOP_TELEMETRY) {
    this.config = config
    this.#log = log
    this.#telemetry = telemetry
    this.#opts = {
      jwksTimeoutMs: opts.jwksTimeoutMs ?? D.DEFAULT_JWKS_TIMEOUT_MS,
      jwksCooldownMs: opts.jwksCooldownMs ?? D.DEFAULT_JWKS_COOLDOWN_MS,
      jwksMaxAgeMs: opts.jwksMaxAgeMs ?? D.DEFAULT_JWKS_MAX_AGE_MS,
      metadataTimeoutMs: opts.metadataTimeoutMs ?? D.DEFAULT_METADATA_TIMEOUT_MS,
      retryInitialMs: opts.retryInitialMs ?? D.DISCOVERY_RETRY_INITIAL_MS,
      retryMaxMs: opts.retryMaxMs ?? D.DISCOVERY_RETRY_MAX_MS,
      jwksMaxStaleMs: opts.jwksMaxStaleMs ?? D.JWKS_MAX_STALE_MS
    }
    this.#ready = new Promise((resolve) => { this.#resolveReady = resolve })
    this.#secret = config.sharedSecret
    // The loader already refuses mixed lists; filtering again keeps a slip there from opening HS/RS confusion.
    this.#algorithms = config.algorithms.filter((a) => (this.#secret !== undefined) === isSymmetric(a) && a.toLowerCase() !== 'none')
  }

  get state (): VerifierState {
    return this.#state
  }

  /** The JWKS URL in use once discovered. */
  get jwksUri (): string | undefined {
    return this.#jwksUri
  }

  /** Resolves when metadata and keys have been loaded once. */
  whenReady (): Promise<void> {
    return this.#ready
  }

  /**
   * Start discovery in the background, retrying with backoff until it succeeds or
   * {@link stop} is called. An HS* issuer has nothing to discover: ready at once.
   */
  start (): void {
    const secret = this.#secret
    if (secret !== undefined) {
      if (this.#state === 'ready') return
      this.#getKey = async () => secret
      this.#state = 'ready'
      this.#log.info({ issuer: this.config.issuer, algorithms: this.#algorithms }, 'shared-secret issuer ready')
      this.#resolveReady()
      return
    }
    void this.#attempt(this.#opts.retryInitialMs)
  }

  stop (): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }

  async #attempt (nextDelayMs: number): Promise<void> {
    if (this.#stopped) return
    try {
      await this.#discover()
      this.#state = 'ready'
      this.#log.info({ issuer: this.config.issuer, jwksUri: this.#jwksUri }, 'authorization server keys loaded')
      this.#resolveReady()
    } catch (err) {
      if (this.#stopped) return
      const level = err instanceof DiscoveryMismatchError ? 'error' : 'warn'
      this.#log[level]({ issuer: this.config.issuer, reason: describe(err), retryInMs: nextDelayMs }, 'authorization server discovery failed; retrying')
      this.#timer = setTimeout(() => { void this.#attempt(Math.min(nextDelayMs * 2, this.#opts.retryMaxMs)) }, nextDelayMs)
      this.#timer.unref()
    }
  }

  async #discover (): Promise<void> {
    let jwksUri = this.config.jwksUri
    if (jwksUri === undefined) {
      const md = await discoverMetadata(this.config.issuer, this.config.metadataUrl, { timeoutMs: this.#opts.metadataTimeoutMs, maxBytes: D.MAX_METADATA_BYTES })
      jwksUri = md.jwks_uri
    }
    const issuer = this.config.issuer
    const telemetry = this.#telemetry
    const remote = createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: this.#opts.jwksTimeoutMs,
      cooldownDuration: this.#opts.jwksCooldownMs,
      cacheMaxAge: this.#opts.jwksMaxAgeMs,
      // Every HTTP fetch jose makes is counted (jwks_fetches_total): ok is a 200, as jose requires.
      [customFetch]: async (url, options) => {
        try {
          const res = await fetch(url, options)
          telemetry.jwksFetch(issuer, res.status === 200)
          return res
        } catch (err) {
          telemetry.jwksFetch(issuer, false)
          throw err
        }
      }
    })
    // Load the keys now, so the first request does not pay for it and outages show at startup.
    await remote.reload()
    this.#jwksUri = jwksUri
    this.#remote = remote
    this.#getKey = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
      // Known outage: no request waits on a fetch that just failed; the keys fetched before still verify.
      if (this.#stale !== undefined && Date.now() < this.#retryKeysAtMs) return await this.#staleKey(header, token)
      try {
        const key = await remote(header, token)
        this.#stale = undefined
        return key
      } catch (err) {
        // Key-matching failures are the token's fault; anything else (network, non-200, bad JSON) is an outage.
        if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JOSENotSupported || err instanceof joseErrors.JWKInvalid) throw err
        this.#keySourceDown(err)
        return await this.#staleKey(header, token)
      }
    }
  }

  /**
   * The JWKS could not be fetched after startup (jose keeps the last set it
   * fetched). Keys already known keep working (stale-if-error) until the source
   * is back, for at most `jwksMaxStaleMs`; a new fetch is tried once per cooldown.
   */
  #keySourceDown (err: unknown): void {
    const now = Date.now()
    const alreadyCounted = err === this.#lastFetchError
    this.#lastFetchError = err
    if (this.#stale === undefined) {
      const last = this.#remote?.jwks()
      if (last === undefined) throw new KeySourceUnavailable(describe(err), { cause: err })
      this.#stale = createLocalJWKSet(last)
      this.#downSinceMs = now
    }
    this.#retryKeysAtMs = now + this.#opts.jwksCooldownMs
    if (alreadyCounted) return
    this.outageStats.jwksFetchFailures++
    this.#log.warn({ issuer: this.config.issuer, reason: describe(err), downForMs: now - this.#downSinceMs, retryInMs: this.#opts.jwksCooldownMs }, 'JWKS unreachable; verifying with the keys fetched before')
  }

  /**
   * A key from the last set fetched. A token whose key is not in it cannot be
   * verified while the source is down: 401 `unknown_key` (as for any unknown key;
   * a 503 would let anyone turn random kids into server errors), counted and logged.
   */
  async #staleKey (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
    const stale = this.#stale!
    if (Date.now() - this.#downSinceMs > this.#opts.jwksMaxStaleMs) throw new KeySourceUnavailable('the keys fetched before the outage are too old')
    try {
      return await stale(header, token)
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey) this.#unverifiable(header.kid)
      throw err
    }
  }

  #unverifiable (kid: unknown): void {
    this.outageStats.unknownKeyDuringOutage++
    this.#telemetry.jwksUnknownKeyDuringOutage(this.config.issuer)
    // The kid is the client's text: logged as a bounded string, never the token.
    this.#log.warn({ issuer: this.config.issuer, kid: typeof kid === 'string' ? kid.slice(0, 64) : null }, 'token key not in the last key set fetched while the JWKS is unreachable; refused')
  }

  /** True while the key source is known to be down and no new fetch is due. */
  #keysDown (): boolean {
    return this.#stale !== undefined && Date.now() < this.#retryKeysAtMs
  }

  /**
   * Verify a compact JWT for the given audiences (`null`: no `aud` check, for
   * issuers whose rules bind the client instead). Throws {@link InvalidTokenError}
   * for a bad token and {@link TemporarilyUnavailableError} when keys cannot be had.
   * With `requireIssuer: false` a token without `iss` is accepted, pinned by this
   * issuer's keys; an `iss` that is present must still be this issuer.
   */
  async verify (token: string, audiences: readonly string[] | null): Promise<VerifyResult> {
    const getKey = this.#getKey
    if (this.#state !== 'ready' || getKey === undefined) {
      throw new TemporarilyUnavailableError(D.UNAVAILABLE_RETRY_AFTER_SECONDS, { detail: `issuer ${this.config.issuer} not discovered yet` })
    }
    const options = {
      issuer: this.config.requireIssuer ? this.config.issuer : undefined,
      audience: audiences === null ? undefined : audiences as string[],
      algorithms: this.#algorithms,
      clockTolerance: this.config.clockToleranceSeconds,
      requiredClaims: ['exp']
    }
    let result: { payload: JWTPayload, protectedHeader: JWTHeaderParameters }
    try {
      result = await jwtVerify(token, getKey, options)
    } catch (err) {
      result = await this.#retryKidless(token, err, options)
    }
    const iss = result.payload.iss
    if (!this.config.requireIssuer && iss !== undefined && iss !== this.config.issuer) {
      throw new InvalidTokenError('wrong_issuer', { detail: 'iss is not this issuer' })
    }
    // jose does not check the type of typ: a non-string one (typ: {}) is the token's fault, not a TypeError.
    const typ: unknown = result.protectedHeader.typ
    if (typ !== undefined && (typeof typ !== 'string' || !ACCEPTED_TYP.has(typ.toLowerCase()))) {
      throw new InvalidTokenError('wrong_type', { detail: `header typ ${JSON.stringify(typ)} is not an access-token type` })
    }
    // jose checks iat only together with maxTokenAge; a token from the future is still refused (RFC 7519 §4.1.6).
    const iat = result.payload.iat
    if (typeof iat === 'number' && iat > Date.now() / 1000 + this.config.clockToleranceSeconds) {
      throw new InvalidTokenError('issued_in_future')
    }
    return { payload: result.payload, header: result.protectedHeader }
  }

  /**
   * Recover the cases jose leaves to the caller: several candidate keys for a
   * token without `kid` (try each), and a kid-less token whose key was rotated
   * (an unknown kid makes jose refetch, a missing one cannot: refetch once,
   * within the same cooldown). Anything else is mapped to the public error.
   */
  async #retryKidless (token: string, err: unknown, options: Parameters<typeof jwtVerify>[2]): Promise<{ payload: JWTPayload, protectedHeader: JWTHeaderParameters }> {
    if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return await this.#verifyWithEachKey(token, err, options)
    const remote = this.#remote
    if (err instanceof joseErrors.JWSSignatureVerificationFailed && remote !== undefined && this.#keysDown() && !hasKid(token)) {
      this.#unverifiable(undefined)
      throw mapVerifyError(err)
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed && remote !== undefined && !remote.coolingDown && this.#getKey !== undefined && !hasKid(token)) {
      try {
        await remote.reload()
        this.#stale = undefined
      } catch (reloadErr) {
        // No newer keys can be had: the signature failed against every key known, as during any outage.
        this.#keySourceDown(reloadErr)
        this.#unverifiable(undefined)
        throw mapVerifyError(err)
      }
      try {
        return await jwtVerify(token, this.#getKey, options)
      } catch (again) {
        if (again instanceof joseErrors.JWKSMultipleMatchingKeys) return await this.#verifyWithEachKey(token, again, options)
        throw mapVerifyError(again)
      }
    }
    throw mapVerifyError(err)
  }

  async #verifyWithEachKey (token: string, err: joseErrors.JWKSMultipleMatchingKeys, options: Parameters<typeof jwtVerify>[2]): Promise<{ payload: JWTPayload, protectedHeader: JWTHeaderParameters }> {
    let last: unknown = err
    for await (const key of err as unknown as AsyncIterable<CryptoKey>) {
      try {
        return await jwtVerify(token, key, options)
      } catch (e) {
        last = e
        if (!(e instanceof joseErrors.JWSSignatureVerificationFailed)) break
      }
    }
    throw mapVerifyError(last)
  }
}

/** Map a jose (or key-source) failure to the public error. Never exposes the jose message. */
export function mapVerifyError (err: unknown): InvalidTokenError | TemporarilyUnavailableError {
  if (err instanceof InvalidTokenError || err instanceof TemporarilyUnavailableError) return err
  if (err instanceof KeySourceUnavailable) {
    return new TemporarilyUnavailableError(D.UNAVAILABLE_RETRY_AFTER_SECONDS, { detail: `keys unavailable: ${err.message}` })
  }
  const code = (err as { code?: string } | null | undefined)?.code
  let reason: InvalidTokenReason = 'malformed'
  if (err instanceof joseErrors.JWTExpired) reason = err.claim === 'exp' ? 'expired' : 'invalid_claim'
  else if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') reason = 'missing_claim'
    // A claim of the wrong type (e.g. nbf: "soon") is invalid, not merely early.
    else if (err.reason === 'invalid') reason = 'invalid_claim'
    else if (err.claim === 'iss') reason = 'wrong_issuer'
    else if (err.claim === 'aud') reason = 'wrong_audience'
    else if (err.claim === 'nbf') reason = 'not_yet_valid'
    else if (err.claim === 'iat') reason = 'issued_in_future'
    else reason = 'invalid_claim'
  } else if (err instanceof joseErrors.JWSSignatureVerificationFailed) reason = 'bad_signature'
  else if (err instanceof joseErrors.JWKSNoMatchingKey) reason = 'unknown_key'
  else if (err instanceof joseErrors.JOSEAlgNotAllowed) reason = 'alg_not_allowed'
  // Unsupported features (e.g. an unknown `crit` header): the token cannot be processed.
  else if (err instanceof joseErrors.JOSENotSupported) reason = 'malformed'
  // Only the stable jose code goes to the logs, never its message (it may quote claim values).
  return new InvalidTokenError(reason, { detail: code ?? 'non-jose error' })
}

function hasKid (token: string): boolean {
  try {
    return decodeProtectedHeader(token).kid !== undefined
  } catch {
    return false
  }
}

function describe (err: unknown): string {
  if (err instanceof DiscoveryMismatchError || err instanceof KeySourceUnavailable) return err.message
  const e = err as { code?: string, name?: string, message?: string }
  if (typeof e.code === 'string') return e.code
  if (e.name === 'FetchJsonError') return e.message ?? 'fetch failed'
  return e.name ?? 'error'
}
