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
