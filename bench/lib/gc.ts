/**
 * Garbage collections of the Node systems, counted per measured window
 * (`--trace-gc`). Why: the gateway's CPU per request moved by up to 1.7×
 * between runs because a retained-object pattern made every scavenge promote
 * ~2 MB and forced old-space collections several times a second
 * (BENCHMARKS.md, "Findings": the GC promotion state). Counting the collections in each window
 * shows that state in the results instead of leaving it to guesswork.
 *
 * The traced processes print V8's one-line trace to stdout, line-buffered
 * (`stdbuf -oL`), into their log file. Each line carries the milliseconds
 * since the isolate started; the harness maps its windows onto that clock
 * from the time it spawned the process. Node's start-up before the isolate
 * exists (tens of ms) is the error of that mapping, small against 6 s windows.
 * A process can hold more than one isolate (the ESM loader-hooks thread of
 * `--import tsx`, worker threads), each with its own clock; only the one that
 * serves the load, the main thread, is counted: the isolate with the most
 * collections inside the measured windows.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'

/** One collection: when (ms since the isolate started), which kind, and its main-thread pause. */
export interface GcEvent {
  /** The isolate's address as V8 prints it (one per thread). */
  isolate: string
  ms: number
  /** 'young': Scavenge or Minor Mark-Sweep/Compact; 'old': a full Mark-Compact (or Mark-Sweep). */
  kind: 'young' | 'old'
  pauseMs: number
}

/** Collections inside one window. */
export interface GcCounts {
  young: number
  old: number
  /** Sum of main-thread pauses, ms. */
  pauseMs: number
}

// `[pid:0xisolate]   1234 ms: Scavenge 4.1 (5.8) -> 3.6 (6.8) MB, [pooled: 0 MB, ]0.61 / 0.00 ms ...`
// (V8 11 in Node 20 and V8 13 in Node 24 both print this shape.)
const LINE = /\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: ((?:Minor )?Mark-(?:Compact|Sweep)|Scavenge)\b[^,]*,(?: pooled: [\d.]+ MB,)? ([\d.]+) \/ [\d.]+ ms/

/** The collection one trace line reports, or undefined for any other line. */
export function parseGcLine (line: string): GcEvent | undefined {
  const m = LINE.exec(line)
  if (m === null) return undefined
  const what = m[3]!
  return { isolate: m[1]!, ms: Number(m[2]), kind: what === 'Scavenge' || what.startsWith('Minor ') ? 'young' : 'old', pauseMs: Number(m[4]) }
}

/**
 * Every collection of one isolate in a log file, in order: the isolate with the
 * most collections inside `windows` ([from, to) on the isolate clock; ties go to
 * the one with the most collections overall). The file may hold other output
 * (the process's own logs) and other isolates' lines.
 *
 * Not simply the busiest isolate: tsx's loader-hooks thread collects 13–16
 * times while it compiles the sources at startup, and a gateway that served
 * only ~1,000 requests in a smoke window on a loaded CI machine had about as
 * many. The loader's isolate was counted, and the window showed no collection.
 */
export async function readGcTrace (path: string, windows: ReadonlyArray<readonly [number, number]> = [[0, Number.POSITIVE_INFINITY]]): Promise<GcEvent[]> {
  const byIsolate = new Map<string, GcEvent[]>()
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity })
  for await (const line of rl) {
    // Cheap filter first: the gateway's own log lines outnumber the trace lines by far.
    if (!line.includes(' ms: ')) continue
    const e = parseGcLine(line)
    if (e === undefined) continue
    let list = byIsolate.get(e.isolate)
    if (list === undefined) byIsolate.set(e.isolate, list = [])
    list.push(e)
  }
  const inWindows = (list: readonly GcEvent[]): number => list.filter((e) => windows.some(([from, to]) => e.ms >= from && e.ms < to)).length
  let best: GcEvent[] = []
  let bestIn = -1
  for (const list of byIsolate.values()) {
    const n = inWindows(list)
    if (n > bestIn || (n === bestIn && list.length > best.length)) {
      best = list
      bestIn = n
    }
  }
  return best
}

/** Collections with fromMs ≤ ms < toMs (isolate clock). */
export function countGc (events: readonly GcEvent[], fromMs: number, toMs: number): GcCounts {
  const c: GcCounts = { young: 0, old: 0, pauseMs: 0 }
  for (const e of events) {
    if (e.ms < fromMs || e.ms >= toMs) continue
    if (e.kind === 'young') c.young++
    else c.old++
    c.pauseMs += e.pauseMs
  }
  c.pauseMs = Math.round(c.pauseMs * 100) / 100
  return c
}
