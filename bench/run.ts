/**
 * npm run bench          the full side-by-side benchmark (several minutes)
 * npm run bench:smoke    1 round, 2 s per system, only the upstream directly and the gateway
 *
 * Prints the markdown results to stdout (progress goes to stderr) and writes
 * <out-dir>/<name>.md, .json and .svg. See bench/README.md.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { runBench, type BenchOptions } from './lib/bench.js'
import { CATALOGUE, SMOKE_SYSTEMS, type SystemId } from './lib/catalogue.js'
import { stopAll } from './lib/procs.js'
import { markdown, svgChart } from './lib/report.js'

const ROOT = resolve(import.meta.dirname, '..')

const HELP = `Usage: tsx bench/run.ts [options]

  --smoke                 1 round, 2 s per system, direct + gateway only, idle streams N=100
  --rounds <n>            interleaved rounds (default 5)
  --duration <s>          seconds of load per system per round (default 6)
  --warmup <s>            seconds of warm-up per system before round 1 (default 3)
  --settle <s>            seconds of unmeasured load right before each measured run (default 2)
  --connections <n>       load connections (default 10)
  --threads <n>           wrk threads (default 1)
  --systems <a,b,...>     systems to run (default: ${CATALOGUE.filter((s) => s.default).map((s) => s.id).join(',')};
                          also available: ${CATALOGUE.filter((s) => !s.default).map((s) => s.id).join(',')})
  --node <path>           Node binary for the gateway and the other Node processes (default: this one)
  --node-options <flags>  NODE_OPTIONS for every Node system and upstream (default: none), e.g.
                          --node-options=--max-semi-space-size=16 (what the container image sets)
  --gateway-entry <e>     build (default: tsc, then dist/src/main.js) | dist | src (src/main.ts through tsx; smoke default)
  --gateway-log-level <l> the gateway's logLevel (default info, the product default)
  --idle-streams <list>   N values for the idle SSE streams figure (default 1000,5000,10000)
  --idle-settle <s>       hold the largest N this much longer, reading RSS every second, for the
                          settled figure (default 90; 2 in smoke mode; 0: none)
  --sse-events <n>        events per SSE delay measurement (default 500)
  --sse-repeats <n>       SSE delay measurements per method, POST and GET in turn (default 3; smoke 1)
  --loadgen <g>           auto (wrk, else autocannon) | wrk | autocannon
  --no-install            never apt-get install missing tools
  --out-dir <dir>         where results go (default bench/results)
  --name <name>           file base name (default latest; smoke: smoke)
  --keep-tmp              keep the temp dir with generated configs and logs
  --trace-gc              run the Node systems with --trace-gc and report their garbage
                          collections per measured window (young, old-space, pause ms)
  --alternate             run every even round in reverse order (A B C, C B A, …), so no
                          system always follows the same one (the gateway's three routes
                          share a process: otherwise the plain route always comes first)
  -h, --help
`

function parse (argv: string[]): BenchOptions & { outDir: string, name: string } {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      settle: { type: 'string' },
      connections: { type: 'string' },
      threads: { type: 'string' },
      systems: { type: 'string' },
      node: { type: 'string' },
      'node-options': { type: 'string' },
      'gateway-entry': { type: 'string' },
      'gateway-log-level': { type: 'string' },
      'idle-streams': { type: 'string' },
      'idle-settle': { type: 'string' },
      'sse-events': { type: 'string' },
      'sse-repeats': { type: 'string' },
      loadgen: { type: 'string' },
      'no-install': { type: 'boolean' },
      'out-dir': { type: 'string' },
      name: { type: 'string' },
      'keep-tmp': { type: 'boolean' },
      'trace-gc': { type: 'boolean' },
      alternate: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true,
    allowPositionals: false
  })
  if (v.help === true) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const smoke = v.smoke === true
  const num = (s: string | undefined, def: number, what: string, min = 1): number => {
    if (s === undefined) return def
    const n = Number(s)
    if (!Number.isFinite(n) || n < min) throw new Error(`--${what}: expected a number ≥ ${min}, got ${s}`)
    return n
  }
  const ids = new Set<string>(CATALOGUE.map((s) => s.id))
  const systems = (v.systems?.split(',').map((s) => s.trim()).filter((s) => s !== '') ?? (smoke ? [...SMOKE_SYSTEMS] : CATALOGUE.filter((s) => s.default).map((s) => s.id)))
  for (const s of systems) if (!ids.has(s)) throw new Error(`--systems: unknown system ${s} (known: ${[...ids].join(', ')})`)
  const entry = v['gateway-entry'] ?? (smoke ? 'src' : 'build')
  if (!['build', 'dist', 'src'].includes(entry)) throw new Error(`--gateway-entry: build, dist or src, got ${entry}`)
  const loadgen = v.loadgen ?? 'auto'
  if (!['auto', 'wrk', 'autocannon'].includes(loadgen)) throw new Error(`--loadgen: auto, wrk or autocannon, got ${loadgen}`)
  const node = v.node ?? process.execPath
  const nodeOptions = (v['node-options'] ?? '').trim()
  if (nodeOptions !== '') checkNodeOptions(node, nodeOptions)
  const idle = (v['idle-streams'] ?? (smoke ? '100' : '1000,5000,10000')).split(',').filter((s) => s !== '').map((s) => num(s, 0, 'idle-streams'))
  if (smoke && idle.some((n) => n > 100)) throw new Error('--idle-streams: at most 100 in smoke mode')
  return {
    smoke,
    // More, shorter rounds: this shared VM's speed shifts over tens of seconds, and the median of
    // five in-round ratios is less at the mercy of one slow slot than the median of three.
    rounds: num(v.rounds, smoke ? 1 : 5, 'rounds'),
    durationS: num(v.duration, smoke ? 2 : 6, 'duration'),
    warmupS: num(v.warmup, smoke ? 1 : 3, 'warmup', 0),
    settleS: num(v.settle, smoke ? 0 : 2, 'settle', 0),
    connections: num(v.connections, 10, 'connections'),
    threads: num(v.threads, 1, 'threads'),
    systems: systems as SystemId[],
    node,
    nodeOptions,
    gatewayEntry: entry as BenchOptions['gatewayEntry'],
    gatewayLogLevel: v['gateway-log-level'] ?? 'info',
    idleCounts: idle,
    idleHoldS: smoke ? 1 : 5,
    idleReleaseS: smoke ? 2 : 10,
    idleSettleS: num(v['idle-settle'], smoke ? 2 : 90, 'idle-settle', 0),
    sseEvents: num(v['sse-events'], smoke ? 50 : 500, 'sse-events', 10),
    sseIntervalMs: 10,
    sseWarmupEvents: smoke ? 20 : 300,
    sseRepeats: num(v['sse-repeats'], smoke ? 1 : 3, 'sse-repeats'),
    coldSequential: smoke ? 10 : 50,
    coldConcurrent: smoke ? 20 : 100,
    rotationMaxWaitMs: smoke ? 0 : 40_000,
    loadgen: loadgen as BenchOptions['loadgen'],
    install: v['no-install'] !== true,
    keepTmp: v['keep-tmp'] === true,
    traceGc: v['trace-gc'] === true,
    alternate: v.alternate === true,
    root: ROOT,
    outDir: resolve(v['out-dir'] ?? join(ROOT, 'bench/results')),
    name: v.name ?? (smoke ? 'smoke' : 'latest')
  }
}

/** Throws, with Node's own first line, when `node` refuses `flags` in NODE_OPTIONS: before anything starts. */
function checkNodeOptions (node: string, flags: string): void {
  const r = spawnSync(node, ['-e', ''], { env: { ...process.env, NODE_OPTIONS: flags }, encoding: 'utf8', timeout: 30_000 })
  if (r.error !== undefined) throw new Error(`--node: cannot run ${node}: ${r.error.message}`)
  if (r.status !== 0) {
    const why = r.stderr.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? `exit ${String(r.status ?? r.signal)}`
    throw new Error(`--node-options: ${node} refuses NODE_OPTIONS=${JSON.stringify(flags)}: ${why}`)
  }
}

let stopping = false
async function shutdown (signal: NodeJS.Signals): Promise<void> {
  if (stopping) return
  stopping = true
  process.stderr.write(`\nbench: ${signal}, stopping every process\n`)
  await stopAll(1000).catch(() => {})
  process.exit(signal === 'SIGINT' ? 130 : 143)
}
process.once('SIGINT', (s) => { void shutdown(s) })
process.once('SIGTERM', (s) => { void shutdown(s) })

async function main (): Promise<number> {
  let opts
  try {
    opts = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  const t0 = Date.now()
  const log = (line: string): void => { process.stderr.write(`bench [${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`) }
  const results = await runBench(opts, log)
  const md = markdown(results)
  mkdirSync(opts.outDir, { recursive: true })
  const base = join(opts.outDir, opts.name)
  writeFileSync(`${base}.md`, md + '\n')
  writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n')
  writeFileSync(`${base}.svg`, svgChart(results))
  process.stdout.write(md + '\n')
  log(`wrote ${base}.md, ${base}.json, ${base}.svg (${Math.round(results.meta.wallS)} s)`)
  return 0
}

main().then((code) => { process.exitCode = code }, async (err: unknown) => {
  process.stderr.write(`bench: failed: ${(err as Error).stack ?? String(err)}\n`)
  await stopAll(1000).catch(() => {})
  process.exitCode = 1
})
