/**
 * The reloadable gateway the command line runs: one long-lived HTTP(S) server
 * and, behind it, the current generation (a Gateway built from one config).
 * SIGHUP (main.ts) calls reload(): a valid new config becomes a new
 * generation that takes every new request; the old one keeps its in-flight
 * requests and streams until they end, bounded by its shutdownTimeoutSeconds,
 * then is closed (its discovery, Redis client and session store with it).
 * Fastify cannot change routes after listen, hence one app per generation.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { GatewayConfig } from './config/types.js'
import { ConfigError } from './errors.js'
import { announceListening, createGateway, createGatewayServer, onClientError, type Gateway } from './gateway.js'
import { createLoggers, type Loggers } from './observability/logger.js'
import { createSessionBinder, type SessionBinder } from './session/binding.js'
import { RELOAD_READY_TIMEOUT_MS } from './config/defaults.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { createMetricsServer, type MetricsServer } from './observability/metrics-server.js'
import { openAuditLog, sameDestination } from './observability/audit.js'

/** One config's app and the responses it still owes. */
interface Generation {
  readonly config: GatewayConfig
  readonly gateway: Gateway
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void
  readonly inflight: OpenResponses
  /** Set when retired: called when the last in-flight response closes. */
  drained: (() => void) | undefined
  /** Set when retired: cut what is still open now. */
  cut: (() => void) | undefined
}

export interface Runtime {
  readonly logger: Logger
  flushLogs: () => void
  /** Start the first generation and listen. Resolves with the bound address. */
  listen: () => Promise<{ host: string, port: number, url: string }>
  /**
   * Load the config again and switch to it. Resolves true when applied; false when refused
   * (invalid file, a setting that needs a restart, issuers not ready): the current config keeps serving.
   */
  reload: () => Promise<boolean>
  /** Stop accepting connections; drain every generation (bounded), then close them. */
  close: () => Promise<void>
  /** Resolves when the current config's issuers are all ready. */
  whenReady: () => Promise<void>
}

export interface RuntimeOptions {
  /** Reads and validates the config file; throws ConfigError with every problem. */
  load: () => GatewayConfig
  /** Shown in log lines (the config file path). */
  source: string
  loggers?: Loggers
}

/** The generation a response started on, and its slot there, read by {@link responseClosed}. */
const kGeneration = Symbol('generation')
const kSlot = Symbol('slot')
type TrackedResponse = ServerResponse & { [kGeneration]?: Generation, [kSlot]?: number }

/**
 * The responses a generation still owes, in reused array slots. Not a Set: with
 * the Set (one add and one delete per request), ~2 MB survived every scavenge
 * once the process had been idle, and old-space collections came several times
 * a second (BENCHMARKS.md). Our reading: the Set replaces its hash table every few
 * requests, and a replaced table that had been promoted still held the responses
 * it listed, and a link to its successor. Here a closed response's slot is
 * cleared, and the array only grows to the peak count.
 */
class OpenResponses {
  readonly #slots: Array<TrackedResponse | undefined> = []
  readonly #free: number[] = []
  size = 0

  add (res: TrackedResponse): void {
    const i = this.#free.length > 0 ? this.#free.pop()! : this.#slots.length
    this.#slots[i] = res
    res[kSlot] = i
    this.size++
  }

  delete (res: TrackedResponse): void {
    const i = res[kSlot]!
    if (this.#slots[i] !== res) return
    this.#slots[i] = undefined
    this.#free.push(i)
    this.size--
  }

  /** The responses still open (a copy: destroying one closes it, which deletes it). */
  list (): TrackedResponse[] {
    return this.#slots.filter((r): r is TrackedResponse => r !== undefined)
  }
}

/**
 * One 'close' listener shared by every response (EventEmitter calls it with the
 * response as `this`): a closure and a `once` wrapper per request showed in profiles.
 */
function responseClosed (this: TrackedResponse): void {
  const gen = this[kGeneration]!
  gen.inflight.delete(this)
  if (gen.inflight.size === 0) gen.drained?.()
}

/** The body of a request refused during shutdown (the error body format of plugins/http-errors.ts). */
const SHUTTING_DOWN_BODY = JSON.stringify({ error: 'temporarily_unavailable', error_description: 'The gateway is shutting down' })

/** Settings bound to the listening socket: changing one needs a restart. */
function restartOnly (a: GatewayConfig, b: GatewayConfig): string[] {
  const out: string[] = []
  if (a.listen.host !== b.listen.host) out.push('listen.host')
  if (a.listen.port !== b.listen.port) out.push('listen.port')
  if ((a.listen.tls === undefined) !== (b.listen.tls === undefined)) out.push('listen.tls')
  // Node reads the header size limit only when the server is created.
  if (a.limits.maxHeaderBytes !== b.limits.maxHeaderBytes) out.push('limits.maxHeaderBytes')
  // The separate metrics listener is a socket too; the audit destination is opened once per process.
  const metricsListener = (c: GatewayConfig): string => c.metrics.enabled && c.metrics.listen !== undefined ? `${c.metrics.listen.host} ${c.metrics.listen.port}` : ''
  if (metricsListener(a) !== metricsListener(b)) out.push('metrics.listen')
  if (a.audit.enabled !== b.audit.enabled) out.push('audit.enabled')
  else if (a.audit.enabled && !sameDestination(a.audit.destination, b.audit.destination)) out.push('audit.destination')
  return out
}

export function createRuntime (initial: GatewayConfig, opts: RuntimeOptions): Runtime {
  const loggers = opts.loggers ?? createLoggers(initial.logLevel)
  const logger = loggers.logger
  let config = initial
  const server: Server = createGatewayServer(config)
  server.on('clientError', onClientError)

  // Memory session bindings outlive a reload while `sessions` is unchanged: a legacy SSE stream still
  // draining on the old config must keep its POSTs admitted, and Streamable HTTP sessions stay bound to
  // their owner instead of being re-bound to whoever uses them first. (A redis store is shared anyway.)
  const memorySessions = (cfg: GatewayConfig): SessionBinder | undefined =>
    cfg.sessions.store === 'memory' ? createSessionBinder(cfg.sessions, undefined, logger) : undefined
  let sessions = memorySessions(config)
  // One of each per process: counters survive reloads, audit lines keep one writer. The audit file
  // is opened now, so one that cannot be written is a startup error (AuditOpenError), not a crash later.
  let metrics: Metrics | undefined
  const audit = config.audit.enabled ? openAuditLog(config.audit.destination, loggers) : undefined
  const build = (cfg: GatewayConfig, binder: SessionBinder | undefined): Generation => {
    if (cfg.metrics.enabled) metrics ??= createMetrics()
    const gateway = createGateway(cfg, { loggers, external: true, sessions: binder, metrics, audit })
    return { config: cfg, gateway, handler: gateway.handler!, inflight: new OpenResponses(), drained: undefined, cut: undefined }
  }
  let current = build(config, sessions)
  // metrics.listen cannot change on reload (restartOnly), so the listener lives as long as the process.
  const metricsServer: MetricsServer | undefined = metrics !== undefined && config.metrics.listen !== undefined
    ? createMetricsServer({ ...config.metrics.listen, path: () => config.metrics.path, source: metrics, onError: (err) => { logger.error({ err }, 'collecting metrics failed') } })
    : undefined
  const retiring = new Map<Generation, Promise<void>>()
  let stopping = false

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (stopping) {
      // A request on a kept-alive connection after SIGTERM: refused, as Fastify's return503OnClosing does.
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', connection: 'close' })
      res.end(SHUTTING_DOWN_BODY)
      return
    }
    const gen = current
    ;(res as TrackedResponse)[kGeneration] = gen
    gen.inflight.add(res)
    res.on('close', responseClosed)
    gen.handler(req, res)
  })

  /** Wait for the generation's responses to end, at most timeoutMs, then cut what is left and close it. */
  const retire = (gen: Generation, timeoutMs: number): Promise<void> => {
    const p = (async () => {
      if (gen.inflight.size > 0) {
        await new Promise<void>((resolve) => {
          gen.drained = resolve
          gen.cut = () => {
            if (gen.inflight.size > 0) logger.warn({ open: gen.inflight.size }, 'drain timeout: cutting open requests and streams')
            for (const res of gen.inflight.list()) res.destroy()
            resolve()
          }
          const timer = setTimeout(gen.cut, timeoutMs)
          timer.unref()
        })
      }
      await gen.gateway.close()
    })().catch((err: unknown) => {
      logger.error({ err: { name: (err as Error).name, message: (err as Error).message } }, 'closing a previous config failed')
    })
    retiring.set(gen, p)
    void p.then(() => { retiring.delete(gen) })
    return p
  }

  let reloading: Promise<boolean> | undefined
  let again = false
  let abortWait: (() => void) | undefined
  const reloadOnce = async (): Promise<boolean> => {
    // SIGHUP also reopens an audit file, whatever becomes of the reload: logrotate moves the file, then signals.
    audit?.reopen()
    let next: GatewayConfig
    try {
      next = opts.load()
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      logger.error({ file: opts.source, problems: err.problems.length }, 'config reload rejected: the file is invalid; the current config keeps serving')
      for (const problem of err.problems) logger.error({ file: opts.source, problem }, 'config problem')
      return false
    }
    const fixed = restartOnly(config, next)
    if (fixed.length > 0) {
      logger.error({ file: opts.source, settings: fixed }, `config reload rejected: ${fixed.join(', ')} cannot change without a restart; the current config keeps serving`)
      return false
    }
    const sameSessions = JSON.stringify(next.sessions) === JSON.stringify(config.sessions)
    const nextSessions = sameSessions ? sessions : memorySessions(next)
    const gen = build(next, nextSessions)
    let ready = false
    try {
      await gen.gateway.start()
      // Swap only once every issuer of the new config has its keys: tokens must not see 503s a reload caused.
      // A shutdown meanwhile ends the wait at once.
      let timer: NodeJS.Timeout | undefined
      ready = await Promise.race([
        gen.gateway.authenticator.whenReady().then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => { resolve(false) }, RELOAD_READY_TIMEOUT_MS)
          abortWait = () => { resolve(false) }
        })
      ])
      clearTimeout(timer)
    } finally {
      abortWait = undefined
      if (!ready || stopping) {
        await gen.gateway.close()
        if (nextSessions !== sessions) nextSessions?.close()
      }
    }
    if (!ready || stopping) {
      if (!ready && !stopping) logger.error({ file: opts.source, timeoutMs: RELOAD_READY_TIMEOUT_MS }, 'config reload abandoned: the new authorization servers were not ready in time; the current config keeps serving')
      return false
    }
    const old = current
    const oldSessions = sessions
    current = gen
    config = next
    sessions = nextSessions
    // Timeouts Node checks per request can change in place; new requests get them.
    server.headersTimeout = next.limits.headersTimeoutMs
    server.requestTimeout = next.limits.requestTimeoutMs
    if (next.listen.tls !== undefined && 'setSecureContext' in server) {
      (server as unknown as { setSecureContext: (o: object) => void }).setSecureContext({ cert: next.listen.tls.cert, key: next.listen.tls.key })
    }
    loggers.logger.level = next.logLevel
    loggers.access.level = next.logLevel
    logger.info({ file: opts.source, routes: next.routes.map((r) => r.path), draining: old.inflight.size }, 'config reloaded')
    loggers.flush()
    void retire(old, old.config.shutdownTimeoutMs).then(() => {
      if (oldSessions !== nextSessions) oldSessions?.close()
      if (!stopping) logger.info({ file: opts.source }, 'previous config drained and closed')
    })
    return true
  }

  return {
    logger,
    flushLogs: loggers.flush,
    whenReady: async () => { await current.gateway.authenticator.whenReady() },
    async listen () {
      await current.gateway.start()
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.listen.port, config.listen.host, () => { server.off('error', reject); resolve() })
      })
      if (metricsServer !== undefined) {
        const { host, port } = config.metrics.listen!
        const m = await metricsServer.listen().catch((err: unknown) => {
          // main.ts names the address that could not be bound.
          throw Object.assign(err as Error, { listenAddress: `${host}:${port}` })
        })
        logger.info({ url: m.url, path: config.metrics.path }, 'metrics listening')
      }
      return announceListening(config, server.address(), loggers)
    },
    reload () {
      // One reload at a time; signals during one coalesce into one more.
      if (reloading !== undefined) {
        again = true
        return reloading
      }
      reloading = (async () => {
        let applied = false
        try {
          do {
            again = false
            applied = await reloadOnce()
          } while (again && !stopping)
        } catch (err) {
          logger.error({ err: { name: (err as Error).name, message: (err as Error).message } }, 'config reload failed; the current config keeps serving')
        } finally {
          reloading = undefined
          loggers.flush()
        }
        return applied
      })()
      return reloading
    },
    async close () {
      stopping = true
      abortWait?.()
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      server.closeIdleConnections()
      void retire(current, config.shutdownTimeoutMs)
      // Generations still draining from a reload get the same bound as the current one.
      const timer = setTimeout(() => { for (const gen of retiring.keys()) gen.cut?.() }, config.shutdownTimeoutMs)
      timer.unref()
      await Promise.all([...retiring.values(), reloading])
      clearTimeout(timer)
      sessions?.close()
      // Whatever is left (kept-alive sockets between requests) goes now.
      server.closeAllConnections()
      await closed
      await metricsServer?.close()
      audit?.close()
      loggers.close()
    }
  }
}
