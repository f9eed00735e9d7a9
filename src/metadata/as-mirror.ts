/**
 * Mirror of one authorization server's metadata on the gateway origin
 * (`mirrorAuthorizationServerMetadata`). MCP 2025-03-26 clients ignore RFC 9728
 * and look for /.well-known/oauth-authorization-server on the MCP server's own
 * origin; serving the AS's document there lets them find the real endpoints.
 * The document is served as fetched (its `issuer` stays the AS's), cached, and
 * kept while the AS is unreachable.
 */
import { discoverMetadata } from '../auth/discovery.js'
import * as D from '../config/defaults.js'

export class AuthorizationServerMirror {
  readonly issuer: string
  readonly #metadataUrl: string | undefined
  readonly #ttlMs: number
  #json: string | undefined
  #fetchedAtMs = 0
  #pending: Promise<string | undefined> | undefined

  constructor (issuer: string, metadataUrl: string | undefined, ttlMs: number = D.AS_METADATA_MIRROR_TTL_MS) {
    this.issuer = issuer
    this.#metadataUrl = metadataUrl
    this.#ttlMs = ttlMs
  }

  /** The metadata JSON, or undefined when it has never been fetched successfully. Never rejects. */
  get (nowMs: number = Date.now()): Promise<string | undefined> | string {
    if (this.#json !== undefined && nowMs - this.#fetchedAtMs < this.#ttlMs) return this.#json
    this.#pending ??= this.#refresh().finally(() => { this.#pending = undefined })
    // A stale copy is better than none while a refresh runs or fails.
    return this.#json ?? this.#pending
  }

  async #refresh (): Promise<string | undefined> {
    try {
      const md = await discoverMetadata(this.issuer, this.#metadataUrl, { timeoutMs: D.DEFAULT_METADATA_TIMEOUT_MS, maxBytes: D.MAX_METADATA_BYTES })
      this.#json = JSON.stringify(md)
      this.#fetchedAtMs = Date.now()
    } catch {
      // Keep the stale copy; the caller answers 503 if there is none. The verifier logs discovery failures.
    }
    return this.#json
  }
}
