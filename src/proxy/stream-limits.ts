/**
 * Counts open SSE streams per caller and in total, so no caller (and no
 * crowd) can pin every socket and upstream connection of the gateway. The
 * counts are per gateway process: they bound this process's sockets.
 */

/** Why a stream was refused: the caller's own limit, or the gateway's. */
export type StreamRefusal = 'principal' | 'total'

export class StreamLimiter {
  readonly #maxTotal: number
  readonly #maxPerPrincipal: number
  readonly #open = new Map<string, number>()
  #total = 0

  constructor (maxTotal: number, maxPerPrincipal: number) {
    this.#maxTotal = maxTotal
    this.#maxPerPrincipal = maxPerPrincipal
  }

  /** Streams open now, in total. */
  get total (): number {
    return this.#total
  }

  /** Streams open now for one caller key. */
  openFor (key: string): number {
    return this.#open.get(key) ?? 0
  }

  /**
   * Take a slot for a new stream of `key`; undefined when granted (call
   * {@link release} exactly once when it ends), else why it is refused.
   */
  acquire (key: string): StreamRefusal | undefined {
    const n = this.#open.get(key) ?? 0
    if (n >= this.#maxPerPrincipal) return 'principal'
    if (this.#total >= this.#maxTotal) return 'total'
    this.#open.set(key, n + 1)
    this.#total++
    return undefined
  }

  /** Why a new stream of `key` would be refused now, without taking a slot; undefined: it would be granted. */
  check (key: string): StreamRefusal | undefined {
    if ((this.#open.get(key) ?? 0) >= this.#maxPerPrincipal) return 'principal'
    if (this.#total >= this.#maxTotal) return 'total'
    return undefined
  }

  /**
   * Count a stream that cannot be refused any more (an SSE answer to a POST the
   * upstream has already run): it takes a slot even over the limits, so later
   * streams and POSTs of that caller see it. Release it with {@link release}.
   */
  track (key: string): void {
    this.#open.set(key, (this.#open.get(key) ?? 0) + 1)
    this.#total++
  }

  /** Give back a slot taken by {@link acquire} or {@link track}. */
  release (key: string): void {
    const n = this.#open.get(key)
    if (n === undefined) return
    if (n <= 1) this.#open.delete(key)
    else this.#open.set(key, n - 1)
    this.#total--
  }
}
