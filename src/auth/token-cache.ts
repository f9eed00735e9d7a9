/**
 * Bounded cache of verified principals, matched on the exact token string.
 * No entry outlives its `exp`.
 *
 * No cryptographic hash per request (a SHA-256 per request was measurable on
 * the hot path, BENCHMARKS.md), and not the whole token as a Map key either
 * (V8 hashes a key in full): a short slice of it buckets, the whole token is
 * compared. Tokens are already in this process's memory as request headers;
 * nothing here is shared or persisted. `tokenKey` remains for stores outside
 * the process.
 */
import { createHash } from 'node:crypto'
import type { Principal } from './principal.js'

/** SHA-256 of the token, base64url: the key for any store outside the process (never the token itself). */
export function tokenKey (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/**
 * Tokens longer than this are looked up by their last {@link BUCKET_KEY_CHARS}
 * characters, then compared whole. V8 hashes a string key in full: for a
 * fresh 700-character JWT from a request header the lookup measured ~1.8 µs,
 * against ~0.3 µs for a 32-character slice plus the full comparison
 * (BENCHMARKS.md). The end of a JWT is its signature (random); opaque tokens
 * are random throughout.
 */
const BUCKET_KEY_MIN_CHARS = 64
const BUCKET_KEY_CHARS = 32
/** Entries examined per eviction at most: a full cache of recently used tokens cannot stall one request. */
const EVICTION_SCAN_MAX = 16

/** The Map key of a token: a short, high-entropy part of it (the full token is compared on lookup). */
function bucketKey (token: string): string {
  return token.length > BUCKET_KEY_MIN_CHARS ? token.slice(-BUCKET_KEY_CHARS) : token
}

interface Entry {
  readonly token: string
  readonly principal: Principal
  /** Used since the eviction scan last passed it (second chance). */
  used: boolean
}

/**
 * Bounded cache of verified principals, exact-match on the whole token, with
 * second-chance ("clock") eviction: a hit only marks its entry, so the hot
 * path never re-inserts into the Map (a delete and set per hit measured
 * ~0.5 µs). When full, the oldest entries are examined in insertion order: a
 * used one is cleared and moved to the back, the first unused one is evicted
 * (after {@link EVICTION_SCAN_MAX} used ones, the next is evicted anyway).
 *
 * Two valid tokens whose keys collide (the same last 32 characters) displace
 * each other: a lost cache entry, never a wrong principal, since the whole
 * token is compared. Only verified tokens are ever stored.
 */
export class TokenCache {
  readonly #max: number
  readonly #map = new Map<string, Entry>()
  hits = 0
  misses = 0

  constructor (maxEntries: number) {
    this.#max = maxEntries
  }

  get size (): number {
    return this.#map.size
  }

  /** The cached principal if present and not expired at `nowMs`. */
  get (token: string, nowMs: number): Principal | undefined {
    const key = bucketKey(token)
    const e = this.#map.get(key)
    if (e === undefined || e.token !== token) {
      this.misses++
      return undefined
    }
    if (e.principal.expiresAtMs <= nowMs) {
      this.#map.delete(key)
      this.misses++
      return undefined
    }
    e.used = true
    this.hits++
    return e.principal
  }

  set (token: string, principal: Principal, nowMs: number): void {
    if (this.#max === 0 || principal.expiresAtMs <= nowMs) return
    const key = bucketKey(token)
    const map = this.#map
    map.delete(key)
    map.set(key, { token, principal, used: false })
    if (map.size > this.#max) this.#evictOne(key)
  }

  /** Evict one entry other than `keep` (the one just stored). */
  #evictOne (keep: string): void {
    const map = this.#map
    let scanned = 0
    for (const [key, e] of map) {
      if (key === keep) continue
      if (e.used && scanned < EVICTION_SCAN_MAX) {
        // Second chance: to the back, unmarked.
        scanned++
        e.used = false
        map.delete(key)
        map.set(key, e)
        continue
      }
      map.delete(key)
      return
    }
  }

  clear (): void {
    this.#map.clear()
  }
}
