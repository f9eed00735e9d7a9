/**
 * The two error families of the gateway.
 *
 * - {@link ConfigError}: misconfiguration found at build time. It carries every
 *   problem at once, each formatted as `path: what is wrong: the rule`.
 * - {@link GatewayError}: request-time failures. Each has a stable `code`, an
 *   HTTP status and a public description that is safe to send to clients; the
 *   internal detail (`detail`, `cause`) only ever reaches the logs.
 *
 * This module imports nothing, so every layer may depend on it.
 */

/** Thrown when configuration is invalid. `problems` lists every problem found. */
export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map((p) => `  ${p}`).join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Stable request-time error codes. They appear in logs and metrics. */
export type GatewayErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'not_found'
  | 'method_not_allowed'
  | 'temporarily_unavailable'
  | 'payload_too_large'
  | 'internal_error'

/** Base of every request-time error. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode
  readonly status: number
  /** Safe to show to a client: never a library message, a token or a claim value. */
  readonly publicDescription: string
  /** For logs only. Must itself never contain a token or secret. */
  readonly detail: string | undefined
  constructor (code: GatewayErrorCode, status: number, publicDescription: string, opts?: { detail?: string, cause?: unknown }) {
    // These are expected outcomes (a refused token, a missing scope), answered from `code` and
    // `publicDescription` and logged by `detail`; nobody reads their stack. Capturing one was
    // 12 % of the gateway's CPU in a flood of refused requests (BENCHMARKS.md), so none is taken.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(publicDescription, opts?.cause === undefined ? undefined : { cause: opts.cause })
    Error.stackTraceLimit = limit
    this.name = 'GatewayError'
    this.code = code
    this.status = status
    this.publicDescription = publicDescription
    this.detail = opts?.detail
  }
}

/**
 * Why a bearer token was rejected. The value is part of the log `outcome`
 * (`invalid_token:<reason>`), so it is stable and low-cardinality.
 */
export type InvalidTokenReason =
  | 'malformed'
  | 'too_large'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'bad_signature'
  | 'unknown_key'
  | 'unknown_issuer'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'alg_not_allowed'
  | 'wrong_type'
  | 'missing_claim'
  | 'invalid_claim'
  | 'inactive'

const INVALID_TOKEN_DESCRIPTIONS: Record<InvalidTokenReason, string> = {
  malformed: 'The access token is malformed',
  too_large: 'The access token is too large',
  expired: 'The access token has expired',
  not_yet_valid: 'The access token is not yet valid',
  issued_in_future: 'The access token was issued in the future',
  bad_signature: 'The access token signature is invalid',
  unknown_key: 'The access token was signed with an unknown key',
  unknown_issuer: 'The access token issuer is not trusted',
  wrong_issuer: 'The access token issuer is not trusted',
  wrong_audience: 'The access token was not issued for this resource',
  alg_not_allowed: 'The access token signing algorithm is not allowed',
  wrong_type: 'The token is not an access token',
  missing_claim: 'The access token lacks a required claim',
  invalid_claim: 'The access token has an invalid claim',
  inactive: 'The access token is not active'
}

/** 401 `invalid_token` (RFC 6750 §3.1). */
export class InvalidTokenError extends GatewayError {
  readonly reason: InvalidTokenReason
  constructor (reason: InvalidTokenReason, opts?: { detail?: string, cause?: unknown }) {
    super('invalid_token', 401, INVALID_TOKEN_DESCRIPTIONS[reason], opts)
    this.name = 'InvalidTokenError'
    this.reason = reason
  }
}

/** 400 `invalid_request` (RFC 6750 §3.1): a malformed credential or more than one. */
export class InvalidRequestError extends GatewayError {
  constructor (publicDescription: string) {
    super('invalid_request', 400, publicDescription)
    this.name = 'InvalidRequestError'
  }
}

/** 503 with `Retry-After`: the gateway cannot validate tokens yet (keys or metadata unavailable). Fails closed. */
export class TemporarilyUnavailableError extends GatewayError {
  readonly retryAfterSeconds: number
  constructor (retryAfterSeconds: number, opts?: { detail?: string, cause?: unknown }) {
    super('temporarily_unavailable', 503, 'The authorization server cannot be reached to validate the token; retry later', opts)
    this.name = 'TemporarilyUnavailableError'
    this.retryAfterSeconds = retryAfterSeconds
  }
}
