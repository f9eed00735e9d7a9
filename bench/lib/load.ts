/**
 * Load generation: wrk with a generated Lua script (POST, Authorization and
 * MCP headers, a JSON-RPC body), or autocannon when wrk is unavailable.
 *
 * The Lua `done` hook prints the summary as one JSON line (latencies in µs
 * straight from wrk's histogram), so nothing depends on wrk's text layout.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnChild, stopChild, type Child } from './procs.js'

export interface LoadSpec {
  url: string
  headers: Record<string, string>
  body: string
}

export interface LoadOptions {
  durationS: number
  connections: number
  threads: number
}

export interface LoadResult {
  tool: 'wrk' | 'autocannon'
  requests: number
  durationS: number
  rps: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** wrk: status ≥ 400 (wrk's "Non-2xx or 3xx responses"); autocannon: non-2xx. */
  httpErrors: number
  /** connect + read + write + timeout errors. */
  socketErrors: number
  errorDetail: Record<string, number>
  /** CPU seconds used by the load generator itself (for saturation checks). */
  loadgenCpuS: number
}

/** A Lua long string that cannot be closed by its content. */
function luaString (s: string): string {
  let eq = '='
  while (s.includes(`]${eq}]`)) eq += '='
  return `[${eq}[${s}]${eq}]`
}

function wrkScript (spec: LoadSpec): string {
  const lines = ['wrk.method = "POST"', `wrk.body = ${luaString(spec.body)}`]
  for (const [k, v] of Object.entries(spec.headers)) lines.push(`wrk.headers[ ${luaString(k)} ] = ${luaString(v)}`)
  lines.push(`
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`)
  return lines.join('\n')
}

/** utime+stime of reaped children of this process, in clock ticks (/proc/self/stat cutime + cstime). */
function reapedChildTicks (): number {
  const text = readFileSync('/proc/self/stat', 'utf8')
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return Number(rest[13]) + Number(rest[14])
}

async function collect (child: Child, timeoutMs: number): Promise<string> {
  let out = ''
  child.proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  const timer = setTimeout(() => { void stopChild(child, 1000) }, timeoutMs)
  const code = await child.exited
  clearTimeout(timer)
  if (code !== 0) throw new Error(`${child.name} exited with ${String(code)}: ${out.slice(-500)} ${child.logTail(5)}`)
  return out
}

export interface LoadGen {
  tool: 'wrk' | 'autocannon'
  path: string
}

/**
 * Runs one fixed-duration load. `around` is called right before the load
 * generator starts and right after it exits (to bracket CPU samples).
 */
export async function runLoad (gen: LoadGen, spec: LoadSpec, opts: LoadOptions, workDir: string, name: string, around: { before: () => void, after: () => void }, clkTck: number): Promise<LoadResult> {
  const logPath = join(workDir, `${name}.loadgen.log`)
  const ticks0 = reapedChildTicks()
  if (gen.tool === 'wrk') {
    const script = join(workDir, `${name}.lua`)
    writeFileSync(script, wrkScript(spec))
    around.before()
    const child = spawnChild(`wrk ${name}`, gen.path, ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.durationS}s`, '--latency', '-s', script, spec.url], { logPath, pipeStdout: true })
    const out = await collect(child, (opts.durationS + 20) * 1000)
    around.after()
    const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '))
    if (line === undefined) throw new Error(`wrk printed no summary: ${out.slice(-500)}`)
    const j = JSON.parse(line.slice('BENCH_JSON '.length)) as Record<string, number>
    const durationS = j.duration_us! / 1e6
    const socketErrors = j.connect! + j.read! + j.write! + j.timeout!
    return {
      tool: 'wrk',
      requests: j.requests!,
      durationS,
      rps: j.requests! / durationS,
      p50Ms: j.p50_us! / 1000,
      p99Ms: j.p99_us! / 1000,
      maxMs: j.max_us! / 1000,
      httpErrors: j.status!,
      socketErrors,
      errorDetail: { connect: j.connect!, read: j.read!, write: j.write!, timeout: j.timeout!, status: j.status! },
      loadgenCpuS: (reapedChildTicks() - ticks0) / clkTck
    }
  }
  const args = ['-c', String(opts.connections), '-d', String(opts.durationS), '-m', 'POST', '-b', spec.body, '--json']
  for (const [k, v] of Object.entries(spec.headers)) args.push('-H', `${k}=${v}`)
  args.push(spec.url)
  around.before()
  const child = spawnChild(`autocannon ${name}`, gen.path, args, { logPath, pipeStdout: true })
  const out = await collect(child, (opts.durationS + 30) * 1000)
  around.after()
  const jsonLine = out.split('\n').find((l) => l.trim().startsWith('{'))
  if (jsonLine === undefined) throw new Error(`autocannon printed no JSON: ${out.slice(-500)}`)
  const j = JSON.parse(jsonLine) as { requests: { total: number }, duration: number, latency: { p50: number, p99: number, max: number }, non2xx: number, errors: number, timeouts: number }
  return {
    tool: 'autocannon',
    requests: j.requests.total,
    durationS: j.duration,
    rps: j.requests.total / j.duration,
    p50Ms: j.latency.p50,
    p99Ms: j.latency.p99,
    maxMs: j.latency.max,
    httpErrors: j.non2xx,
    socketErrors: j.errors + j.timeouts,
    errorDetail: { errors: j.errors, timeouts: j.timeouts, non2xx: j.non2xx },
    loadgenCpuS: (reapedChildTicks() - ticks0) / clkTck
  }
}
