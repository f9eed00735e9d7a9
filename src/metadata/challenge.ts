/**
 * WWW-Authenticate challenges (RFC 6750 §3, RFC 9728 §5.1). One challenge,
 * scheme first, each parameter once, every value a quoted-string with `"` and
 * `\` escaped. The MCP SDK client matches `name="value"` pairs after `Bearer`.
 */

/** Quote a value as an RFC 9110 quoted-string. Control characters are dropped: they cannot be quoted. */
export function quote (value: string): string {
  // eslint-disable-next-line no-control-regex
  return '"' + value.replace(/[\x00-\x1f\x7f]/g, '').replace(/["\\]/g, (c) => '\\' + c) + '"'
}

export interface ChallengeParams {
  error?: string
  error_description?: string
  scope?: string
  resource_metadata?: string
}

/** Build a Bearer challenge. Parameters appear in a fixed order, each at most once, empty ones omitted. */
export function bearerChallenge (p: ChallengeParams): string {
  const parts: string[] = []
  if (p.error !== undefined) parts.push(`error=${quote(p.error)}`)
  if (p.error_description !== undefined) parts.push(`error_description=${quote(p.error_description)}`)
  if (p.scope !== undefined && p.scope !== '') parts.push(`scope=${quote(p.scope)}`)
  if (p.resource_metadata !== undefined) parts.push(`resource_metadata=${quote(p.resource_metadata)}`)
  return parts.length === 0 ? 'Bearer' : `Bearer ${parts.join(', ')}`
}

/** Challenges for one route, the fixed ones built at startup. */
export class RouteChallenges {
  /** 401 without credentials: no `error` (RFC 6750 §3.1). */
  readonly noToken: string
  readonly #resourceMetadata: string
  readonly #scope: string
  readonly #cache = new Map<string, string>()

  constructor (resourceMetadataUrl: string, scopes: readonly string[]) {
    this.#resourceMetadata = resourceMetadataUrl
    this.#scope = scopes.join(' ')
    this.noToken = bearerChallenge({ resource_metadata: resourceMetadataUrl, scope: this.#scope })
  }

  /** 401/400 with an error code. Descriptions come from a fixed set, so results are memoised. */
  withError (error: 'invalid_token' | 'invalid_request', description: string): string {
    const key = error + '\0' + description
    let v = this.#cache.get(key)
    if (v === undefined) {
      v = bearerChallenge({ error, error_description: description, scope: this.#scope, resource_metadata: this.#resourceMetadata })
      this.#cache.set(key, v)
    }
    return v
  }

  /** 403 step-up: every scope the operation needs (MCP 2026-07-28: all required scopes in one challenge). */
  insufficientScope (needed: readonly string[], description: string): string {
    return bearerChallenge({ error: 'insufficient_scope', error_description: description, scope: needed.join(' '), resource_metadata: this.#resourceMetadata })
  }
}
