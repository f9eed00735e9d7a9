/**
 * The benchmark run: start every system, check that each answers correctly
 * (and that the authenticating ones refuse bad tokens), warm up, drive the same
 * load against each in turn, interleaved in rounds, then the streaming and
 * cold-token figures. Every process started here is stopped at the end.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { CATALOGUE, CPU_RATIOS, type SystemId } from './catalogue.js'
import { coldStart, rotation, type ColdGateway, type ColdStartResult, type RotationResult } from './cold.js'
import { timedRequest } from './http.js'
import { runLoad, type LoadGen, type LoadResult, type LoadSpec } from './load.js'
import { clockTicks, cpuSecondsBetween, cpuSplitBetween, liveChildren, machineTicks, onExit, pctOfCore, rssBytes, sampleCpu, sh, stealPctBetween, stopAll, stopChild, waitQuiet, type Child, type MachineTicks } from './procs.js'
import { countGc, readGcTrace, type GcCounts, type GcEvent } from './gc.js'
import { roundOrder, spread, type Spread } from './stats.js'
import { idleStreams, sseDelays, startTickServer, summarizeDelays, type DelaySample, type IdleStreamsResult } from './streaming.js'
import { startBareUpstream, startExpressBaseline, startFastifyHttpProxy, startGateway, startNodeAnswer, startNodeUndici, startHaproxy, startNginx, startSdkUpstream, type GatewayEntry, type GatewayRoute, type NodeRuntime, type Started } from './systems.js'
import { BENCH_SCOPE, makeKey, signToken, startJwksServer } from './tokens.js'
import { ensureAutocannon, ensureTools, type ToolName, type Tools } from './tools.js'
import { startAuthServer } from '../../test/helpers/as.js'

export interface BenchOptions {
  smoke: boolean
  rounds: number
  durationS: number
  warmupS: number
  /** Seconds of unmeasured load right before each measured run (steady state after the system sat idle). */
  settleS: number
  connections: number
  threads: number
  systems: SystemId[]
  /** Node binary for the gateway and every other Node process. */
  node: string
  /**
   * NODE_OPTIONS for every Node process the harness starts as a system or an upstream ('' for
   * none): the runtime flags a deployment gives the gateway, e.g. the container image's
   * `--max-semi-space-size=16`, given to the Node systems it is compared with as well.
   */
  nodeOptions: string
  /** 'build': compile (tsc -p tsconfig.build.json) and run dist; 'dist': run dist as is; 'src': src/main.ts through tsx. */
  gatewayEntry: GatewayEntry | 'build'
  gatewayLogLevel: string
  /** N values for the idle-stream figure. */
  idleCounts: number[]
  idleHoldS: number
  /** How long to watch the gateway release its sockets after the idle-stream clients closed. */
  idleReleaseS: number
  /** For the largest idle N: seconds more of holding, for the settled RSS (0: none). */
  idleSettleS: number
  sseEvents: number
  sseIntervalMs: number
  /** Unmeasured events per method, direct and through the gateway, before the SSE delay streams (0: none). */
  sseWarmupEvents: number
  /** Measured streams per method (POST and GET alternate); the figure is their median. */
  sseRepeats: number
  coldSequential: number
  coldConcurrent: number
  /** Longest wait for the JWKS cooldown before the key-rotation figures (else skipped). */
  rotationMaxWaitMs: number
  loadgen: 'auto' | 'wrk' | 'autocannon'
  /** Let the harness apt-get install missing tools when root. */
  install: boolean
  keepTmp: boolean
  /** Run the Node systems with `--trace-gc` and count their collections per measured window (gc.ts). */
  traceGc: boolean
  /** Every even round runs the systems in reverse order (stats.ts roundOrder). */
  alternate: boolean
  root: string
}

export const MCP_PROTOCOL_VERSION = '2025-06-18'
/** Before each SSE delay stream: wait until the harness's processes use less than this (% of one core)… */
const QUIET_MAX_PCT = 5
/** …for at most this long (ms). */
const QUIET_MAX_WAIT_MS = 30_000
/** Spacing of the unmeasured SSE warm-up events (ms). */
const SSE_WARMUP_INTERVAL_MS = 5
/** ~100-byte JSON-RPC tools/call. */
/** The per-tool policy of system (f): the bench's tools/call of `echo` needs mcp:tools; other entries make the lookup realistic. */
export const BENCH_POLICY = {
  default: ['mcp:tools'],
  methods: { 'tools/call': ['mcp:tools'], 'resources/read': ['mcp:read'] },
  tools: { delete_node: ['mcp:admin'], 'search_*': ['mcp:read'], echo: ['mcp:tools'] },
  resources: { 'drupal://node/*': ['mcp:read'] }
}

/**
 * The optional gateway-ratelimit system's limits: counted on every request (per IP, then per
 * caller, in the gateway's in-memory store) and never reached, so the figure is their cost.
 */
export const BENCH_RATE_LIMITS = {
  perIp: { max: 1_000_000_000, windowSeconds: 60 },
  perPrincipal: { max: 1_000_000_000, windowSeconds: 60 }
}

/** `resource` of the opaque-token route (g), registered at the bench's oidc-provider. */
export const BENCH_OPAQUE_RESOURCE = 'https://mcp.bench.invalid/opaque'

export const REQUEST_BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } })

export interface RunRecord extends LoadResult {
  system: SystemId
  round: number
  /** CPU seconds of the system's measured process tree over the run. */
  cpuS: number
  /** CPU µs per request of the measured process tree. */
  cpuUsPerReq: number
  /** The part of cpuUsPerReq spent in the kernel (stime: socket system calls, loopback TCP); the rest is user time. */
  kernelUsPerReq: number
  /** cpuS / durationS, % of one core. */
  cpuPct: number
  /** CPU µs per request of the upstream behind it (undefined for the direct systems). */
  upstreamCpuUsPerReq?: number
  upstreamCpuPct?: number
  loadgenCpuPct: number
  rssMB?: number
  errorsTotal: number
  /** Collections of the measured process in this window (`--trace-gc` runs only). */
  gc?: GcCounts
  /** % of the machine's CPU time stolen by the hypervisor during the window (`/proc/stat`), when readable. */
  stealPct?: number
}

export interface SystemRecord {
  id: SystemId
  letter?: string
  label: string
  group: 'proxy' | 'real'
  status: 'ok' | 'not-available' | 'failed'
  reason?: string
  /** Which process the CPU figure is of. */
  measured?: string
  pids?: number[]
}

export interface SystemSummary {
  cpuUsPerReq?: Spread
  kernelUsPerReq?: Spread
  rps?: Spread
  p50Ms?: Spread
  p99Ms?: Spread
  cpuPct?: Spread
  upstreamCpuUsPerReq?: Spread
  loadgenCpuPct?: Spread
  /** Per window, `--trace-gc` runs only: young-generation and old-space collections, and their summed pause (ms). */
  gcYoung?: Spread
  gcOld?: Spread
  gcPauseMs?: Spread
  errorsTotal: number
  requestsTotal: number
}

export interface RatioRecord { name: string, num: SystemId, den: SystemId, metric: 'cpuUsPerReq' | 'rps', perRound: Array<{ round: number, value: number }>, spread?: Spread }

export interface BenchResults {
  meta: {
    date: string
    commit: string
    dirty: boolean
    node: string
    gatewayNode: string
    nproc: number
    cpuModel: string
    memGB: number
    kernel: string
    clkTck: number
    loadgen: string
    tools: Tools['versions']
    gatewayEntry: string
    gatewayLogLevel: string
    options: Omit<BenchOptions, 'root' | 'node'>
    notes: string[]
    wallS: number
  }
  systems: SystemRecord[]
  runs: RunRecord[]
  warmups: RunRecord[]
  summary: Record<string, SystemSummary>
  ratios: RatioRecord[]
  streaming: {
    delay?: { intervalMs: number, skipped: number, repeats: number, post?: DelaySeries, get?: DelaySeries, error?: string }
    idle: IdleStreamsResult[]
    /** The largest N held the same way through the leanest Node proxy (node-undici-jose): the per-stream floor. */
    idleFloor?: IdleStreamsResult[]
  }
  cold?: { start?: ColdStartResult, rotation?: RotationResult, error?: string }
}

/** One SSE stream read directly and through the gateway in the same window. */
export interface DelayPair {
  direct: DelaySample
  gateway: DelaySample
  addedP50Us: number
  addedP99Us: number
  /** The gateway's collections during the stream (`--trace-gc` runs only). */
  gatewayGc?: GcCounts
  /** Seconds waited beforehand for the other processes to go quiet, and whether they did. */
  quietWaitS: number
  quiet: boolean
  /** CPU of every other process the harness started, during the stream, % of one core. */
  othersCpuPct: number
}

/** The repeats of one kind of stream, and the spread of their added delays. */
export interface DelaySeries {
  runs: DelayPair[]
  addedP50Us: Spread
  addedP99Us: Spread
}

type Log = (line: string) => void

function gitInfo (root: string): { commit: string, dirty: boolean } {
  const commit = sh('git', ['-C', root, 'rev-parse', '--short', 'HEAD']) || 'unknown'
  const dirty = sh('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no']) !== ''
  return { commit, dirty }
}

function cpuModel (): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m !== null) return m[1]!.trim()
  } catch { /* fall through */ }
  return cpus()[0]?.model ?? 'unknown'
}

function nodeVersion (node: string): string {
  return sh(node, ['--version']) || 'unknown'
}

interface Target {
  id: SystemId
  spec: LoadSpec
  /** Process whose CPU is the system's figure. */
  measured: Child
  upstream?: Child
  /** Checks one response body. */
  validBody: (body: string) => boolean
  authenticates: boolean
}

export async function runBench (opts: BenchOptions, log: Log): Promise<BenchResults> {
  const t0 = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'mcp-gw-bench-'))
  log(`work dir ${dir}`)
  // Also on SIGINT/SIGTERM, which end the process without reaching the finally below.
  const forgetTmp = opts.keepTmp ? () => {} : onExit(() => { rmSync(dir, { recursive: true, force: true }) })
  const notes: string[] = []
  const rt: NodeRuntime = { node: opts.node, root: opts.root, traceGc: opts.traceGc, nodeOptions: opts.nodeOptions }
  // Windows whose collections are counted once the traces are read (after every process stopped).
  const gcWindows: Array<{ child: Child, fromMs: number, toMs: number, set: (c: GcCounts) => void }> = []
  const watchGc = (child: Child, fromMs: number, toMs: number, set: (c: GcCounts) => void): void => {
    if (child.gcTraced) gcWindows.push({ child, fromMs: fromMs - child.spawnedAt, toMs: toMs - child.spawnedAt, set })
  }
  const want = new Set(opts.systems)
  const has = (id: SystemId): boolean => want.has(id)

  const systems = new Map<SystemId, SystemRecord>()
  for (const s of CATALOGUE) {
    if (!want.has(s.id)) continue
    systems.set(s.id, {
      id: s.id,
      ...(s.letter !== undefined ? { letter: s.letter } : {}),
      label: s.label,
      group: s.group,
      status: s.notAvailableYet !== undefined ? 'not-available' : 'ok',
      ...(s.notAvailableYet !== undefined ? { reason: s.notAvailableYet } : {})
    })
  }
  const fail = (id: SystemId, reason: string): void => {
    const s = systems.get(id)
    if (s === undefined) return
    s.status = s.status === 'not-available' ? s.status : 'failed'
    s.reason = reason
    log(`${id}: not available: ${reason}`)
  }

  // ---- tools
  const needed = new Set<ToolName>()
  if (has('nginx')) needed.add('nginx')
  if (has('haproxy-jwt') || has('haproxy-plain')) needed.add('haproxy')
  if (opts.loadgen !== 'autocannon') needed.add('wrk')
  const tools = ensureTools([...needed], { install: opts.install }, log)
  notes.push(...tools.notes)
  let gen: LoadGen | undefined
  if (opts.loadgen !== 'autocannon' && tools.paths.wrk !== undefined) gen = { tool: 'wrk', path: tools.paths.wrk }
  else {
    if (opts.loadgen === 'auto') notes.push(`load generator: autocannon, because ${tools.missing.wrk ?? 'wrk is unavailable'}`)
    const ac = ensureAutocannon(opts.root, tools, log)
    if (ac !== undefined) gen = { tool: 'autocannon', path: ac }
  }
  if (gen === undefined) throw new Error(`no load generator: ${tools.missing.wrk ?? ''}; ${tools.missing.autocannon ?? ''}`)

  let gatewayEntry: GatewayEntry = opts.gatewayEntry === 'build' ? 'dist' : opts.gatewayEntry
  if (opts.gatewayEntry === 'build') {
    log('building the gateway (tsc -p tsconfig.build.json)')
    try {
      execFileSync(join(opts.root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: opts.root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
    } catch (err) {
      const out = `${String((err as { stdout?: Buffer }).stdout ?? '')}`.split('\n').slice(0, 3).join(' ')
      notes.push(`the gateway build failed (${out.trim() || (err as Error).message.split('\n')[0]}); the gateway ran from src/main.ts through tsx instead`)
      gatewayEntry = 'src'
    }
  }

  const jwks = await startJwksServer()
  const key = await makeKey()
  for (const name of ['main', 'cold-a', 'cold-b']) jwks.setKeys(name, [key])
  const token = await signToken(key, jwks.issuer)
  const tick = await startTickServer()
  // (g): a real oidc-provider issuing opaque tokens, introspected by the gateway (in this process: it
  // answers one introspection per cache TTL, so its CPU is not the gateway's and barely shows).
  const opaqueAs = want.has('gateway-introspection') ? await startAuthServer() : undefined
  let opaqueToken: string | undefined
  if (opaqueAs !== undefined) {
    opaqueAs.registerResource({ url: BENCH_OPAQUE_RESOURCE, scope: BENCH_SCOPE, format: 'opaque', ttlSeconds: 4 * 3600 })
    opaqueToken = await opaqueAs.clientCredentialsToken({ resource: BENCH_OPAQUE_RESOURCE, scope: BENCH_SCOPE })
  }
  const headers = (t: string | undefined): Record<string, string> => ({
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': MCP_PROTOCOL_VERSION,
    ...(t !== undefined ? { Authorization: `Bearer ${t}` } : {})
  })

  const results: BenchResults = {
    meta: {
      date: new Date().toISOString(),
      ...gitInfo(opts.root),
      node: process.version,
      gatewayNode: nodeVersion(opts.node),
      nproc: Number(sh('nproc')) || cpus().length,
      cpuModel: cpuModel(),
      memGB: Math.round(totalmem() / 1024 ** 3),
      kernel: sh('uname', ['-r']),
      clkTck: clockTicks(),
      loadgen: gen.tool === 'wrk' ? (tools.versions.wrk ?? 'wrk') : (tools.versions.autocannon ?? 'autocannon'),
      tools: tools.versions,
      gatewayEntry: gatewayEntry === 'dist' ? 'dist/src/main.js' : 'src/main.ts via tsx',
      gatewayLogLevel: opts.gatewayLogLevel,
      options: (({ root: _r, node: _n, ...rest }) => rest)(opts),
      notes,
      wallS: 0
    },
    systems: [],
    runs: [],
    warmups: [],
    summary: {},
    ratios: [],
    streaming: { idle: [] }
  }

  const targets: Target[] = []
  try {
    // ---- start everything (in parallel; each failure only removes its system)
    log('starting the systems under test')
    const upstreamP = startBareUpstream(rt, dir)
    const sdkIds: SystemId[] = ['sdk-direct', 'sdk-floor', 'sdk-gateway']
    const sdkP = sdkIds.some(has) ? startSdkUpstream(rt, dir) : undefined
    const upstream = await upstreamP
    const sdk = await sdkP?.catch((err: unknown) => { for (const id of sdkIds) fail(id, (err as Error).message); return undefined })
    const gwRoutes: GatewayRoute[] = [
      { path: '/mcp', upstream: `${upstream.origin}/mcp` },
      { path: '/ticks', upstream: `${tick.origin}/ticks` },
      // (f): the same upstream behind a per-tool policy, so every POST body is parsed, checked and re-serialised.
      { path: '/policy', upstream: `${upstream.origin}/mcp`, policy: BENCH_POLICY },
      ...(sdk !== undefined ? [{ path: '/sdk', upstream: `${sdk.origin}/mcp` }] : [])
    ]
    if (opaqueAs !== undefined) gwRoutes.push({ path: '/opaque', upstream: `${upstream.origin}/mcp`, resource: BENCH_OPAQUE_RESOURCE, issuers: [opaqueAs.issuer] })
    const gwOpts = { entry: gatewayEntry, issuer: jwks.issuer, logLevel: opts.gatewayLogLevel }
    const introspecting = opaqueAs === undefined
      ? {}
      : {
          extraIssuers: [{
            issuer: opaqueAs.issuer,
            tokenType: 'opaque',
            introspection: { endpoint: `${opaqueAs.issuer}/token/introspection`, clientId: opaqueAs.clients.gatewayBasic.id, clientSecret: { fromEnv: 'BENCH_INTROSPECTION_SECRET' } }
          }],
          env: { BENCH_INTROSPECTION_SECRET: opaqueAs.clients.gatewayBasic.secret }
        }
    const tryStart = async <T>(ids: SystemId[], p: Promise<T> | undefined): Promise<T | undefined> => {
      if (p === undefined) return undefined
      try {
        return await p
      } catch (err) {
        for (const id of ids) fail(id, `failed to start: ${(err as Error).message}`)
        return undefined
      }
    }
    const needTool = (id: SystemId, tool: ToolName): string | undefined => {
      if (!has(id)) return undefined
      const p = tools.paths[tool]
      if (p === undefined) fail(id, tools.missing[tool] ?? `${tool} is not installed`)
      return p
    }
    const nginxBin = needTool('nginx', 'nginx')
    const haproxyBinJwt = needTool('haproxy-jwt', 'haproxy')
    const haproxyBinPlain = needTool('haproxy-plain', 'haproxy')
    const [gw, coldA, coldB, nginx, hapJwt, hapPlain, express, expressKa, fastifyProxy, nodeUndici, nodeAnswer, sdkFloor, gwLimited] = await Promise.all([
      tryStart(['gateway', 'sdk-gateway'], has('gateway') || has('sdk-gateway') ? startGateway(rt, dir, { ...gwOpts, ...introspecting, name: 'gateway', jwksUri: jwks.uri('main'), routes: gwRoutes }) : undefined),
      // Two more gateways for the cold-token figures, idle until then.
      has('gateway') ? startGateway(rt, dir, { ...gwOpts, name: 'cold-a', jwksUri: jwks.uri('cold-a'), routes: [gwRoutes[0]!] }).catch(() => undefined) : undefined,
      has('gateway') ? startGateway(rt, dir, { ...gwOpts, name: 'cold-b', jwksUri: jwks.uri('cold-b'), routes: [gwRoutes[0]!] }).catch(() => undefined) : undefined,
      tryStart(['nginx'], nginxBin !== undefined ? startNginx(nginxBin, dir, upstream.port) : undefined),
      tryStart(['haproxy-jwt'], haproxyBinJwt !== undefined ? startHaproxy(haproxyBinJwt, dir, 'haproxy-jwt', upstream.port, { pubkeyPem: key.publicPem, issuer: jwks.issuer }) : undefined),
      tryStart(['haproxy-plain'], haproxyBinPlain !== undefined ? startHaproxy(haproxyBinPlain, dir, 'haproxy-plain', upstream.port, undefined) : undefined),
      tryStart(['express-sdk'], has('express-sdk') ? startExpressBaseline(rt, dir, { upstream: upstream.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main'), keepAlive: false }) : undefined),
      tryStart(['express-keepalive'], has('express-keepalive') ? startExpressBaseline(rt, dir, { upstream: upstream.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main'), keepAlive: true }) : undefined),
      tryStart(['fastify-http-proxy-jose'], has('fastify-http-proxy-jose') ? startFastifyHttpProxy(rt, dir, { upstream: upstream.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main') }) : undefined),
      tryStart(['node-undici-jose'], has('node-undici-jose') ? startNodeUndici(rt, dir, { upstream: upstream.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main') }) : undefined),
      tryStart(['node-answer'], has('node-answer') ? startNodeAnswer(rt, dir) : undefined),
      tryStart(['sdk-floor'], has('sdk-floor') && sdk !== undefined ? startNodeUndici(rt, dir, { upstream: sdk.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main') }, 'sdk-floor') : undefined),
      tryStart(['gateway-ratelimit'], has('gateway-ratelimit') ? startGateway(rt, dir, { ...gwOpts, name: 'gateway-ratelimit', jwksUri: jwks.uri('main'), routes: [gwRoutes[0]!], rateLimits: BENCH_RATE_LIMITS }) : undefined)
    ])
    const coldReadyAt = Date.now()

    const upstreamBody = (await timedRequest(`${upstream.origin}/mcp`, { headers: headers(token), body: REQUEST_BODY })).body
    const bareOk = (b: string): boolean => b === upstreamBody
    const sdkOk = (b: string): boolean => {
      try {
        const j = JSON.parse(b) as { result?: { content?: Array<{ text?: string }> } }
        return j.result?.content?.[0]?.text === 'hello'
      } catch {
        return false
      }
    }
    const add = (id: SystemId, s: Started | undefined, path: string, o: { upstream?: Child, sdk?: boolean, auth: boolean, token?: string }): void => {
      if (!has(id) || s === undefined || systems.get(id)?.status !== 'ok') return
      targets.push({
        id,
        spec: { url: `${s.origin}${path}`, headers: headers(o.token ?? token), body: REQUEST_BODY },
        measured: s.child,
        ...(o.upstream !== undefined ? { upstream: o.upstream } : {}),
        validBody: o.sdk === true ? sdkOk : bareOk,
        authenticates: o.auth
      })
    }
    add('direct', upstream, '/mcp', { auth: false })
    add('nginx', nginx, '/mcp', { upstream: upstream.child, auth: false })
    add('haproxy-plain', hapPlain, '/mcp', { upstream: upstream.child, auth: false })
    add('haproxy-jwt', hapJwt, '/mcp', { upstream: upstream.child, auth: true })
    add('express-sdk', express, '/mcp', { upstream: upstream.child, auth: true })
    add('express-keepalive', expressKa, '/mcp', { upstream: upstream.child, auth: true })
    add('fastify-http-proxy-jose', fastifyProxy, '/mcp', { upstream: upstream.child, auth: true })
    add('node-answer', nodeAnswer, '/mcp', { auth: false })
    add('node-undici-jose', nodeUndici, '/mcp', { upstream: upstream.child, auth: true })
    add('gateway', gw, '/mcp', { upstream: upstream.child, auth: true })
    add('gateway-policy', gw, '/policy', { upstream: upstream.child, auth: true })
    if (opaqueToken !== undefined) add('gateway-introspection', gw, '/opaque', { upstream: upstream.child, auth: true, token: opaqueToken })
    add('gateway-ratelimit', gwLimited, '/mcp', { upstream: upstream.child, auth: true })
    if (sdk !== undefined) {
      add('sdk-direct', sdk, '/mcp', { sdk: true, auth: false })
      add('sdk-floor', sdkFloor, '/mcp', { upstream: sdk.child, sdk: true, auth: true })
      add('sdk-gateway', gw, '/sdk', { upstream: sdk.child, sdk: true, auth: true })
    }
    for (const t of targets) {
      const rec = systems.get(t.id)!
      rec.measured = t.id === 'direct' || t.id === 'sdk-direct' ? `${t.measured.name} process (no proxy)` : `${t.measured.name} process tree`
      rec.pids = [t.measured.pid]
    }

    // ---- cold start figures, first: nothing has touched cold-a/cold-b yet
    const coldDeps = { jwks, key, body: REQUEST_BODY, headers: (t: string) => headers(t) }
    let cA: ColdGateway | undefined
    let cB: ColdGateway | undefined
    if (coldA !== undefined && coldB !== undefined) {
      cA = { name: 'cold-a', origin: coldA.origin, readyAt: coldReadyAt }
      cB = { name: 'cold-b', origin: coldB.origin, readyAt: coldReadyAt }
      try {
        log('cold token: first requests of freshly started gateways')
        results.cold = { start: await coldStart(cA, cB, coldDeps, { sequential: opts.coldSequential, concurrent: opts.coldConcurrent, warmup: opts.smoke ? 50 : 500 }) }
      } catch (err) {
        results.cold = { error: (err as Error).message }
      }
    } else if (has('gateway')) {
      results.cold = { error: 'the cold-token gateways did not start' }
    }

    // ---- preflight: right answers, and refusals where a token is checked
    const badKey = await makeKey()
    const badSig = await signToken({ ...badKey, kid: key.kid }, jwks.issuer)
    const expired = await signToken(key, jwks.issuer, -600)
    for (const t of [...targets]) {
      const why = await preflight(t, { badSig, expired, headers })
      if (why !== undefined) {
        fail(t.id, `preflight: ${why}`)
        targets.splice(targets.indexOf(t), 1)
      }
    }

    const measureRun = async (t: Target, round: number, durationS: number, tag: string): Promise<RunRecord> => {
      let c0 = sampleCpu([])
      let u0 = sampleCpu([])
      let c1 = c0
      let u1 = u0
      let w0 = 0
      let w1 = 0
      let m0: MachineTicks | undefined
      let m1: MachineTicks | undefined
      const roots = [t.measured.pid]
      const up = t.upstream !== undefined ? [t.upstream.pid] : []
      const r = await runLoad(gen, t.spec, { durationS, connections: opts.connections, threads: opts.threads }, dir, `${t.id}-r${round}${tag}`, {
        before: () => { c0 = sampleCpu(roots); u0 = sampleCpu(up); w0 = performance.now(); m0 = machineTicks() },
        after: () => { c1 = sampleCpu(roots); u1 = sampleCpu(up); w1 = performance.now(); m1 = machineTicks() }
      }, clockTicks())
      const { userS, kernelS } = cpuSplitBetween(c0, c1)
      const cpuS = userS + kernelS
      const upS = cpuSecondsBetween(u0, u1)
      const rss = rssBytes(t.measured.pid)
      const steal = stealPctBetween(m0, m1)
      const rec: RunRecord = {
        ...r,
        system: t.id,
        round,
        cpuS,
        cpuUsPerReq: r.requests > 0 ? (cpuS / r.requests) * 1e6 : Number.NaN,
        kernelUsPerReq: r.requests > 0 ? (kernelS / r.requests) * 1e6 : Number.NaN,
        cpuPct: (cpuS / r.durationS) * 100,
        ...(t.upstream !== undefined ? { upstreamCpuUsPerReq: r.requests > 0 ? (upS / r.requests) * 1e6 : Number.NaN, upstreamCpuPct: (upS / r.durationS) * 100 } : {}),
        loadgenCpuPct: (r.loadgenCpuS / r.durationS) * 100,
        ...(rss !== undefined ? { rssMB: rss / 1024 / 1024 } : {}),
        errorsTotal: r.httpErrors + r.socketErrors,
        ...(steal !== undefined ? { stealPct: steal } : {})
      }
      watchGc(t.measured, w0, w1, (c) => { rec.gc = c })
      return rec
    }

    // ---- warm-up, then interleaved rounds
    // A system whose run fails, or whose process dies, is reported and dropped; the others go on.
    const guarded = async (t: Target, round: number, durationS: number, settle = false): Promise<RunRecord | undefined> => {
      const what = round === 0 ? 'warm-up' : `round ${round}${settle ? ' (settling load)' : ''}`
      try {
        const r = await measureRun(t, round, durationS, settle ? '-settle' : '')
        const dead = [t.measured, t.upstream].find((c) => c?.hasExited() === true)
        if (dead !== undefined) throw new Error(`${dead.name} exited during the run: ${dead.logTail(5)}`)
        return r
      } catch (err) {
        fail(t.id, `${what} failed: ${(err as Error).message}`)
        targets.splice(targets.indexOf(t), 1)
        return undefined
      }
    }
    if (opts.warmupS > 0) {
      for (const t of [...targets]) {
        log(`warm-up ${t.id} (${opts.warmupS} s)`)
        const r = await guarded(t, 0, opts.warmupS)
        if (r !== undefined) results.warmups.push(r)
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      for (const t of roundOrder(targets, round, opts.alternate)) {
        // Steady state, as the issue defines CPU per request. A Node process that sat idle while the
        // others ran has shrunk its heap, and its first seconds of load pay for regrowing it (more
        // scavenges, old-space collections): up to +50 % for the gateway in 6 s windows (BENCHMARKS.md,
        // "After idle"). Settling load takes the first seconds out; it did not close the whole gap
        // between full runs and quick ones. The C proxies do not care either way.
        if (opts.settleS > 0 && await guarded(t, round, opts.settleS, true) === undefined) continue
        const r = await guarded(t, round, opts.durationS)
        if (r === undefined) continue
        results.runs.push(r)
        log(`round ${round}/${opts.rounds} ${t.id.padEnd(18)} ${r.rps.toFixed(0).padStart(6)} req/s  cpu ${r.cpuUsPerReq.toFixed(1).padStart(7)} µs/req (${r.cpuPct.toFixed(0)}% of a core)  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  errors ${r.errorsTotal}`)
      }
    }

    // ---- streaming
    if (gw !== undefined && systems.get('gateway')?.status === 'ok' && targets.some((t) => t.id === 'gateway')) {
      const skip = Math.min(5, Math.floor(opts.sseEvents / 10))
      const d: NonNullable<BenchResults['streaming']['delay']> = { intervalMs: opts.sseIntervalMs, skipped: skip, repeats: opts.sseRepeats }
      const pairs: Record<'POST' | 'GET', DelayPair[]> = { POST: [], GET: [] }
      try {
        const streamOpts = (method: 'POST' | 'GET', n: number, intervalMs: number, skipN: number): Parameters<typeof sseDelays>[1] => ({
          method,
          headers: method === 'POST' ? headers(token) : { Accept: 'text/event-stream', Authorization: `Bearer ${token}`, 'MCP-Protocol-Version': MCP_PROTOCOL_VERSION },
          ...(method === 'POST' ? { body: REQUEST_BODY } : {}),
          n,
          intervalMs,
          skip: skipN
        })
        // Warm-up, unmeasured: the load rounds only ran the JSON path, and the first SSE stream through
        // a process runs the per-event path cold (undici's chunked parsing, a write per event, the
        // stream accounting). Without it the first stream measured, POST or GET, came out worse.
        if (opts.sseWarmupEvents > 0) {
          log(`SSE warm-up: ${opts.sseWarmupEvents} events ${SSE_WARMUP_INTERVAL_MS} ms apart, POST and GET, direct and through the gateway`)
          for (const method of ['POST', 'GET'] as const) {
            const w = streamOpts(method, opts.sseWarmupEvents, SSE_WARMUP_INTERVAL_MS, 0)
            await Promise.all([sseDelays(`${tick.origin}/ticks`, w), sseDelays(`${gw.origin}/ticks`, w)])
          }
        }
        // Repeated, POST and GET in turn: the p99 of ~500 events is the 5th-worst event, and on this
        // kind of machine one stream in a few catches a multi-ms stall of the scheduler.
        for (let i = 0; i < opts.sseRepeats * 2; i++) {
          const method = i % 2 === 0 ? 'POST' : 'GET'
          log(`SSE delay ${Math.floor(i / 2) + 1}/${opts.sseRepeats}: ${opts.sseEvents} events ${opts.sseIntervalMs} ms apart, ${method}, direct and through the gateway at the same time`)
          const o = streamOpts(method, opts.sseEvents, opts.sseIntervalMs, skip)
          // Both streams run in the same window, so a stall of the machine or of this process shows in
          // both and cancels in the difference; one after the other, they saw different noise.
          // And only once the processes that just ran have settled (heap shrinking, background
          // compilation): the path through the gateway needs one more process woken per event
          // than the direct one, so contention would count as added delay.
          const others = liveChildren().filter((c) => c !== gw.child).map((c) => c.pid)
          const q = await waitQuiet([...others, gw.child.pid], { maxPct: QUIET_MAX_PCT, stepMs: 1000, maxMs: QUIET_MAX_WAIT_MS })
          log(`SSE delay: ${q.quiet ? 'quiet' : `still ${q.pct.toFixed(0)} % of a core busy`} after ${(q.waitedMs / 1000).toFixed(1)} s`)
          const w0 = performance.now()
          const c0 = sampleCpu(others)
          const [directD, viaD] = await Promise.all([sseDelays(`${tick.origin}/ticks`, o), sseDelays(`${gw.origin}/ticks`, o)])
          const othersCpuPct = pctOfCore(cpuSecondsBetween(c0, sampleCpu(others)), performance.now() - w0)
          const direct = summarizeDelays(directD)
          const via = summarizeDelays(viaD)
          const pair: DelayPair = { direct, gateway: via, addedP50Us: via.p50Us - direct.p50Us, addedP99Us: via.p99Us - direct.p99Us, quietWaitS: q.waitedMs / 1000, quiet: q.quiet, othersCpuPct }
          watchGc(gw.child, w0, performance.now(), (c) => { pair.gatewayGc = c })
          pairs[method].push(pair)
        }
      } catch (err) {
        d.error = (err as Error).message
      }
      for (const [method, runs] of Object.entries(pairs)) {
        const p50 = spread(runs.map((x) => x.addedP50Us))
        const p99 = spread(runs.map((x) => x.addedP99Us))
        if (p50 !== undefined && p99 !== undefined) d[method === 'POST' ? 'post' : 'get'] = { runs, addedP50Us: p50, addedP99Us: p99 }
      }
      results.streaming.delay = d
      results.streaming.idle = await idleStreams(rt, {
        dir,
        startGateway: async (name) => await startGateway(rt, dir, { ...gwOpts, name, jwksUri: jwks.uri('main'), routes: [gwRoutes[0]!] }),
        stopGateway: async (child) => { await stopChild(child, 3000) },
        upstream: upstream.child,
        path: '/mcp',
        token,
        counts: opts.idleCounts,
        holdS: opts.idleHoldS,
        releaseS: opts.idleReleaseS,
        settleS: opts.idleSettleS,
        log
      })
      // The same, through the leanest Node proxy, at the largest N only: what any Node proxy
      // holds per idle stream here, to read the gateway's figure against.
      if (has('node-undici-jose')) {
        results.streaming.idleFloor = await idleStreams(rt, {
          dir,
          startGateway: async (name) => await startNodeUndici(rt, dir, { upstream: upstream.origin, issuer: jwks.issuer, jwksUri: jwks.uri('main') }, name.replace('idle-gateway', 'idle-floor')),
          stopGateway: async (child) => { await stopChild(child, 3000) },
          upstream: upstream.child,
          path: '/mcp',
          token,
          counts: [Math.max(...opts.idleCounts)],
          holdS: opts.idleHoldS,
          releaseS: opts.idleReleaseS,
          settleS: 0,
          log
        })
      }
    }

    // ---- key rotation (needs the JWKS cooldown to have passed)
    if (cA !== undefined && cB !== undefined && results.cold?.start !== undefined) {
      try {
        const lastFetchAt = (): number => Math.max(jwks.lastFetchAt('cold-a'), jwks.lastFetchAt('cold-b'))
        results.cold.rotation = await rotation(cA, cB, coldDeps, { concurrent: opts.coldConcurrent, maxWaitMs: opts.rotationMaxWaitMs, lastFetchAt, log })
      } catch (err) {
        results.cold.rotation = { status: 'failed', reason: (err as Error).message }
      }
    }
  } finally {
    log('stopping every process')
    await stopAll(3000)
    if (gcWindows.length > 0) {
      try {
        const traces = new Map<Child, GcEvent[]>()
        for (const w of gcWindows) {
          let ev = traces.get(w.child)
          if (ev === undefined) {
            const windows = gcWindows.filter((x) => x.child === w.child).map((x) => [x.fromMs, x.toMs] as const)
            traces.set(w.child, ev = await readGcTrace(w.child.logPath!, windows))
          }
          w.set(countGc(ev, w.fromMs, w.toMs))
        }
      } catch (err) {
        results.meta.notes.push(`--trace-gc: the traces could not be read: ${(err as Error).message}`)
      }
    }
    await tick.close()
    await jwks.close()
    await opaqueAs?.close()
    if (!opts.keepTmp) rmSync(dir, { recursive: true, force: true })
    forgetTmp()
  }

  // ---- summary
  results.systems = [...systems.values()]
  for (const s of results.systems) {
    const runs = results.runs.filter((r) => r.system === s.id)
    if (runs.length === 0) continue
    const sp = (f: (r: RunRecord) => number | undefined): Spread | undefined => spread(runs.map(f).filter((x): x is number => x !== undefined))
    const sum: SystemSummary = {
      errorsTotal: runs.reduce((a, r) => a + r.errorsTotal, 0),
      requestsTotal: runs.reduce((a, r) => a + r.requests, 0)
    }
    const set = <K extends keyof SystemSummary>(k: K, v: SystemSummary[K] | undefined): void => { if (v !== undefined) sum[k] = v }
    set('cpuUsPerReq', sp((r) => r.cpuUsPerReq))
    set('kernelUsPerReq', sp((r) => r.kernelUsPerReq))
    set('rps', sp((r) => r.rps))
    set('p50Ms', sp((r) => r.p50Ms))
    set('p99Ms', sp((r) => r.p99Ms))
    set('cpuPct', sp((r) => r.cpuPct))
    set('upstreamCpuUsPerReq', sp((r) => r.upstreamCpuUsPerReq))
    set('loadgenCpuPct', sp((r) => r.loadgenCpuPct))
    set('gcYoung', sp((r) => r.gc?.young))
    set('gcOld', sp((r) => r.gc?.old))
    set('gcPauseMs', sp((r) => r.gc?.pauseMs))
    results.summary[s.id] = sum
  }
  const ratio = (name: string, num: SystemId, den: SystemId, metric: 'cpuUsPerReq' | 'rps'): void => {
    const perRound: RatioRecord['perRound'] = []
    for (let round = 1; round <= opts.rounds; round++) {
      const a = results.runs.find((r) => r.system === num && r.round === round)
      const b = results.runs.find((r) => r.system === den && r.round === round)
      if (a !== undefined && b !== undefined && b[metric] > 0) perRound.push({ round, value: a[metric] / b[metric] })
    }
    if (perRound.length === 0) return
    const s = spread(perRound.map((p) => p.value))
    results.ratios.push({ name, num, den, metric, perRound, ...(s !== undefined ? { spread: s } : {}) })
  }
  for (const r of CPU_RATIOS) ratio(`CPU per request, ${r.num} / ${r.den}`, r.num, r.den, 'cpuUsPerReq')
  ratio('throughput with a real SDK upstream, through the gateway / direct', 'sdk-gateway', 'sdk-direct', 'rps')
  ratio('throughput with a real SDK upstream, through the leanest Node proxy / direct', 'sdk-floor', 'sdk-direct', 'rps')
  results.meta.wallS = (Date.now() - t0) / 1000
  return results
}

/** undefined when the system answers right and refuses what it must; else what is wrong. */
async function preflight (t: Target, o: { badSig: string, expired: string, headers: (tok: string | undefined) => Record<string, string> }): Promise<string | undefined> {
  try {
    const ok = await timedRequest(t.spec.url, { headers: t.spec.headers, body: t.spec.body })
    if (ok.status !== 200) return `a valid request got status ${ok.status}: ${ok.body.slice(0, 200)}`
    if (!t.validBody(ok.body)) return `unexpected response body: ${ok.body.slice(0, 200)}`
    if (!t.authenticates) return undefined
    for (const [what, tok] of [['no token', undefined], ['a token with a bad signature', o.badSig], ['an expired token', o.expired]] as const) {
      const r = await timedRequest(t.spec.url, { headers: o.headers(tok), body: t.spec.body })
      if (r.status < 400 || r.status >= 500) return `${what} got status ${r.status}, expected a 4xx refusal`
    }
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}
