/**
 * config/memory.ts: the startup warning when limits.maxStreams open streams would need more
 * memory than the process may use (BENCHMARKS.md: a 256 MiB container limit killed the gateway
 * at ~6,500 idle streams, before the cap of 10,000 refused one).
 */
import t from 'tap'
import { memoryLimit, memoryNeeded, streamMemoryWarning } from '../../src/config/memory.js'

const MIB = 1024 * 1024

t.test('memoryLimit: what process.constrainedMemory() reports for "no limit" is no limit', async (t) => {
  const cases: Array<[number | undefined, number | undefined, string]> = [
    [2 ** 64, undefined, 'no cgroup limit (UINT64_MAX)'],
    [0, undefined, 'no constraint (older Node)'],
    [undefined, undefined, 'not reported'],
    [Number.NaN, undefined, 'not a number'],
    [-1, undefined, 'negative'],
    [256 * MIB, 256 * MIB, 'a 256 MiB container'],
    [512 * MIB, 512 * MIB, 'a 512 MiB container']
  ]
  for (const [input, expected, what] of cases) t.equal(memoryLimit(input), expected, what)
})

t.test('streamMemoryWarning: warns exactly when the cap does not fit the limit', async (t) => {
  const cases: Array<[number, number | undefined, RegExp | undefined, string]> = [
    // The regression: deploy/ once gave the gateway 256Mi with the default cap.
    [10_000, 256 * MIB, /^limits\.maxStreams \(10000\) needs about 425 MiB .* memory limit \(256 MiB\): the kernel would kill the gateway, ending every stream, before the cap refuses one; lower limits\.maxStreams to about 2800 or raise the memory limit$/, 'the default cap in 256 MiB'],
    [10_000, 512 * MIB, undefined, 'the default cap in 512 MiB (deploy/)'],
    [10_000, undefined, undefined, 'no limit: nothing to compare with'],
    [2_800, 256 * MIB, undefined, 'the suggested cap fits'],
    [3_000, 256 * MIB, /lower limits\.maxStreams to about 2800/, 'just over'],
    [100, 128 * MIB, /raise the memory limit: it leaves no room for streams$/, 'a limit below the process itself'],
    [1_000_000, 4096 * MIB, /needs about 23628 MiB .*lower limits\.maxStreams to about 166600/, 'a large cap']
  ]
  for (const [streams, limit, expected, what] of cases) {
    const w = streamMemoryWarning(streams, limit)
    if (expected === undefined) t.equal(w, undefined, what)
    else t.match(w, expected, what)
  }
})

t.test('memoryNeeded: the sizing rule docs/configuration.md gives', async (t) => {
  t.equal(memoryNeeded(0), 190 * MIB, 'process and load headroom: 190 MiB')
  t.equal(memoryNeeded(10_000) - memoryNeeded(0), 10_000 * 24 * 1024, '24 KiB per idle stream')
})
