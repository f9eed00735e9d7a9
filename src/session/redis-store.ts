/**
 * Session bindings in Redis, shared by every gateway replica. One key per
 * binding, `session:<hash>` under the connection's key prefix, with the idle
 * TTL as the key's expiry (PX), refreshed on every read (GETEX, Redis >= 6.2).
 */
import type { Redis } from 'ioredis'
import type { SessionStore } from './store.js'

/** Namespace of binding keys under the connection's `keyPrefix`. */
export const SESSION_KEY_NAMESPACE = 'session:'

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis'
  readonly #redis: Redis
  readonly #ttl: number

  /** `redis` is the shared connection (session/redis.ts); its owner closes it. */
  constructor (redis: Redis, opts: { readonly idleTtlMs: number }) {
    this.#redis = redis
    this.#ttl = opts.idleTtlMs
  }

  async get (key: string): Promise<string | undefined> {
    // One round trip: read and refresh the idle TTL.
    const v = await this.#redis.getex(SESSION_KEY_NAMESPACE + key, 'PX', this.#ttl)
    return v ?? undefined
  }

  async claim (key: string, value: string): Promise<void> {
    // NX: the first binding wins, across replicas too.
    await this.#redis.set(SESSION_KEY_NAMESPACE + key, value, 'PX', this.#ttl, 'NX')
  }

  async delete (key: string): Promise<void> {
    await this.#redis.unlink(SESSION_KEY_NAMESPACE + key)
  }

  async touch (keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return
    const p = this.#redis.pipeline()
    for (const k of keys) p.pexpire(SESSION_KEY_NAMESPACE + k, this.#ttl)
    const results = await p.exec()
    const failed = results?.find(([err]) => err !== null)
    if (failed !== undefined) throw failed[0]!
  }

  close (): void {
    // The connection is shared (rate limits use it too): the gateway closes it.
  }
}
