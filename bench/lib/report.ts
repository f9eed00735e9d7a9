/** The results as markdown tables and as an SVG bar chart (hand-written, no chart library). */
import type { BenchResults, DelayPair, SystemRecord } from './bench.js'
import type { SystemId } from './catalogue.js'
import { spread, type Spread } from './stats.js'

const f = (x: number | undefined, digits = 1): string => x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits)
const int = (x: number | undefined): string => x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US')
const sp = (s: Spread | undefined, digits = 1, fmt: (x: number, d: number) => string = (x, d) => x.toFixed(d)): string =>
  s === undefined ? '–' : s.n === 1 ? fmt(s.median, digits) : `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`
const spInt = (s: Spread | undefined): string => sp(s, 0, (x) => Math.round(x).toLocaleString('en-US'))

function name (s: SystemRecord): string {
  return s.letter !== undefined ? `(${s.letter}) ${s.label}` : s.label
}

function unavailable (s: SystemRecord): string {
  return s.status === 'not-available' ? (s.reason ?? 'not available yet') : `not available: ${s.reason ?? 'unknown'}`
}

export function markdown (r: BenchResults): string {
  const m = r.meta
  const o = m.options
  const out: string[] = []
  out.push(`# mcp-auth-gateway benchmark${o.smoke ? ' (smoke mode)' : ''}`, '')
  out.push(`- **date** ${m.date} · **commit** ${m.commit}${m.dirty ? ' (with uncommitted changes)' : ''} · **wall time** ${Math.round(m.wallS)} s`)
  out.push(`- **machine** ${m.nproc} CPUs (\`nproc\`), ${m.cpuModel}, ${m.memGB} GB, Linux ${m.kernel}`)
  const nodeOptions = m.options.nodeOptions !== '' ? ` with NODE_OPTIONS \`${m.options.nodeOptions}\`` : ''
  out.push(`- **node** ${m.node} (harness), ${m.gatewayNode} (gateway and the other Node processes${nodeOptions}) · **gateway** \`${m.gatewayEntry}\`, logLevel \`${m.gatewayLogLevel}\``)
  out.push(`- **tools** ${Object.values(m.tools).join(' · ')}`)
  out.push(`- **load** ${m.loadgen}: ${o.connections} connections, ${o.threads} thread${o.threads === 1 ? '' : 's'}, ${o.durationS} s per system per round, ${o.rounds} round${o.rounds === 1 ? '' : 's'} interleaved (${o.alternate ? 'A B C, then C B A: every even round in reverse order' : 'A B C … A B C …'}), ${o.warmupS} s warm-up per system first${o.settleS > 0 ? `, and ${o.settleS} s of unmeasured load right before each measured run (steady state)` : ''}`)
  out.push('- **request** POST JSON-RPC `tools/call` (100 bytes) with `Authorization: Bearer` (RS256 JWT, the same warm token for every system); the bare upstream answers 300 bytes of JSON')
  out.push('- **CPU** utime+stime from `/proc/<pid>/stat` of the system\'s whole process tree, sampled right before and after the load run, divided by the requests served', '')

  const proxy = r.systems.filter((s) => s.group === 'proxy')
  const real = r.systems.filter((s) => s.group === 'real')
  const n = o.rounds

  out.push(`## CPU per request and throughput (median of ${n} round${n === 1 ? '' : 's'} [min–max])`, '')
  out.push('| system | CPU µs/request | of which kernel µs/request | req/s | p50 ms | p99 ms | errors | its CPU, % of one core | upstream CPU µs/request | load generator CPU, % of one core |')
  out.push('|---|---|---|---|---|---|---|---|---|---|')
  for (const s of proxy) {
    const x = r.summary[s.id]
    if (s.status !== 'ok' || x === undefined) {
      out.push(`| ${name(s)} | ${unavailable(s)} | | | | | | | | |`)
      continue
    }
    const cpu = s.id === 'direct' ? `${sp(x.cpuUsPerReq)} ¹` : `**${sp(x.cpuUsPerReq)}**`
    out.push(`| ${name(s)} | ${cpu} | ${sp(x.kernelUsPerReq)} | ${spInt(x.rps)} | ${sp(x.p50Ms, 2)} | ${sp(x.p99Ms, 2)} | ${int(x.errorsTotal)} of ${int(x.requestsTotal)} | ${sp(x.cpuPct, 0)} | ${sp(x.upstreamCpuUsPerReq)} | ${sp(x.loadgenCpuPct, 0)} |`)
  }
  out.push('', '¹ No proxy: the figure is the upstream process\'s own CPU per request.')
  out.push('Kernel time is `stime`: system calls, and on loopback the TCP work of both ends of a write, which Linux does in the writer\'s context. The rest of the CPU figure is user time: the proxy\'s own code, its runtime and its libraries.')
  out.push('Errors are HTTP status ≥ 400 plus socket errors (connect, read, write, timeout) as the load generator counts them. A system near 100 % of one core is CPU-bound (Node processes can exceed 100 %: GC and libuv threads).', '')

  const steal = Array.from({ length: n }, (_, i) => spread(r.runs.filter((x) => x.round === i + 1 && x.stealPct !== undefined).map((x) => x.stealPct!)))
  if (steal.some((x) => x !== undefined)) {
    out.push(`Steal time (\`/proc/stat\`): the share of this machine's CPU time in which its CPUs were ready to run and the hypervisor did not run them (other guests, slow wake-ups); % of each round's windows, median [max]: ${steal.map((x, i) => `round ${i + 1} ${x === undefined ? '–' : `${f(x.median, 1)} [${f(x.max, 1)}]`}`).join(', ')}. A hint of how noisy the host was, not a correction: it is zero on bare metal.`, '')
  }

  const cpuRatios = r.ratios.filter((x) => x.metric === 'cpuUsPerReq')
  if (cpuRatios.length > 0) {
    out.push('## Ratios, computed within each round (CPU per request)', '')
    out.push(`| ratio | ${Array.from({ length: n }, (_, i) => `round ${i + 1}`).join(' | ')} | median [range] |`)
    out.push(`|---|${'---|'.repeat(n)}---|`)
    for (const x of cpuRatios) {
      const cells = Array.from({ length: n }, (_, i) => f(x.perRound.find((p) => p.round === i + 1)?.value, 2))
      out.push(`| ${x.num} / ${x.den} | ${cells.join(' | ')} | **${sp(x.spread, 2)}** |`)
    }
    out.push('')
  }

  const traced = r.systems.filter((s) => r.summary[s.id]?.gcYoung !== undefined)
  if (traced.length > 0) {
    out.push(`## Garbage collections per measured window (\`--trace-gc\`, median of ${n} [min–max])`, '')
    out.push(`Counted from each Node process's V8 trace over the ${o.durationS} s window. "Old space" is a full mark-compact; a system whose windows show several of them per second is in the promotion state described in BENCHMARKS.md, and its CPU figure with it. Several systems share the gateway's process.`, '')
    out.push('| system | young-generation collections | old-space collections | pause ms (sum) |')
    out.push('|---|---|---|---|')
    for (const s of traced) {
      const x = r.summary[s.id]!
      out.push(`| ${name(s)} | ${sp(x.gcYoung, 0)} | **${sp(x.gcOld, 0)}** | ${sp(x.gcPauseMs, 1)} |`)
    }
    out.push('')
  }

  if (real.length > 0) {
    out.push('## Real upstream: an MCP SDK server (stateless Streamable HTTP, JSON responses) doing `tools/call`', '')
    out.push('| system | req/s | p50 ms | p99 ms | errors | CPU µs/request | upstream CPU µs/request |')
    out.push('|---|---|---|---|---|---|---|')
    for (const s of real) {
      const x = r.summary[s.id]
      if (s.status !== 'ok' || x === undefined) {
        out.push(`| ${name(s)} | ${unavailable(s)} | | | | | |`)
        continue
      }
      out.push(`| ${name(s)} | ${spInt(x.rps)} | ${sp(x.p50Ms, 2)} | ${sp(x.p99Ms, 2)} | ${int(x.errorsTotal)} of ${int(x.requestsTotal)} | ${sp(x.cpuUsPerReq)}${s.id === 'sdk-direct' ? ' ¹' : ''} | ${sp(x.upstreamCpuUsPerReq)} |`)
    }
    const through = (num: SystemId, what: string): void => {
      const t = r.ratios.find((x) => x.metric === 'rps' && x.num === num)
      if (t !== undefined) out.push('', `Throughput through ${what} / direct, per round: ${t.perRound.map((p) => f(p.value, 2)).join(', ')}; median **${sp(t.spread, 2)}**.`)
    }
    through('sdk-gateway', 'the gateway')
    through('sdk-floor', 'the leanest Node proxy')
    out.push('')
  }

  out.push('## Streaming', '')
  const d = r.streaming.delay
  if (d === undefined) out.push('Added delay per SSE event: not measured (the gateway did not run).', '')
  else {
    const warm = o.sseWarmupEvents ?? 0
    out.push(`### Added delay per SSE event (events ${d.intervalMs} ms apart, first ${d.skipped} dropped${warm > 0 ? `; after ${warm} unmeasured warm-up events per method` : ''})`, '')
    if (d.error !== undefined) out.push(`Failed: ${d.error}`, '')
    const series = ([['POST, SSE response', d.post], ['GET stream', d.get]] as const).filter(([, x]) => x !== undefined)
    if (series.length > 0) {
      const reps = d.repeats ?? 1
      out.push(`Added delay = through the gateway − direct, at the same percentile. ${reps > 1 ? `Median of ${reps} streams per method [min–max]; POST and GET alternate. ` : ''}Before each stream the harness waits until its other processes use < 5 % of one core (at most 30 s).`, '')
      out.push('| stream | added p50 µs | added p99 µs |')
      out.push('|---|---|---|')
      for (const [label, x] of series) out.push(`| ${label} | **${sp(x!.addedP50Us, 0)}** | **${sp(x!.addedP99Us, 0)}** |`)
      out.push('')
      const gc = (x: DelayPair): string => x.gatewayGc === undefined ? '' : ` | ${x.gatewayGc.young} / ${x.gatewayGc.old} / ${f(x.gatewayGc.pauseMs, 1)}`
      const traced = series.some(([, x]) => x!.runs.some((p) => p.gatewayGc !== undefined))
      out.push(`| stream | # | events | direct p50 / p99 µs | through the gateway p50 / p99 µs | added p50 / p99 µs | waited for quiet, s | other processes' CPU during it, % of a core${traced ? ' | gateway GC: young / old-space / pause ms' : ''} |`)
      out.push(`|---|---|---|---|---|---|---|---|${traced ? '---|' : ''}`)
      for (const [label, x] of series) {
        x!.runs.forEach((p, i) => {
          out.push(`| ${label} | ${i + 1} | ${p.gateway.events} | ${f(p.direct.p50Us, 0)} / ${f(p.direct.p99Us, 0)} | ${f(p.gateway.p50Us, 0)} / ${f(p.gateway.p99Us, 0)} | ${f(p.addedP50Us, 0)} / ${f(p.addedP99Us, 0)} | ${f(p.quietWaitS, 1)}${p.quiet ? '' : ' (gave up)'} | ${f(p.othersCpuPct, 1)}${gc(p)} |`)
        })
      }
      out.push('')
    }
  }
  if (r.streaming.idle.length > 0) {
    out.push('### Idle SSE streams held open through the gateway', '')
    const rel = r.streaming.idle.find((x) => x.releaseS !== undefined)?.releaseS ?? 0
    out.push(`| N | established | gateway RSS MB (fresh process before) | KB per stream | open fds | sockets | gateway CPU while idle, % of a core | gateway sockets / upstream legs still open after the clients closed (read once both are released, at most ${rel} s later) | note |`)
    out.push('|---|---|---|---|---|---|---|---|---|')
    for (const x of r.streaming.idle) {
      if (x.status === 'skipped' || x.established === undefined) {
        out.push(`| ${int(x.n)} | ${x.status === 'skipped' ? 'not measured' : 'failed'}: ${x.reason ?? ''} | | | | | | | |`)
        continue
      }
      const note = [x.note, x.status !== 'ok' ? x.reason : undefined, x.failures !== undefined && Object.keys(x.failures).length > 0 ? `failures ${JSON.stringify(x.failures)}` : undefined].filter((s) => s !== undefined).join('; ')
      out.push(`| ${int(x.n)} | ${int(x.established)} in ${f((x.openMs ?? 0) / 1000, 1)} s | **${f(x.rssMB, 0)}** (${f(x.baselineRssMB, 0)}) | ${f(x.perStreamKB, 1)} | ${int(x.fds)} | ${int(x.sockets)} | ${f(x.idleCpuPct, 2)} | ${int(x.socketsAfterClose)} / ${int(x.upstreamSocketsAfterClose)} | ${note} |`)
    }
    out.push('')
    for (const x of r.streaming.idle) {
      if (x.settledRssMB === undefined) continue
      const drop = x.settleDropAtS !== undefined ? `RSS fell more than 5 MB ${x.settleDropAtS} s into that window` : 'RSS did not fall more than 5 MB in that window'
      out.push(`Settled, ${int(x.n)} streams held ${x.settleS ?? 0} s longer (V8 compacts the heap of a process that stopped allocating; ${drop}): **${f(x.settledRssMB, 0)} MB** RSS, ${f(x.settledPerStreamKB, 1)} KB per stream over the fresh process.`, '')
    }
    for (const fl of r.streaming.idleFloor ?? []) {
      if (fl.status !== 'ok' || fl.rssMB === undefined) {
        out.push(`The leanest Node proxy holding ${int(fl.n)} idle streams: ${fl.status === 'skipped' ? 'not measured' : 'failed'}: ${fl.reason ?? ''}`, '')
        continue
      }
      // Against the gateway's largest measured N (the fd-limit fallback may differ by a few dozen).
      const gw = r.streaming.idle.filter((x) => x.status === 'ok' && x.perStreamKB !== undefined).sort((a, b) => b.n - a.n)[0]
      const ratio = gw?.perStreamKB !== undefined && fl.perStreamKB !== undefined && fl.perStreamKB > 0 ? `; per stream, the gateway at ${int(gw.n)} / the leanest proxy: **${f(gw.perStreamKB / fl.perStreamKB, 2)}**` : ''
      out.push(`The leanest Node proxy (node:http + undici, one connection per GET, as the gateway) holding ${int(fl.n)} idle streams, read the same way (right after opening): **${f(fl.rssMB, 0)} MB** (${f(fl.baselineRssMB, 0)} fresh), ${f(fl.perStreamKB, 1)} KB per stream, ${int(fl.socketsAfterClose)} / ${int(fl.upstreamSocketsAfterClose)} sockets left after the clients closed${ratio}. That is what any Node proxy on this runtime holds per stream.`, '')
    }
  }

  out.push('### Cold token', '')
  const c = r.cold
  if (c === undefined || c.start === undefined) out.push(`Not measured${c?.error !== undefined ? `: ${c.error}` : ''}.`, '')
  else {
    const st = c.start
    const statuses = (x: Record<string, number>): string => Object.entries(x).map(([k, v]) => `${v}× ${k}`).join(', ')
    out.push('| measurement | latency | statuses | JWKS fetches |')
    out.push('|---|---|---|---|')
    out.push(`| first request a just-started gateway serves (never-seen token; keys loaded at startup) | ${f(st.firstRequest.ms, 2)} ms | ${st.firstRequest.status} | ${st.jwksFetchesAtReady} at startup, ${st.jwksFetchesTotal} after all of these |`)
    out.push(`| after ${st.warmupRequests} warm-up requests: the same token, warm (cached), median of ${st.warm.n} sequential | ${f(st.warm.medianMs, 2)} ms | ${statuses(st.warm.statuses)} | |`)
    out.push(`| then never-seen tokens (full RS256 verify, keys cached), median of ${st.neverSeenSequential.n} sequential | ${f(st.neverSeenSequential.medianMs, 2)} ms | ${statuses(st.neverSeenSequential.statuses)} | |`)
    out.push(`| ${st.concurrent.n} concurrent never-seen tokens, second fresh gateway | p50 ${f(st.concurrent.p50Ms, 2)} ms, max ${f(st.concurrent.maxMs, 2)} ms | ${statuses(st.concurrent.statuses)} | ${st.concurrent.jwksFetchesDuring} during |`)
    const rot = c.rotation
    if (rot === undefined) out.push('| key rotation | not measured | | |')
    else if (rot.status !== 'ok') out.push(`| key rotation (token from a key never seen → JWKS fetch) | ${rot.status === 'skipped' ? 'not measured' : 'failed'}: ${rot.reason ?? ''} | | |`)
    else {
      out.push(`| one token from a new key (unknown kid → JWKS fetch) | ${f(rot.single!.ms, 2)} ms (then ${f(rot.single!.warmMedianMs, 2)} ms warm) | ${rot.single!.status} | **${rot.single!.jwksFetchesDuring}** during |`)
      out.push(`| ${rot.concurrent!.n} concurrent tokens from another new key | p50 ${f(rot.concurrent!.p50Ms, 2)} ms, max ${f(rot.concurrent!.maxMs, 2)} ms | ${statuses(rot.concurrent!.statuses)} | **${rot.concurrent!.jwksFetchesDuring}** during (must be 1) |`)
    }
    out.push('')
  }

  const notes = [...m.notes]
  for (const s of r.systems) if (s.status === 'failed') notes.push(`${s.id}: not available: ${s.reason ?? ''}`)
  if (notes.length > 0) {
    out.push('## Notes', '')
    for (const x of notes) out.push(`- ${x}`)
    out.push('')
  }
  return out.join('\n')
}

// ---------------------------------------------------------------- SVG

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function niceStep (max: number, ticks = 6): number {
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag
  return 10 * mag
}

/** Horizontal bars: CPU µs per request per proxy (median), whiskers from min to max over the rounds. */
export function svgChart (r: BenchResults): string {
  const rows = r.systems.filter((s) => s.group === 'proxy' && s.id !== 'direct')
  const width = 860
  const left = 360
  const right = 90
  const top = 70
  const rowH = 34
  const height = top + rows.length * rowH + 50
  const plotW = width - left - right
  const maxV = Math.max(1, ...rows.map((s) => r.summary[s.id]?.cpuUsPerReq?.max ?? 0))
  const step = niceStep(maxV * 1.05)
  const axisMax = Math.ceil((maxV * 1.05) / step) * step
  const x = (v: number): number => left + (v / axisMax) * plotW
  const colour = (id: string): string => id.startsWith('gateway') ? '#2563eb' : id.startsWith('express') ? '#9333ea' : id.startsWith('haproxy') ? '#0d9488' : '#64748b'
  const o: string[] = []
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="13">`)
  o.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  o.push(`<text x="${left}" y="24" font-size="16" font-weight="600" fill="#0f172a">Proxy CPU per request (µs), lower is better</text>`)
  const m = r.meta
  o.push(`<text x="${left}" y="44" font-size="11" fill="#475569">${esc(`median of ${m.options.rounds} interleaved round${m.options.rounds === 1 ? '' : 's'}, whiskers min–max · ${m.loadgen.split(' ')[0] ?? ''} ${m.options.connections} connections · ${m.nproc} CPUs · node ${m.gatewayNode}${m.options.nodeOptions !== '' ? ` ${m.options.nodeOptions}` : ''} · ${m.date.slice(0, 10)} · ${m.commit}${m.dirty ? '+dirty' : ''}`)}</text>`)
  for (let v = 0; v <= axisMax + 1e-9; v += step) {
    const xx = x(v).toFixed(1)
    o.push(`<line x1="${xx}" y1="${top - 8}" x2="${xx}" y2="${top + rows.length * rowH}" stroke="#e2e8f0"/>`)
    o.push(`<text x="${xx}" y="${top + rows.length * rowH + 18}" text-anchor="middle" font-size="11" fill="#475569">${Number(v.toPrecision(6))}</text>`)
  }
  rows.forEach((s, i) => {
    const y = top + i * rowH
    const label = s.letter !== undefined ? `(${s.letter}) ${s.id}` : s.id
    o.push(`<text x="${left - 10}" y="${y + rowH / 2 + 4}" text-anchor="end" fill="#0f172a">${esc(label)}</text>`)
    const sum = r.summary[s.id]?.cpuUsPerReq
    if (s.status !== 'ok' || sum === undefined) {
      o.push(`<text x="${left + 6}" y="${y + rowH / 2 + 4}" fill="#94a3b8" font-style="italic">${esc(s.status === 'not-available' ? 'not available yet' : 'not available')}</text>`)
      return
    }
    const barY = y + 7
    const barH = rowH - 14
    o.push(`<rect x="${left}" y="${barY}" width="${(x(sum.median) - left).toFixed(1)}" height="${barH}" fill="${colour(s.id)}" rx="2"><title>${esc(`${s.label}: median ${sum.median.toFixed(1)} µs, min ${sum.min.toFixed(1)}, max ${sum.max.toFixed(1)}`)}</title></rect>`)
    const cy = y + rowH / 2
    if (sum.n > 1) {
      o.push(`<line x1="${x(sum.min).toFixed(1)}" y1="${cy}" x2="${x(sum.max).toFixed(1)}" y2="${cy}" stroke="#0f172a" stroke-width="1.5"/>`)
      for (const v of [sum.min, sum.max]) o.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 6}" x2="${x(v).toFixed(1)}" y2="${cy + 6}" stroke="#0f172a" stroke-width="1.5"/>`)
    }
    o.push(`<text x="${(x(sum.max) + 8).toFixed(1)}" y="${cy + 4}" fill="#0f172a" font-weight="600">${sum.median.toFixed(0)}</text>`)
  })
  o.push(`<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#475569">CPU µs per request (utime+stime of the proxy's processes / requests)</text>`)
  o.push('</svg>')
  return o.join('\n') + '\n'
}
