/**
 * createGateway(config): builds the Fastify app and registers the plugins in
 * hook order. No request logic lives here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { GatewayConfig } from './config/types.js'
import { memoryLimit, streamMemoryWarning } from './config/memory.js'
import { Authenticator } from './auth/authenticator.js'
import type { VerifierOptions } from './auth/jwt.js'
import { createLoggers, type Loggers } from './observability/logger.js'
import { registerWellKnown } from './plugins/well-known.js'
import { registerMcpRoute } from './plugins/mcp-route.js'
import { registerHealth } from './plugins/health.js'
import { registerJwks } from './plugins/jwks.js'
import { createSigningKeys } from './identity/keys.js'
import { clientErrorResponse, publicErrorOf, sendError } from './plugins/http-errors.js'
import { logRequest } from './plugins/request-log.js'
import { applyRouteCors } from './plugins/origin.js'
import { createGatewayServer, registerEdge } from './plugins/edge.js'
import { createRequestIds, Lane } from './plugins/lane.js'
// For runtime.ts, which creates the listening server itself (only gateway.ts and plugins/ import plugins/).
export { createGatewayServer }
import type { Redis } from 'ioredis'
import { createRedis, startRedis, stopRedis } from './session/redis.js'
import { createSessionBinder, type SessionBinder } from './session/binding.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { createMetricsServer, type MetricsServer } from './observability/metrics-server.js'
import { NOOP_TELEMETRY, type Telemetry } from './observability/telemetry.js'
import { AuditWriter, openAuditLog, type AuditLog } from './observability/audit.js'
import { registerMetricsRoute } from './plugins/metrics.js'

export interface GatewayOptions {
  /** Loggers to use; default: pino to stdout at config.logLevel. */
  loggers?: Loggers
  /** Verifier timing overrides (tests). */
  verifier?: VerifierOptions
  /**
   * Build for a server owned by the caller (runtime.ts, SIGHUP reload): Fastify gets a server that
   * never listens, requests come in through `handler`, start() replaces listen(), and close()
   * leaves the caller's loggers open.
   */
  external?: boolean
  /** A memory session binder kept across reloads (runtime.ts); the gateway uses it and leaves closing it to the caller. */
  sessions?: SessionBinder
  /** The process's metrics (runtime.ts keeps one across reloads); default: a fresh one when config.metrics.enabled. */
  metrics?: Metrics
  /** The open audit destination (runtime.ts keeps one across reloads); default: opened here when config.audit.enabled, closed by close(). */
  audit?: AuditLog
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly authenticator: Authenticator
  readonly logger: Logger
  /** The shared Redis client (session/redis.ts) when `redis` is configured; it connects on listen(). */
  readonly redis: Redis | undefined
  /** The metrics, when config.metrics.enabled. */
  readonly metrics: Metrics | undefined
  /** The address of the separate metrics listener (config.metrics.listen), once listen() has bound it. */
  readonly metricsAddress: () => { host: string, port: number, url: string } | undefined
  /** Write out buffered log lines now (before a fatal exit, at a signal). */
  flushLogs: () => void
  /** How many requests the lane (plugins/lane.ts) has taken instead of Fastify's route. */
  readonly laneTaken: () => number
  /** With `external`: Fastify's request handler, to call for each request of the caller's server. */
  readonly handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  /** Log warnings, start discovery (and Redis) and make the app ready, without listening. */
  start: () => Promise<void>
  /** Start discovery and listen. Resolves with the bound address. */
  listen: () => Promise<{ host: string, port: number, url: string }>
  /** Stop accepting connections; wait up to config.shutdownTimeoutMs for in-flight requests, then close what is left. */
  close: () => Promise<void>
}

/**
 * HTTP parse errors: our body, then close; a reset socket needs nothing. Exported for the
 * reloadable runtime (runtime.ts), which owns the listening server itself.
 */
export function onClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // The response attached to the socket is either this bad request's own (its body failed to parse:
  // answer 400 if nothing was sent yet, as Node does) or, with pipelining, an earlier complete
  // request's still in flight: a 400 written now would be read as that request's answer.
  const res = (socket as unknown as { _httpMessage?: ServerResponse | null })._httpMessage
  if (res != null && res.req?.complete === true && !res.writableEnded) {
    // Let that answer finish (nothing after it is parsed any more), then close.
    res.once('close', () => { socket.destroy() })
    return
  }
  if (socket.writable && res?.headersSent !== true) socket.write(clientErrorResponse(err.code))
  socket.destroy()
}

/** Log the bound address and return it. Startup lines are what operators and supervisors wait for: flushed at once. */
export function announceListening (config: GatewayConfig, addr: ReturnType<Server['address']>, loggers: Pick<Loggers, 'logger' | 'flush'>): { host: string, port: number, url: string } {
  const port = typeof addr === 'object' && addr !== null ? addr.port : config.listen.port
  const host = config.listen.host
  const url = `${config.listen.tls !== undefined ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`
  loggers.logger.info({ url, publicUrl: config.publicUrl, routes: config.routes.map((r) => r.path) }, 'gateway listening')
  loggers.flush()
  return { host, port, url }
}

export function createGateway (config: GatewayConfig, opts: GatewayOptions = {}): Gateway {
  const loggers = opts.loggers ?? createLoggers(config.logLevel)
  const logger = loggers.logger
  const metrics = config.metrics.enabled ? (opts.metrics ?? createMetrics()) : undefined
  const telemetry: Telemetry = metrics ?? NOOP_TELEMETRY
  const authenticator = new Authenticator(config, logger, opts.verifier, telemetry)
  // An audit file that cannot be opened fails here, at startup (AuditOpenError), not on the first line.
  const ownAudit = config.audit.enabled && opts.audit === undefined ? openAuditLog(config.audit.destination, loggers) : undefined
  const auditLog = config.audit.enabled ? opts.audit ?? ownAudit : undefined
  const audit = auditLog === undefined ? undefined : new AuditWriter(auditLog, config.audit.includeArguments)

  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  // Ids shared by Fastify's requests and the lane's (plugins/lane.ts).
  const requestIds = createRequestIds()
  const lane = new Lane(requestIds, logger, config.limits.maxBodyBytes)
  const app = Fastify({
    genReqId: requestIds,
    loggerInstance: logger,
    // Fastify's own per-request lines are replaced by ours (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: pino's child() re-runs redaction on its bindings, a measurable
    // per-request cost. The request id goes into the lines we write instead (plugins/request-log.ts).
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.limits.maxBodyBytes,
    requestTimeout: config.limits.requestTimeoutMs,
    exposeHeadRoutes: false,
    return503OnClosing: true,
    // HTTP parse errors: our body, then close; a reset socket needs nothing.
    clientErrorHandler: onClientError,
    // Malformed URLs (bad percent-encoding) get our error body, not Fastify's, which echoes the path.
    frameworkErrors: (_err, request, reply) => {
      request.outcome = 'invalid_request'
      void sendError(reply, 400, 'invalid_request', 'The request URL is malformed')
    },
    // The lane goes in front of Fastify's handler. With `external` the caller's server calls `handler`:
    // Fastify gets one that never listens.
    serverFactory: (h: (req: IncomingMessage, res: ServerResponse) => void) => {
      handler = lane.wrap(h)
      return opts.external === true ? createServer() : createGatewayServer(config, handler)
    },
    // Only for the URLs Fastify reports: the server itself comes from serverFactory.
    ...(config.listen.tls !== undefined ? { https: { cert: config.listen.tls.cert, key: config.listen.tls.key } } : {})
  }) as unknown as FastifyInstance

  app.decorate('requestLine', loggers.requestLine)
  app.decorate('noRouteRecording', null)
  app.decorate('telemetry', telemetry)
  app.decorateRequest('audit', null)
  app.decorateRequest('exchange', null)
  app.decorateRequest('principal', null)
  app.decorateRequest('outcome', null)
  app.decorateRequest('session', null)

  // Bodies are forwarded byte for byte: parse nothing, keep the raw buffer (bounded by bodyLimit).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })

  app.setNotFoundHandler((request, reply) => {
    request.outcome = 'not_found'
    void sendError(reply, 404, 'not_found', 'No route matches this path')
  })
  app.setErrorHandler((err, request, reply) => {
    const pub = publicErrorOf(err)
    request.outcome = pub.error
    if (pub.status >= 500) request.log.error({ reqId: request.id, err }, 'request failed')
    // Errors on MCP routes (e.g. 413) stay readable by browser clients from allowed origins, like the route's own errors.
    applyRouteCors(request, reply)
    void sendError(reply, pub.status, pub.error, pub.description)
  })

  // One line per request: no headers, no query string, no token.
  app.addHook('onResponse', (request, reply, done) => {
    logRequest(request, reply)
    done()
  })

  registerHealth(app, authenticator, config.health)
  // On the main listener unless metrics.listen gives them their own (started by listen() here, or by runtime.ts).
  if (metrics !== undefined && config.metrics.listen === undefined) registerMetricsRoute(app, config.metrics.path, metrics)
  const metricsServer: MetricsServer | undefined = metrics !== undefined && config.metrics.listen !== undefined && opts.external !== true
    ? createMetricsServer({ ...config.metrics.listen, path: () => config.metrics.path, source: metrics, onError: (err) => { logger.error({ err }, 'collecting metrics failed') } })
    : undefined
  registerWellKnown(app, config)
  // Identity assertion keys: configured, or generated now when a route signs (config.warnings says so).
  const signingKeys = createSigningKeys(config)
  if (signingKeys !== undefined) registerJwks(app, signingKeys)
  // One Redis connection for every store set to redis (session bindings; rate limits take the same client).
  const redis = config.redis === undefined ? undefined : createRedis(config.redis, logger)
  const sessions = opts.sessions ?? createSessionBinder(config.sessions, redis, logger)
  // Client address (trustProxy), stream bounds and rate limits, shared by every route.
  const edge = registerEdge(app, config, redis)
  for (const route of config.routes) registerMcpRoute(app, { route, authenticator, publicUrl: config.publicUrl, signingKeys, sessions, telemetry, audit, lane, maxBatchMessages: config.limits.maxBatchMessages, ...edge })

  // The lifecycle lives in Fastify's hooks, so an embedder driving the app (index.ts: ready, listen,
  // close) gets the same start and shutdown steps as listen()/close() below.
  let metricsAddress: { host: string, port: number, url: string } | undefined
  let cut: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    // First: a metrics port that cannot be bound fails ready() before anything else has started.
    if (metricsServer !== undefined) {
      metricsAddress = await metricsServer.listen()
      logger.info({ url: metricsAddress.url, path: config.metrics.path }, 'metrics listening')
    }
    for (const w of config.warnings) logger.warn({ warning: w }, 'risky configuration')
    // Not a config warning: it depends on the container this process runs in, not on the file.
    const memory = streamMemoryWarning(config.limits.maxStreams, memoryLimit(process.constrainedMemory()))
    if (memory !== undefined) logger.warn({ warning: memory }, 'risky configuration')
    authenticator.start()
    if (redis !== undefined) startRedis(redis)
  })
  app.addHook('preClose', async () => {
    lane.close()
    authenticator.stop()
    // Long-lived SSE streams would hold close() forever: bound it, then cut what is left.
    cut = setTimeout(() => { app.server.closeAllConnections() }, config.shutdownTimeoutMs)
    cut.unref()
    app.server.closeIdleConnections()
  })
  // Runs once the server has closed (Fastify's own onClose, registered later, runs first).
  app.addHook('onClose', async () => {
    clearTimeout(cut)
    await metricsServer?.close()
    // After the drain: the last exchanges have written their audit lines.
    ownAudit?.close()
    if (opts.sessions === undefined) sessions.close()
    if (redis !== undefined) await stopRedis(redis)
    if (opts.external !== true) loggers.close()
  })

  let closing: Promise<void> | undefined
  const start = async (): Promise<void> => { await app.ready() }
  return {
    app,
    authenticator,
    logger,
    redis,
    metrics,
    metricsAddress: () => metricsAddress,
    flushLogs: loggers.flush,
    laneTaken: () => lane.taken,
    handler,
    start,
    async listen () {
      await start()
      await app.listen({ host: config.listen.host, port: config.listen.port })
      return announceListening(config, app.server.address(), loggers)
    },
    close () {
      closing ??= app.close()
      return closing
    }
  }
}
