/**
 * Bounded LRU of verified principals, keyed by the exact token string. No
 * entry outlives its `exp`.
 *
 * Exact-match keys, not hashes: V8 hashes a string key natively, while a
 * SHA-256 per request was measurable on the hot path (BENCHMARKS.md). Tokens
 * are already in this process's memory as request headers; nothing here is
 * shared or persisted. `tokenKey` remains for stores outside the process.
 */
import { createHash } from 'node:crypto'
import type { Principal } from './principal.js'

/** SHA-256 of the token, base64url: the key for any store outside the process (never the token itself). */
export function tokenKey (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

export class TokenCache {
  readonly #max: number
  // A Map iterates in insertion order: re-inserting on hit makes it an LRU.
  readonly #map = new Map<string, Principal>()
  hits = 0
  misses = 0

  constructor (maxEntries: number) {
    this.#max = maxEntries
  }

  get size (): number {
    return this.#map.size
  }

  /** The cached principal if present and not expired at `nowMs`. */
  get (key: string, nowMs: number): Principal | undefined {
    const p = this.#map.get(key)
    if (p === undefined) {
      this.misses++
      return undefined
    }
    if (p.expiresAtMs <= nowMs) {
      this.#map.delete(key)
      this.misses++
      return undefined
    }
    this.#map.delete(key)
    this.#map.set(key, p)
    this.hits++
    return p
  }

  set (key: string, principal: Principal, nowMs: number): void {
    if (this.#max === 0 || principal.expiresAtMs <= nowMs) return
    this.#map.delete(key)
    this.#map.set(key, principal)
    if (this.#map.size > this.#max) {
      // Evict the least recently used entry.
      const oldest = this.#map.keys().next().value
      if (oldest !== undefined) this.#map.delete(oldest)
    }
  }

  clear (): void {
    this.#map.clear()
  }
}
