/**
 * Prometheus metrics (prom-client), the one implementation of the
 * {@link Telemetry} seam. One instance per process (runtime.ts), so counters
 * survive SIGHUP reloads; each owns its Registry, never prom-client's global
 * one (tests run several gateways in one process).
 *
 * The request path never calls prom-client: each label set is a plain
 * counter cell (or histogram cell) found once, per route at startup or on the
 * first request with a new status/outcome/method, and incremented in place.
 * prom-client reads the cells at scrape time (collect callbacks, and a
 * histogram collector of our own: prom-client's hashes its labels on every
 * observe). Label values are bounded by the callers (observability/telemetry.ts).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { METRICS_DURATION_BUCKETS_SECONDS, METRICS_OVERHEAD_BUCKETS_SECONDS, METRICS_PREFIX } from '../config/defaults.js'
import { NO_ROUTE_LABEL, type IntrospectionResult, type RateLimitKind, type RouteTelemetry, type Telemetry } from './telemetry.js'

/** One counter series: incremented in place on the request path. */
interface Cell { value: number }

/** A counter family whose series are {@link Cell}s, read by prom-client at scrape time. */
class CounterFamily {
  readonly #cells = new Map<string, { labels: Record<string, string>, cell: Cell }>()
  readonly #labelNames: readonly string[]

  constructor (registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.#labelNames = labelNames
    const cells = this.#cells
    // eslint-disable-next-line no-new
    new Counter({
      name: METRICS_PREFIX + name,
      help,
      labelNames,
      registers: [registry],
      collect () {
        this.reset()
        for (const e of cells.values()) this.inc(e.labels, e.cell.value)
      }
    })
  }

  /** The cell of one label set (values in labelNames order), created at 0. Not for the request path: cache the cell. */
  cell (...values: string[]): Cell {
    const key = values.join('\n')
    let e = this.#cells.get(key)
    if (e === undefined) {
      const labels: Record<string, string> = {}
      this.#labelNames.forEach((n, i) => { labels[n] = values[i]! })
      e = { labels, cell: { value: 0 } }
      this.#cells.set(key, e)
    }
    return e.cell
  }
}

/** One histogram series: per-bucket counts (not cumulative; the last is +Inf), sum and count, in milliseconds. */
class HistogramCell {
  readonly #boundsMs: Float64Array
  readonly counts: Float64Array
  sumMs = 0
  count = 0

  constructor (boundsMs: Float64Array) {
    this.#boundsMs = boundsMs
    this.counts = new Float64Array(boundsMs.length + 1)
  }

  observe (ms: number): void {
    const b = this.#boundsMs
    let i = 0
    while (i < b.length && ms > b[i]!) i++
    this.counts[i]!++
    this.sumMs += ms
    this.count++
  }
}

/**
 * A histogram family in the shape prom-client's Registry formats (what its
 * own Histogram#get returns): `_bucket` series with `le`, `_sum` and `_count`, in seconds.
 */
class HistogramFamily {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #labelName: string
  readonly #boundsMs: Float64Array
  readonly #les: readonly string[]
  readonly #cells = new Map<string, HistogramCell>()

  constructor (registry: Registry, name: string, help: string, labelName: string, bucketsSeconds: readonly number[]) {
    this.name = METRICS_PREFIX + name
    this.help = help
    this.#labelName = labelName
    this.#boundsMs = Float64Array.from(bucketsSeconds, (s) => s * 1000)
    this.#les = bucketsSeconds.map((s) => String(s))
    registry.registerMetric(this as unknown as Metric)
  }

  cell (label: string): HistogramCell {
    let c = this.#cells.get(label)
    if (c === undefined) {
      c = new HistogramCell(this.#boundsMs)
      this.#cells.set(label, c)
    }
    return c
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: Array<{ labels: Record<string, string>, value: number, metricName: string }> }> {
    const values: Array<{ labels: Record<string, string>, value: number, metricName: string }> = []
    for (const [label, c] of this.#cells) {
      let cumulative = 0
      for (let i = 0; i < this.#les.length; i++) {
        cumulative += c.counts[i]!
        values.push({ labels: { [this.#labelName]: label, le: this.#les[i]! }, value: cumulative, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { [this.#labelName]: label, le: '+Inf' }, value: c.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { [this.#labelName]: label }, value: c.sumMs / 1000, metricName: `${this.name}_sum` })
      values.push({ labels: { [this.#labelName]: label }, value: c.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const c of this.#cells.values()) {
      c.counts.fill(0)
      c.sumMs = 0
      c.count = 0
    }
  }
}

interface Families {
  readonly requests: CounterFamily
  readonly duration: HistogramFamily
  readonly overhead: HistogramFamily
  readonly tokenCache: CounterFamily
  readonly rateLimits: CounterFamily
  readonly policyDenials: CounterFamily
  readonly sessionRejections: CounterFamily
}

/** The cells of one route label, found once. */
class RouteMetrics implements RouteTelemetry {
  readonly #id: string
  readonly #f: Families
  /** requests_total cells by status, outcome, method: three lookups of values the request already holds, no string built. */
  readonly #requests = new Map<number, Map<string, Map<string, Cell>>>()
  readonly #duration: HistogramCell
  readonly #overhead: HistogramCell
  readonly #cacheHit: Cell
  readonly #cacheMiss: Cell
  readonly #sessions: Cell
  readonly #limits = new Map<string, Cell>()
  readonly #denials = new Map<string, Cell>()

  constructor (id: string, f: Families) {
    this.#id = id
    this.#f = f
    this.#duration = f.duration.cell(id)
    this.#overhead = f.overhead.cell(id)
    this.#cacheHit = f.tokenCache.cell(id, 'hit')
    this.#cacheMiss = f.tokenCache.cell(id, 'miss')
    this.#sessions = f.sessionRejections.cell(id)
  }

  request (method: string, status: number, outcome: string, durationMs: number): void {
    let byOutcome = this.#requests.get(status)
    if (byOutcome === undefined) this.#requests.set(status, byOutcome = new Map())
    let byMethod = byOutcome.get(outcome)
    if (byMethod === undefined) byOutcome.set(outcome, byMethod = new Map())
    let cell = byMethod.get(method)
    if (cell === undefined) byMethod.set(method, cell = this.#f.requests.cell(this.#id, method, String(status), outcome))
    cell.value++
    this.#duration.observe(durationMs)
  }

  overhead (ms: number): void {
    this.#overhead.observe(ms)
  }

  tokenCache (hit: boolean): void {
    (hit ? this.#cacheHit : this.#cacheMiss).value++
  }

  rateLimited (limit: RateLimitKind): void {
    let c = this.#limits.get(limit)
    if (c === undefined) this.#limits.set(limit, c = this.#f.rateLimits.cell(this.#id, limit))
    c.value++
  }

  policyDenied (label: string): void {
    let c = this.#denials.get(label)
    if (c === undefined) this.#denials.set(label, c = this.#f.policyDenials.cell(this.#id, label))
    c.value++
  }

  sessionRejected (): void {
    this.#sessions.value++
  }
}

/** Default process metrics (CPU, memory, event loop, GC) describe the process: collected once, into a registry of their own. */
let processRegistry: Registry | undefined
function processMetrics (): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry, prefix: METRICS_PREFIX })
  }
  return processRegistry
}

/** The gateway's metrics. Create one per process ({@link createMetrics}) and hand it to every gateway generation. */
export class Metrics implements Telemetry {
  /** Content-Type of {@link scrape}'s text. */
  readonly contentType: string = Registry.PROMETHEUS_CONTENT_TYPE
  readonly none: RouteTelemetry
  readonly #registry = new Registry()
  readonly #f: Families
  readonly #routes = new Map<string, RouteMetrics>()
  readonly #jwks: CounterFamily
  readonly #unknownKid: CounterFamily
  readonly #introspection: CounterFamily
  /** introspection_total cells by issuer, then result (cache_hit is counted per request on introspecting routes). */
  readonly #introspectionCells = new Map<string, Map<string, Cell>>()
  #openStreams = 0

  constructor () {
    const r = this.#registry
    this.#f = {
      requests: new CounterFamily(r, 'requests_total', 'Requests answered, by route (the route path, or none outside the MCP routes), HTTP method, status (0: the client left first) and outcome.', ['route', 'method', 'status', 'outcome']),
      duration: new HistogramFamily(r, 'request_duration_seconds', 'Time from a request\'s arrival until its response ended (streams: until they closed).', 'route', METRICS_DURATION_BUCKETS_SECONDS),
      overhead: new HistogramFamily(r, 'overhead_seconds', 'The gateway\'s own time: from a request\'s arrival until the upstream request was dispatched.', 'route', METRICS_OVERHEAD_BUCKETS_SECONDS),
      tokenCache: new CounterFamily(r, 'token_cache_total', 'Verified-token cache lookups on the MCP routes: hit or miss.', ['route', 'result']),
      rateLimits: new CounterFamily(r, 'rate_limit_rejections_total', 'Requests refused with 429 by a rate limit (perIp, perPrincipal or perTool).', ['route', 'limit']),
      policyDenials: new CounterFamily(r, 'policy_denials_total', 'JSON-RPC messages refused by a route policy: the tool name when it is a key of policy.tools, else the method when known, else other.', ['route', 'tool']),
      sessionRejections: new CounterFamily(r, 'session_rejections_total', 'Requests refused (404) because their session id belongs to another caller or is unknown.', ['route'])
    }
    this.#jwks = new CounterFamily(r, 'jwks_fetches_total', 'HTTP fetches of an issuer\'s JWKS: ok (200) or error.', ['issuer', 'result'])
    this.#unknownKid = new CounterFamily(r, 'jwks_unknown_kid_during_outage_total', 'Tokens refused because their key was not in the last key set fetched while the JWKS was unreachable.', ['issuer'])
    this.#introspection = new CounterFamily(r, 'introspection_total', 'Token introspection (RFC 7662): calls that got an answer or failed, and cache hits (positive and negative).', ['issuer', 'result'])
    const streams = (): number => this.#openStreams
    // eslint-disable-next-line no-new
    new Gauge({ name: METRICS_PREFIX + 'open_streams', help: 'SSE streams open through the gateway: GET streams and SSE answers to POSTs.', registers: [r], collect () { this.set(streams()) } })
    this.none = new RouteMetrics(NO_ROUTE_LABEL, this.#f)
    processMetrics()
  }

  route (id: string): RouteTelemetry {
    let m = this.#routes.get(id)
    if (m === undefined) this.#routes.set(id, m = new RouteMetrics(id, this.#f))
    return m
  }

  streamOpened (): void {
    this.#openStreams++
  }

  streamClosed (): void {
    this.#openStreams--
  }

  jwksFetch (issuer: string, ok: boolean): void {
    this.#jwks.cell(issuer, ok ? 'ok' : 'error').value++
  }

  jwksUnknownKeyDuringOutage (issuer: string): void {
    this.#unknownKid.cell(issuer).value++
  }

  introspection (issuer: string, result: IntrospectionResult): void {
    let byResult = this.#introspectionCells.get(issuer)
    if (byResult === undefined) this.#introspectionCells.set(issuer, byResult = new Map())
    let c = byResult.get(result)
    if (c === undefined) byResult.set(result, c = this.#introspection.cell(issuer, result))
    c.value++
  }

  /** The Prometheus text format: the gateway's metrics, then the process's. */
  async scrape (): Promise<string> {
    const own = await this.#registry.metrics()
    return own + await processMetrics().metrics()
  }
}

export function createMetrics (): Metrics {
  return new Metrics()
}
