/**
 * Where session bindings live: key (a hash of the session id) → value (the
 * owner and the path it was bound on), each with an idle TTL.
 *
 * The interface allows a synchronous answer so that the memory store costs no
 * extra await on the request path: callers check for a Promise and only then
 * wait. The Redis store (redis-store.ts) always answers with a Promise.
 */

/** A value, or a Promise of it: memory answers at once, Redis later. */
export type Awaitable<T> = T | Promise<T>

/** True when `v` must be awaited. */
export function isPromise<T> (v: Awaitable<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function'
}

export interface SessionStore {
  readonly kind: 'memory' | 'redis'
  /**
   * The value bound to `key`, refreshing its idle TTL (a use); undefined when
   * there is none or it expired. Throws (or rejects) when the store cannot answer.
   */
  get: (key: string) => Awaitable<string | undefined>
  /** Bind `key` to `value` unless it is bound already: the first binding wins. */
  claim: (key: string, value: string) => Awaitable<void>
  /** Forget `key`. */
  delete: (key: string) => Awaitable<void>
  /** Refresh the idle TTL of those of `keys` that still exist (sessions with an open stream). */
  touch: (keys: readonly string[]) => Awaitable<void>
  /** Release what the store holds (the memory store forgets everything). */
  close: () => void
}

interface Entry {
  readonly value: string
  expiresAtMs: number
}

export interface MemoryStoreOptions {
  readonly idleTtlMs: number
  /** Entries held at most; the least recently used is evicted first. */
  readonly maxEntries: number
  /** Called when a live binding is evicted to make room (logged, rate-limited, by the caller). */
  readonly onEvict?: () => void
  /** Clock (tests). */
  readonly now?: () => number
}

/**
 * Bindings in one process. A Map kept in last-use order: every use moves the
 * entry to the end, and since every entry has the same idle TTL, that is also
 * expiry order, so expired entries are always at the front and are swept there.
 */
export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory'
  readonly #map = new Map<string, Entry>()
  readonly #ttlMs: number
  readonly #max: number
  readonly #now: () => number
  readonly #onEvict: (() => void) | undefined

  constructor (opts: MemoryStoreOptions) {
    this.#ttlMs = opts.idleTtlMs
    this.#max = Math.max(1, opts.maxEntries)
    this.#now = opts.now ?? Date.now
    this.#onEvict = opts.onEvict
  }

  /** Entries held now, expired ones not yet swept included (tests, metrics). */
  get size (): number {
    return this.#map.size
  }

  get (key: string): string | undefined {
    const map = this.#map
    const e = map.get(key)
    if (e === undefined) return undefined
    const now = this.#now()
    if (e.expiresAtMs <= now) {
      map.delete(key)
      return undefined
    }
    e.expiresAtMs = now + this.#ttlMs
    map.delete(key)
    map.set(key, e)
    return e.value
  }

  claim (key: string, value: string): void {
    const map = this.#map
    const now = this.#now()
    this.#sweep(now)
    const e = map.get(key)
    if (e !== undefined) return
    if (map.size >= this.#max) {
      // Full of live bindings: the least recently used one goes (docs/security.md says what that costs).
      const oldest = map.keys().next().value as string
      map.delete(oldest)
      this.#onEvict?.()
    }
    map.set(key, { value, expiresAtMs: now + this.#ttlMs })
  }

  delete (key: string): void {
    this.#map.delete(key)
  }

  touch (keys: readonly string[]): void {
    for (const k of keys) this.get(k)
  }

  close (): void {
    this.#map.clear()
  }

  /** Drop expired entries; they are all at the front (see the class comment). */
  #sweep (now: number): void {
    const map = this.#map
    for (const [k, e] of map) {
      if (e.expiresAtMs > now) return
      map.delete(k)
    }
  }
}
