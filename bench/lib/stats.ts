/** Summary statistics used in the report. */

export interface Spread { median: number, min: number, max: number, n: number }

export function median (xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function spread (xs: readonly number[]): Spread | undefined {
  const v = xs.filter((x) => Number.isFinite(x))
  if (v.length === 0) return undefined
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length }
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile (xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)))
  return s[rank - 1]!
}

/**
 * The systems in the order one round runs them. With `alternate`, every even round runs
 * them in reverse (A B C, C B A, A B C, …): systems that share a process (the gateway's
 * three routes) would otherwise always meet it in the same order, the first of them
 * always right after the process sat idle.
 */
export function roundOrder<T> (systems: readonly T[], round: number, alternate: boolean): T[] {
  return alternate && round % 2 === 0 ? [...systems].reverse() : [...systems]
}
