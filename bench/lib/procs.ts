/**
 * Child processes of the harness, and what /proc says about them.
 *
 * Every child is spawned in its own process group (detached), registered, and
 * killed at the end: on success, on error, on SIGINT/SIGTERM, and (SIGKILL,
 * synchronously) from the process 'exit' hook. Node children also get a
 * watchdog preload that exits when the harness is gone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** The fd limit children ask for; the hard limit caps it when it is lower. */
export const WANTED_NOFILE = 65536

/** Preloaded into every Node child: exit when the harness (the parent) is gone, even after a SIGKILL. */
export const WATCHDOG_PRELOAD = 'data:text/javascript,' + encodeURIComponent(
  'const p = process.ppid; setInterval(() => { if (process.ppid !== p) process.exit(0) }, 1000).unref()'
)

export interface Child {
  readonly name: string
  readonly pid: number
  readonly proc: ChildProcess
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string | null>
  readonly logPath: string | undefined
  /** True once the process has exited. */
  hasExited: () => boolean
  /** Last lines of the child's log, for error messages. */
  logTail: (lines?: number) => string
  /** performance.now() of the harness right before the spawn (maps a traced child's GC clock). */
  readonly spawnedAt: number
  /** Started with `--trace-gc`, its stdout line-buffered into logPath (see gc.ts). */
  readonly gcTraced: boolean
}

export interface SpawnOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** stdout and stderr go to this file (appended); default: discarded. */
  logPath?: string
  /** Raise `ulimit -n` (to WANTED_NOFILE, else the hard limit) before exec, through bash. */
  raiseNofile?: boolean
  /** Pipe stdout to the harness instead of the log file (stderr still goes to the log). */
  pipeStdout?: boolean
  /**
   * A Node command: add `--trace-gc` and line-buffer its stdout (`stdbuf -oL`), so
   * V8's trace lines reach logPath whole, not cut into the process's own writes.
   */
  traceGc?: boolean
}

const live = new Map<number, Child>()
let hooksInstalled = false

function killGroup (pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    try { process.kill(pid, signal) } catch { /* already gone */ }
  }
}

/** SIGKILL every live child's process group, synchronously (safe in an 'exit' hook). */
export function killAllSync (): void {
  for (const c of live.values()) killGroup(c.pid, 'SIGKILL')
  live.clear()
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL the group. */
export async function stopChild (c: Child, graceMs = 3000): Promise<void> {
  if (!live.has(c.pid)) return
  killGroup(c.pid, 'SIGTERM')
  const timer = setTimeout(() => { killGroup(c.pid, 'SIGKILL') }, graceMs)
  await c.exited
  clearTimeout(timer)
  // The leader is gone; anything left in its group (an nginx worker) goes too.
  killGroup(c.pid, 'SIGKILL')
  live.delete(c.pid)
}

export async function stopAll (graceMs = 3000): Promise<void> {
  await Promise.all([...live.values()].map(async (c) => { await stopChild(c, graceMs) }))
}

export function liveChildren (): Child[] {
  return [...live.values()]
}

const exitCleanups = new Set<() => void>()

/** Runs `fn` (synchronously) when the process exits, after every child was killed; returns the unregister function. */
export function onExit (fn: () => void): () => void {
  installHooks()
  exitCleanups.add(fn)
  return () => { exitCleanups.delete(fn) }
}

function installHooks (): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once('exit', () => {
    killAllSync()
    for (const fn of exitCleanups) {
      try { fn() } catch { /* best effort */ }
    }
  })
}

export function spawnChild (name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  installHooks()
  const traced = opts.traceGc === true && opts.logPath !== undefined && opts.pipeStdout !== true
  let file = cmd
  let argv = args
  if (traced) {
    // stdbuf execs the command: the pid stays that of the measured process.
    file = 'stdbuf'
    argv = ['-oL', cmd, '--trace-gc', ...args]
  }
  if (opts.raiseNofile === true) {
    // exec keeps the pid: the measured process is the command itself, not bash.
    argv = ['-c', `ulimit -n ${WANTED_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'bash', file, ...argv]
    file = 'bash'
  }
  const spawnedAt = performance.now()
  const logFd = opts.logPath !== undefined ? openSync(opts.logPath, 'a') : undefined
  const out = opts.pipeStdout === true ? 'pipe' : (logFd ?? 'ignore')
  const proc = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', out, logFd ?? 'ignore'],
    detached: true
  })
  if (logFd !== undefined) closeSync(logFd)
  const pid = proc.pid
  if (pid === undefined) throw new Error(`${name}: spawn ${cmd} failed`)
  let done = false
  const exited = new Promise<number | string | null>((resolve) => {
    proc.once('exit', (code, signal) => { done = true; live.delete(pid); resolve(code ?? signal) })
    proc.once('error', () => { done = true; live.delete(pid); resolve('spawn error') })
  })
  const child: Child = {
    name,
    pid,
    proc,
    exited,
    logPath: opts.logPath,
    spawnedAt,
    gcTraced: traced,
    hasExited: () => done,
    logTail: (lines = 20) => {
      if (opts.logPath === undefined) return ''
      try {
        return readFileSync(opts.logPath, 'utf8').split('\n').slice(-lines).join('\n')
      } catch {
        return ''
      }
    }
  }
  live.set(pid, child)
  return child
}

/** Runs a short command to completion; its stdout and stderr together ('' when it cannot run). */
export function sh (cmd: string, args: string[] = [], timeoutMs = 10_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] })
  if (r.error !== undefined) return ''
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim()
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for children that need their port up front). */
export async function freePort (): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      if (addr === null || typeof addr === 'string') { srv.close(); reject(new Error('no TCP address')); return }
      srv.close((err) => { if (err !== undefined) reject(err); else resolve(addr.port) })
    })
  })
}

async function tryConnect (port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    const done = (ok: boolean): void => { sock.removeAllListeners(); sock.destroy(); resolve(ok) }
    sock.once('connect', () => { done(true) })
    sock.once('error', () => { done(false) })
    sock.setTimeout(500, () => { done(false) })
  })
}

/** Waits until `check` passes, the child exits (error with its log tail) or the deadline passes. */
export async function waitUntil (what: string, check: () => Promise<boolean>, timeoutMs: number, child?: Child): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child?.hasExited() === true) throw new Error(`${what}: process exited before it was ready:\n${child.logTail()}`)
    if (await check().catch(() => false)) return
    if (Date.now() >= deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms${child !== undefined ? `:\n${child.logTail()}` : ''}`)
    await sleep(50)
  }
}

export async function waitForPort (port: number, timeoutMs: number, child?: Child, what = `port ${port}`): Promise<void> {
  await waitUntil(what, async () => await tryConnect(port), timeoutMs, child)
}

// ---------------------------------------------------------------- /proc

let clkTck: number | undefined
/** Clock ticks per second for /proc/<pid>/stat times (getconf CLK_TCK, 100 on Linux). */
export function clockTicks (): number {
  if (clkTck === undefined) {
    const v = Number(sh('getconf', ['CLK_TCK']))
    clkTck = Number.isFinite(v) && v > 0 ? v : 100
  }
  return clkTck
}

/** The machine's CPU time so far (all CPUs, ticks): in total, and stolen by the hypervisor. */
export interface MachineTicks { total: number, steal: number }

/** `/proc/stat`'s aggregate line; undefined when it cannot be read. */
export function machineTicks (): MachineTicks | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
    // cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already counted in user, so the total is the first eight.
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined
    return { total: f.reduce((a, b) => a + b, 0), steal: f[7]! }
  } catch {
    return undefined
  }
}

/** % of the machine's CPU time the hypervisor gave to someone else between two readings. */
export function stealPctBetween (a: MachineTicks | undefined, b: MachineTicks | undefined): number | undefined {
  if (a === undefined || b === undefined || b.total <= a.total) return undefined
  return ((b.steal - a.steal) / (b.total - a.total)) * 100
}

interface StatFields { ppid: number, utime: number, stime: number }

/** Fields of /proc/<pid>/stat, parsed after the last ')' (the command name may hold spaces). */
function readStat (pid: number): StatFields | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) }
}

/** `root` and all its descendants, from a scan of /proc. */
export function processTree (root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid)) continue
    const st = readStat(pid)
    if (st === undefined) continue
    const list = children.get(st.ppid)
    if (list === undefined) children.set(st.ppid, [pid]); else list.push(pid)
  }
  const out: number[] = []
  const todo = [root]
  while (todo.length > 0) {
    const pid = todo.pop()!
    out.push(pid)
    for (const c of children.get(pid) ?? []) todo.push(c)
  }
  return out
}

/** [utime, stime] per pid of the tree, in clock ticks. */
export type CpuSample = Map<number, readonly [user: number, kernel: number]>

export function sampleCpu (roots: readonly number[]): CpuSample {
  const out: CpuSample = new Map()
  for (const root of roots) {
    for (const pid of processTree(root)) {
      const st = readStat(pid)
      if (st !== undefined) out.set(pid, [st.utime, st.stime])
    }
  }
  return out
}

/** CPU seconds used between two samples, user and kernel, summed over the pids present in both. */
export function cpuSplitBetween (a: CpuSample, b: CpuSample): { userS: number, kernelS: number } {
  let user = 0
  let kernel = 0
  for (const [pid, t1] of b) {
    const t0 = a.get(pid)
    if (t0 === undefined) continue
    user += t1[0] - t0[0]
    kernel += t1[1] - t0[1]
  }
  return { userS: user / clockTicks(), kernelS: kernel / clockTicks() }
}

/** CPU seconds used between two samples (user + kernel), summed over the pids present in both. */
export function cpuSecondsBetween (a: CpuSample, b: CpuSample): number {
  const { userS, kernelS } = cpuSplitBetween(a, b)
  return userS + kernelS
}

/** CPU seconds used over `wallMs` milliseconds, as % of one core. */
export function pctOfCore (cpuS: number, wallMs: number): number {
  return (cpuS * 1000 / wallMs) * 100
}

/**
 * Waits until `roots` (with their process trees) together use less than
 * `maxPct` % of one core over one `stepMs` sample, or `maxMs` passed. Node
 * processes that just finished a load run keep working for seconds after it
 * (V8 shrinks their heaps, optimises code on its threads); on two cores that
 * work delays the next measurement's wake-ups.
 */
export async function waitQuiet (roots: readonly number[], o: { maxPct: number, stepMs: number, maxMs: number }): Promise<{ waitedMs: number, pct: number, quiet: boolean }> {
  const t0 = performance.now()
  let pct = Number.POSITIVE_INFINITY
  while (true) {
    const a = sampleCpu(roots)
    const s0 = performance.now()
    await sleep(o.stepMs)
    pct = pctOfCore(cpuSecondsBetween(a, sampleCpu(roots)), performance.now() - s0)
    const waitedMs = performance.now() - t0
    if (pct < o.maxPct) return { waitedMs, pct, quiet: true }
    if (waitedMs >= o.maxMs) return { waitedMs, pct, quiet: false }
  }
}

/** Resident set size in bytes (VmRSS), or undefined. */
export function rssBytes (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m !== null ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** Open file descriptors of a process, and how many of them are sockets. */
export function openFds (pid: number): { fds: number, sockets: number } {
  let fds = 0
  let sockets = 0
  let names: string[]
  try {
    names = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return { fds: -1, sockets: -1 }
  }
  for (const n of names) {
    fds++
    try {
      if (readlinkSync(`/proc/${pid}/fd/${n}`).startsWith('socket:')) sockets++
    } catch { /* closed meanwhile */ }
  }
  return { fds, sockets }
}

/** The soft RLIMIT_NOFILE of a running process (from /proc/<pid>/limits). */
export function nofileLimit (pid: number): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
    return m !== null ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}
