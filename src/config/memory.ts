/**
 * Does `limits.maxStreams` fit the memory this process may use? A container's memory limit
 * that is smaller than what the open streams take lets the kernel's OOM killer end every
 * stream at once before the cap refuses one (BENCHMARKS.md: a 256 MiB limit killed the
 * gateway at ~6,500 idle streams). The check warns at startup; it never refuses to start,
 * since the figures are measured sizes, not guarantees.
 */
import { IDLE_STREAM_MEMORY_BYTES, LOAD_HEADROOM_MEMORY_BYTES, PROCESS_BASE_MEMORY_BYTES } from './defaults.js'

const MIB = 1024 * 1024

/**
 * The memory limit from `process.constrainedMemory()` (libuv reads the cgroup), or undefined
 * when there is none: Node reports "no constraint" as 0 or as 2^64.
 */
export function memoryLimit (constrained: number | undefined): number | undefined {
  if (constrained === undefined || !Number.isFinite(constrained) || constrained <= 0 || constrained >= Number.MAX_SAFE_INTEGER) return undefined
  return constrained
}

/** Bytes a gateway holding `streams` idle streams needs, with headroom for request load. */
export function memoryNeeded (streams: number): number {
  return PROCESS_BASE_MEMORY_BYTES + LOAD_HEADROOM_MEMORY_BYTES + streams * IDLE_STREAM_MEMORY_BYTES
}

/**
 * A startup warning when `maxStreams` open streams would need more than `limitBytes`, with the
 * cap that would fit; undefined when it fits or there is no limit.
 */
export function streamMemoryWarning (maxStreams: number, limitBytes: number | undefined): string | undefined {
  if (limitBytes === undefined) return undefined
  const need = memoryNeeded(maxStreams)
  if (need <= limitBytes) return undefined
  const fits = Math.floor((limitBytes - memoryNeeded(0)) / IDLE_STREAM_MEMORY_BYTES / 100) * 100
  const advice = fits >= 100
    ? `lower limits.maxStreams to about ${fits} or raise the memory limit`
    : 'raise the memory limit: it leaves no room for streams'
  return `limits.maxStreams (${maxStreams}) needs about ${Math.ceil(need / MIB)} MiB with every stream open ` +
    `(~${IDLE_STREAM_MEMORY_BYTES / 1024} KB per idle stream, plus ~${Math.round(memoryNeeded(0) / MIB)} MiB for the process and request load), ` +
    `more than this process's memory limit (${Math.floor(limitBytes / MIB)} MiB): the kernel would kill the gateway, ending every stream, ` +
    `before the cap refuses one; ${advice}`
}
