/**
 * Streaming figures: the delay the gateway adds to each SSE event, and what N
 * concurrent idle SSE streams cost the gateway process (RSS, sockets, idle CPU).
 */
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuSecondsBetween, nofileLimit, openFds, rssBytes, sampleCpu, spawnChild, stopChild, WATCHDOG_PRELOAD, type Child } from './procs.js'
import { percentile } from './stats.js'
import type { NodeRuntime } from './systems.js'

// ---------------------------------------------------------------- added delay per event

/**
 * The timestamped event source. It runs in the harness process, like the
 * client that reads the events, so send and receive times come from one clock
 * (process.hrtime, monotonic). `?n=<events>&interval=<ms>`; any method.
 */
export interface TickServer { origin: string, close: () => Promise<void> }

export async function startTickServer (): Promise<TickServer> {
  const server: Server = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const n = Math.min(10_000, Number(q.get('n') ?? 100))
    const interval = Math.min(1000, Number(q.get('interval') ?? 10))
    req.resume()
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    let i = 0
    let timer: NodeJS.Timeout | undefined
    const tick = (): void => {
      if (res.destroyed) return
      res.write(`data: {"seq":${i},"t":"${process.hrtime.bigint()}"}\n\n`)
      i++
      if (i >= n) res.end(); else timer = setTimeout(tick, interval)
    }
    timer = setTimeout(tick, interval)
    res.on('close', () => { clearTimeout(timer) })
  })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => { resolve() }) })
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

export interface DelaySample {
  /** Events received (after the skipped first ones). */
  events: number
  p50Us: number
  p99Us: number
  maxUs: number
}

/** Reads one SSE response and returns, per event, receive time − send time (µs); the first `skip` events are dropped. */
export async function sseDelays (url: string, o: { method: 'GET' | 'POST', headers: Record<string, string>, body?: string, n: number, intervalMs: number, skip: number }): Promise<number[]> {
  const timeoutMs = o.n * o.intervalMs + 15_000
  return await new Promise<number[]>((resolve, reject) => {
    const delays: number[] = []
    let seen = 0
    let buf = ''
    const req = request(`${url}${url.includes('?') ? '&' : '?'}n=${o.n}&interval=${o.intervalMs}`, { method: o.method, headers: o.headers, agent: false, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`SSE ${o.method} ${url}: status ${res.statusCode ?? 0}`))
        return
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        const now = process.hrtime.bigint()
        buf += chunk
        let end: number
        while ((end = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const m = /"t":"(\d+)"/.exec(block)
          if (m === null) continue
          if (seen++ >= o.skip) delays.push(Number(now - BigInt(m[1]!)) / 1000)
        }
      })
      res.on('end', () => { resolve(delays) })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`SSE ${url}: no end after ${timeoutMs} ms`)) })
    req.on('error', reject)
    req.end(o.body)
  })
}

export function summarizeDelays (d: number[]): DelaySample {
  return { events: d.length, p50Us: percentile(d, 50), p99Us: percentile(d, 99), maxUs: d.length > 0 ? Math.max(...d) : Number.NaN }
}

// ---------------------------------------------------------------- idle streams

export interface IdleStreamsResult {
  n: number
  status: 'ok' | 'skipped' | 'failed'
  reason?: string
  /** Why this N was measured when it is not one of the requested ones. */
  note?: string
  established?: number
  failed?: number
  failures?: Record<string, number>
  openMs?: number
  baselineRssMB?: number
  rssMB?: number
  /** (rss − baseline) / n */
  perStreamKB?: number
  baselineSockets?: number
  fds?: number
  sockets?: number
  /** Gateway CPU while holding the streams idle, % of one core. */
  idleCpuPct?: number
  holdS?: number
  /** Seconds the release was watched for, after the clients closed. */
  releaseS?: number
  /** Gateway sockets above its baseline once it and the upstream released their legs, or `releaseS` after the clients closed (0: all released). */
  socketsAfterClose?: number
  /** Upstream sockets above its baseline at that moment (legs the gateway kept open, or the upstream had not closed yet). */
  upstreamSocketsAfterClose?: number
  /** Seconds the streams were held after `rssMB` was read, for the settled figure (largest N only). */
  settleS?: number
  /** RSS at the end of the settle window: after V8's memory reducer has had time to compact the heap of a process that stopped allocating. */
  settledRssMB?: number
  /** (settledRss − baseline) / n */
  settledPerStreamKB?: number
  /** Seconds after `rssMB` was read when RSS first fell by more than 5 MB below it; undefined: it did not. */
  settleDropAtS?: number
}

const MB = 1024 * 1024
/** Descriptors a process needs besides the streams (listeners, pipes, epoll, files), before its own count is known. */
const FD_HEADROOM = 256
/** Descriptors kept free above a process's measured count plus its streams (a JWKS fetch, a log reopen). */
const FD_MARGIN = 16
/** The fallback N (when the asked N does not fit the fd limit) is rounded down to a multiple of this. */
const FALLBACK_STEP = 25

/**
 * How many idle streams fit under the fd limit `limit`: each holds two
 * descriptors in the gateway (the client's socket and the upstream leg) and
 * one in the upstream. `gatewayBaseFds`: a fresh gateway's own descriptors
 * (undefined: not yet read, FD_HEADROOM assumed). `fallback`: the largest
 * that fits, rounded down to FALLBACK_STEP, measured instead of an N that does not.
 */
export function feasibleStreams (limit: number, gatewayBaseFds: number | undefined, upstreamFds: number): { gwReserved: number, gwMax: number, upFree: number, feasibleMax: number, fallback: number } {
  // The gateway's descriptors besides its streams.
  const gwReserved = gatewayBaseFds === undefined ? FD_HEADROOM : gatewayBaseFds + FD_MARGIN
  const gwMax = Math.floor((limit - gwReserved) / 2)
  const upFree = limit - upstreamFds - FD_MARGIN
  const feasibleMax = Math.max(0, Math.min(gwMax, upFree))
  return { gwReserved, gwMax, upFree, feasibleMax, fallback: Math.floor(feasibleMax / FALLBACK_STEP) * FALLBACK_STEP }
}

/**
 * For each N, on a gateway process of its own (started by `startGateway`, so
 * one N's leftovers cannot inflate the next): N idle streams (GET, Accept:
 * text/event-stream, held by a separate client process), then the gateway's
 * RSS, open fds and sockets, and its CPU while they sit idle. Then the clients
 * close, and what the gateway still holds a little later is recorded too.
 */
export async function idleStreams (rt: NodeRuntime, o: {
  dir: string
  startGateway: (name: string) => Promise<{ child: Child, port: number }>
  stopGateway: (child: Child) => Promise<void>
  upstream: Child
  path: string
  token: string
  counts: number[]
  holdS: number
  /** How long to watch the gateway release its sockets after the clients closed. */
  releaseS: number
  /** For the largest N: how long to keep holding the streams, reading RSS every second, for the settled figure (0: none). */
  settleS: number
  log: (line: string) => void
}): Promise<IdleStreamsResult[]> {
  const out: IdleStreamsResult[] = []
  let measuredMax = 0
  // A fresh gateway's own descriptors (stdio, epoll, listeners, log file), read before its
  // streams open; it decides the largest N that fits the fd limit. Unknown until one N ran.
  let gatewayBaseFds: number | undefined

  const measure = async (n: number, note: string | undefined, settle: boolean): Promise<IdleStreamsResult> => {
    const gw = await o.startGateway(`idle-gateway-${n}`)
    await sleep(1000)
    const base = openFds(gw.child.pid)
    const baseSockets = base.sockets
    gatewayBaseFds = Math.max(gatewayBaseFds ?? 0, base.fds)
    const baseRss = (rssBytes(gw.child.pid) ?? 0) / MB
    const upBase = openFds(o.upstream.pid).sockets
    o.log(`idle streams: opening ${n} through a fresh gateway`)
    const holder = spawnChild(`stream-holder-${n}`, rt.node, ['--import', 'tsx', '--import', WATCHDOG_PRELOAD, join(rt.root, 'bench/procs/stream-holder.ts')], {
      cwd: rt.root,
      env: { ...process.env, NODE_OPTIONS: '', PORT: String(gw.port), TARGET_PATH: o.path, TOKEN: o.token, N: String(n), CONCURRENCY: '200', TIMEOUT_MS: String(30_000 + n * 10), HOLD_MS: String((o.holdS + o.settleS + 120) * 1000) },
      logPath: join(o.dir, `stream-holder-${n}.log`),
      raiseNofile: true,
      pipeStdout: true
    })
    let holderStopped = false
    try {
      const reportTimeoutMs = (45 + n / 100) * 1000
      const line = await new Promise<string>((resolve, reject) => {
        let acc = ''
        const timer = setTimeout(() => { reject(new Error(`stream holder: no report after ${reportTimeoutMs / 1000} s`)) }, reportTimeoutMs)
        holder.proc.stdout?.on('data', (b: Buffer) => {
          acc += b.toString()
          const nl = acc.indexOf('\n')
          if (nl !== -1) { clearTimeout(timer); resolve(acc.slice(0, nl)) }
        })
        void holder.exited.then(() => { clearTimeout(timer); reject(new Error(`stream holder exited early: ${holder.logTail(5)}`)) })
      })
      const rep = JSON.parse(line) as { established: number, failed: number, pending: number, errors: Record<string, number>, ms: number }
      await sleep(2000)
      const c0 = sampleCpu([gw.child.pid])
      const t0 = Date.now()
      await sleep(o.holdS * 1000)
      const cpuS = cpuSecondsBetween(c0, sampleCpu([gw.child.pid]))
      const heldS = (Date.now() - t0) / 1000
      // A gateway that died (e.g. killed at a container's memory limit) has no RSS to report.
      const died = async (): Promise<IdleStreamsResult | undefined> => gw.child.hasExited()
        ? { n, status: 'failed', reason: `the gateway exited (${String(await gw.child.exited)}) while the streams were open; ${rep.established} of ${n} had been established${Object.keys(rep.errors).length > 0 ? `, failures ${JSON.stringify(rep.errors)}` : ''}` }
        : undefined
      const diedHolding = await died()
      if (diedHolding !== undefined) return diedHolding
      const rss = (rssBytes(gw.child.pid) ?? 0) / MB
      const { fds, sockets } = openFds(gw.child.pid)
      // Idle is a state, not a moment: right after the burst of opening, the heap still holds
      // that burst's garbage and free pages. V8's memory reducer compacts it once the process
      // has stopped allocating (seconds to a minute later: BENCHMARKS.md, idle streams).
      let settled: Pick<IdleStreamsResult, 'settleS' | 'settledRssMB' | 'settledPerStreamKB' | 'settleDropAtS'> = {}
      if (settle && o.settleS > 0) {
        o.log(`idle streams: holding ${n} for ${o.settleS} s more (settled RSS)`)
        let dropAt: number | undefined
        let last = rss
        for (let s = 1; s <= o.settleS; s++) {
          await sleep(1000)
          last = (rssBytes(gw.child.pid) ?? 0) / MB
          if (dropAt === undefined && last < rss - 5) dropAt = s
        }
        const diedSettling = await died()
        if (diedSettling !== undefined) return diedSettling
        settled = {
          settleS: o.settleS,
          settledRssMB: last,
          settledPerStreamKB: rep.established > 0 ? ((last - baseRss) * 1024) / rep.established : Number.NaN,
          ...(dropAt !== undefined ? { settleDropAtS: dropAt } : {})
        }
      }
      // The clients go away; does the gateway let go of both legs?
      await stopChild(holder, 2000)
      holderStopped = true
      const deadline = Date.now() + o.releaseS * 1000
      // Both ends: the upstream closes its side of a leg only after it has read the gateway's FIN,
      // so its count lags (read the moment the gateway's had dropped: 120 of 9,975 still open once).
      while (Date.now() < deadline && (openFds(gw.child.pid).sockets > baseSockets + 10 || openFds(o.upstream.pid).sockets > upBase + 10)) await sleep(200)
      const after = openFds(gw.child.pid).sockets
      const upAfter = openFds(o.upstream.pid).sockets
      return {
        n,
        status: rep.established === n ? 'ok' : 'failed',
        ...(rep.established === n ? {} : { reason: `${rep.established} of ${n} streams established` }),
        ...(note !== undefined ? { note } : {}),
        established: rep.established,
        failed: rep.failed + rep.pending,
        failures: rep.errors,
        openMs: rep.ms,
        baselineRssMB: baseRss,
        rssMB: rss,
        perStreamKB: rep.established > 0 ? ((rss - baseRss) * 1024) / rep.established : Number.NaN,
        baselineSockets: baseSockets,
        fds,
        sockets,
        idleCpuPct: (cpuS / heldS) * 100,
        holdS: heldS,
        releaseS: o.releaseS,
        // Above the count before the streams opened; keep-alive connections of the process's own
        // (JWKS, the upstream pool) that closed meanwhile would make it negative.
        socketsAfterClose: Math.max(0, after - baseSockets),
        upstreamSocketsAfterClose: Math.max(0, upAfter - upBase),
        ...settled
      }
    } finally {
      if (!holderStopped) await stopChild(holder, 2000)
      await o.stopGateway(gw.child)
    }
  }

  const largest = Math.max(...o.counts)
  for (const n of o.counts) {
    const settle = n === largest
    // Every gateway and the upstream are spawned alike; read the limit the upstream got.
    const limit = nofileLimit(o.upstream.pid) ?? 1024
    const { gwReserved, gwMax, upFree, feasibleMax, fallback } = feasibleStreams(limit, gatewayBaseFds, openFds(o.upstream.pid).fds)
    if (n > feasibleMax) {
      const why = n > gwMax
        ? `needs about ${(2 * n + gwReserved).toLocaleString('en-US')} descriptors in the gateway (${n} client + ${n} upstream sockets), but RLIMIT_NOFILE is ${limit} ` +
          '(the hard limit here; raising it needs CAP_SYS_RESOURCE: raise it before running the bench)'
        : `needs about ${n + FD_MARGIN} free descriptors in the upstream, but it has ${upFree + FD_MARGIN} left of ${limit}`
      out.push({ n, status: 'skipped', reason: why })
      const alt = fallback
      if (alt > measuredMax) {
        try {
          out.push(await measure(alt, `the largest N (in steps of ${FALLBACK_STEP}) this machine's fd limit allows, measured instead of ${n}`, settle))
        } catch (err) {
          out.push({ n: alt, status: 'failed', reason: (err as Error).message })
        }
        measuredMax = alt
      }
      continue
    }
    try {
      out.push(await measure(n, undefined, settle))
    } catch (err) {
      out.push({ n, status: 'failed', reason: (err as Error).message })
    }
    measuredMax = Math.max(measuredMax, n)
  }
  return out
}
