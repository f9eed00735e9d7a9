/**
 * The benchmark harness in smoke mode (`npm run bench:smoke`: 1 round, 2 s per
 * system, only the upstream directly and the gateway), run as a child process
 * exactly as a user runs it, so the harness never rots. Needs wrk (the harness
 * installs it with apt-get when it runs as root, else falls back to autocannon);
 * never nginx or HAProxy. With `--trace-gc`, so the garbage-collection counts
 * per window are exercised on each supported Node version's real V8 trace, and with
 * `--node-options`, whose preload proves which processes the flags reached.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import type { BenchResults } from '../../bench/lib/bench.js'

const ROOT = resolve(import.meta.dirname, '../..')
const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'))
t.teardown(() => { rmSync(out, { recursive: true, force: true }) })

interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

// --node-options: a preload that records the pid of every process it reaches.
const marker = join(out, 'node-options-pids.txt')
const preload = join(out, 'mark.cjs')
writeFileSync(preload, "require('node:fs').appendFileSync(process.env.BENCH_SMOKE_MARKER, process.pid + '\\n')\n")

const bench = async (args: string[]): Promise<Run> => await new Promise<Run>((resolve) => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '', BENCH_SMOKE_MARKER: marker },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  // Bounded: SIGINT lets the harness stop its children; SIGKILL if it does not exit.
  const soft = setTimeout(() => { child.kill('SIGINT') }, 90_000)
  const hard = setTimeout(() => { child.kill('SIGKILL') }, 100_000)
  child.on('close', (code, signal) => {
    clearTimeout(soft)
    clearTimeout(hard)
    resolve({ code, signal, stdout, stderr })
  })
})

const run = await bench(['--smoke', '--trace-gc', `--node-options=--require ${preload}`, '--out-dir', out])

t.equal(run.code, 0, 'bench:smoke exits 0', { stderr: run.stderr.slice(-3000) })

const files = { md: join(out, 'smoke.md'), json: join(out, 'smoke.json'), svg: join(out, 'smoke.svg') }
t.test('writes the markdown, JSON and SVG results', async (t) => {
  for (const f of Object.values(files)) t.ok(existsSync(f), `${f} exists`)
  const md = readFileSync(files.md, 'utf8')
  t.match(md, /^# mcp-auth-gateway benchmark \(smoke mode\)/)
  t.match(md, /\| system \| CPU µs\/request \| of which kernel µs\/request \| req\/s \|/)
  t.match(md, /\(e\) mcp-auth-gateway, JWT route/)
  t.ok(run.stdout.includes('## CPU per request and throughput'), 'the table is printed to stdout')
  const svg = readFileSync(files.svg, 'utf8')
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.match(svg, /<\/svg>\n$/)
  t.match(svg, /<rect [^>]*fill="#2563eb"/, 'a bar for the gateway')
})

t.test('both systems ran and produced real figures', async (t) => {
  const r = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults
  t.equal(r.meta.options.smoke, true, 'smoke mode recorded')
  t.match(r.meta.commit, /^([0-9a-f]{4,}|unknown)$/, 'git commit recorded')
  t.ok(r.meta.nproc >= 1 && r.meta.cpuModel !== '' && r.meta.node.startsWith('v'), 'machine recorded')
  t.same(r.systems.map((s) => [s.id, s.status]), [['direct', 'ok'], ['gateway', 'ok']], 'only direct and the gateway, both available (the gateway passed its preflight: 200 with a valid token, refusals without one, with a bad signature and expired)')
  for (const id of ['direct', 'gateway'] as const) {
    const runs = r.runs.filter((x) => x.system === id)
    t.equal(runs.length, 1, `${id}: one round`)
    const x = runs[0]!
    t.ok(x.requests > 0 && x.rps > 0, `${id}: requests/s > 0 (${x.rps.toFixed(0)})`)
    t.ok(Number.isFinite(x.cpuUsPerReq) && x.cpuUsPerReq > 0, `${id}: CPU per request is finite and > 0 (${x.cpuUsPerReq.toFixed(1)} µs)`)
    t.ok(x.p50Ms > 0 && x.p99Ms >= x.p50Ms, `${id}: latency percentiles`)
    // A proxy on loopback spends part of every request in socket system calls: never zero kernel time, never more than the total.
    t.ok(x.kernelUsPerReq > 0 && x.kernelUsPerReq <= x.cpuUsPerReq, `${id}: kernel CPU per request is within the total (${x.kernelUsPerReq.toFixed(1)} of ${x.cpuUsPerReq.toFixed(1)} µs)`)
  }
  const gw = r.runs.find((x) => x.system === 'gateway')!
  t.equal(gw.errorsTotal, 0, 'no errors through the gateway: a valid token gets 200s')
  t.ok(gw.stealPct !== undefined && gw.stealPct >= 0 && gw.stealPct <= 100, `the machine's steal time over the window is recorded (${gw.stealPct?.toFixed(2) ?? 'none'} %)`)
  t.ok(gw.upstreamCpuUsPerReq !== undefined && gw.upstreamCpuUsPerReq > 0, 'the upstream behind the gateway was measured too')
  t.ok(r.summary.gateway?.cpuUsPerReq?.median !== undefined && r.summary.gateway.cpuUsPerReq.median > 0, 'the summary has the gateway\'s CPU per request')
})

/** Requests in a 2 s window above which a Node system must have had a young-generation collection. */
const YOUNG_GC_REQUESTS = 2_000

t.test('--trace-gc: collections counted in each measured window of both Node systems', async (t) => {
  const r = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults
  t.equal(r.meta.options.traceGc, true, 'recorded in the options')
  for (const id of ['direct', 'gateway'] as const) {
    const run = r.runs.find((x) => x.system === id)
    const gc = run?.gc
    t.ok(gc !== undefined && [gc.young, gc.old, gc.pauseMs].every((n) => Number.isFinite(n) && n >= 0), `${id}: a collection count for its window (${JSON.stringify(gc)})`)
    // A young collection comes once a semi-space (at most 16 MB) is full; the gateway allocates ~25 KB
    // per request here (15,332 requests, 25 collections in a local smoke window), so 2,000 requests
    // mean at least three. A CI machine under load served only 1,036 (518/s at 28 % steal) and showed
    // none, most likely because tsx's loader isolate was counted (bench-gc.test.ts, regression); below
    // the bar only the record above is checked. bench-gc.test.ts counts a real traced child either way.
    if ((run?.requests ?? 0) >= YOUNG_GC_REQUESTS) {
      t.ok(gc !== undefined && gc.young > 0 && gc.pauseMs > 0, `${id}: ${run?.requests ?? 0} requests, young collections counted in its window`)
    } else {
      t.comment(`${id}: ${run?.requests ?? 0} requests in the window, fewer than ${YOUNG_GC_REQUESTS}: a young collection is not certain`)
    }
  }
  t.ok(r.streaming.delay?.post?.runs[0]?.gatewayGc !== undefined, 'the gateway\'s collections during the SSE stream are counted')
  t.match(readFileSync(files.md, 'utf8'), /## Garbage collections per measured window/, 'the markdown has the GC table')
})

t.test('streaming and cold-token figures', async (t) => {
  const r = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults
  const d = r.streaming.delay
  t.equal(d?.error, undefined, 'the SSE delay measurement did not fail')
  t.equal(d?.repeats, 1, 'smoke mode: one stream per method')
  t.ok(d?.post !== undefined && d.post.runs.length === 1 && d.post.runs[0]!.gateway.events > 0 && Number.isFinite(d.post.addedP50Us.median), 'SSE delay through the gateway measured (POST)')
  t.ok(d?.get !== undefined && d.get.runs.length === 1 && d.get.runs[0]!.gateway.events > 0 && Number.isFinite(d.get.addedP99Us.median), 'SSE delay measured (GET)')
  t.ok(d!.post!.runs[0]!.quietWaitS >= 1, 'the harness sampled the other processes for at least one second before the stream')
  t.equal(r.streaming.idle.length, 1, 'one idle-stream measurement')
  t.equal(r.streaming.idle[0]?.n, 100, 'smoke mode: no more than 100 idle streams')
  t.equal(r.streaming.idle[0]?.established, 100, '100 idle streams established through the gateway')
  t.ok((r.streaming.idle[0]?.rssMB ?? 0) > 0, 'gateway RSS read')
  t.equal(r.streaming.idle[0]?.settleS, 2, 'smoke mode: the largest N is held 2 s longer for the settled figure')
  t.ok((r.streaming.idle[0]?.settledRssMB ?? 0) > 0, 'settled RSS read')
  t.match(readFileSync(files.md, 'utf8'), /Settled, 100 streams held 2 s longer/, 'the report states the settled figure')
  const c = r.cold?.start
  t.equal(c?.firstRequest.status, 200, 'first request of a fresh gateway succeeds')
  t.equal(c?.jwksFetchesAtReady, 1, 'the JWKS was fetched once at startup')
  t.equal(c?.jwksFetchesTotal, 1, 'and not again for never-seen tokens')
  t.same(c?.concurrent.statuses, { 200: c?.concurrent.n }, 'concurrent never-seen tokens all succeed')
  t.equal(r.cold?.rotation?.status, 'skipped', 'key rotation is skipped in smoke mode, with a reason')
})

t.test('--node-options reaches the gateway and the upstream, and is reported', async (t) => {
  const r = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults
  t.equal(r.meta.options.nodeOptions, `--require ${preload}`, 'recorded in the options')
  const reached = new Set(readFileSync(marker, 'utf8').split('\n').filter((l) => l !== '').map(Number))
  for (const s of r.systems) {
    const pid = s.pids?.[0]
    t.ok(pid !== undefined && reached.has(pid), `${s.id}: its measured process (pid ${String(pid)}) ran the preload`)
  }
  t.match(readFileSync(files.md, 'utf8'), `with NODE_OPTIONS \`--require ${preload}\``, 'the report names the flags')
})

t.test('--node-options that Node refuses: a clear error, exit 2, nothing started', async (t) => {
  const bad = await bench(['--smoke', '--node-options=--no-such-flag-for-bench', '--out-dir', join(out, 'bad')])
  t.equal(bad.code, 2, 'exit 2, as for any bad option')
  t.match(bad.stderr, /bench: --node-options: .* refuses NODE_OPTIONS="--no-such-flag-for-bench": .*--no-such-flag-for-bench/, 'names the option, the flags and Node\'s own reason')
  t.notOk(existsSync(join(out, 'bad')), 'no results written')
  t.notMatch(bad.stderr, /work dir/, 'no work dir created: nothing was started')
})

t.test('every process the harness started is gone', async (t) => {
  const r = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults
  const pids = r.systems.flatMap((s) => s.pids ?? [])
  t.ok(pids.length >= 2, 'the measured pids are recorded')
  for (const pid of pids) t.notOk(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), `pid ${pid} has exited`)
})
