/**
 * mcp-auth-gateway as a library: load and validate a config file, then build
 * the gateway as a Fastify instance to listen on or embed.
 *
 * ```ts
 * import { createGateway, loadConfig } from 'mcp-auth-gateway'
 *
 * const app = createGateway(loadConfig('gateway.yaml'))
 * await app.listen({ host: '127.0.0.1', port: 8080 })
 * ```
 *
 * The command line (dist/src/main.js) is built on the same pieces; it adds
 * signals, SIGHUP reloads and exit codes.
 */
import type { FastifyInstance } from 'fastify'
import type { DestinationStream } from 'pino'
import { loadConfigFile, parseConfig as parseConfigText, type Env } from './config/load.js'
import type { GatewayConfig } from './config/types.js'
import { createGateway as buildGateway } from './gateway.js'
import { createLoggers } from './observability/logger.js'

/** The environment `${NAME}` references and `fromEnv` secrets are read from. */
export type { Env } from './config/load.js'
export type {
  AudienceRule,
  AuditConfig,
  AuditDestination,
  ClaimMapping,
  ClaimPath,
  GatewayConfig,
  HealthConfig,
  IdentityAssertionConfig,
  IdentityHeaderNames,
  IntrospectionConfig,
  IssuerConfig,
  ListenConfig,
  MetricsConfig,
  PolicyConfig,
  ProfileName,
  RateLimitsConfig,
  RateWindow,
  RedisConfig,
  RouteConfig,
  SessionsConfig,
  SigningKeyConfig,
  TokenType,
  UpstreamAuthConfig,
  UpstreamTokenClientConfig
} from './config/types.js'
export {
  ConfigError,
  GatewayError,
  InvalidRequestError,
  InvalidTokenError,
  TemporarilyUnavailableError,
  type GatewayErrorCode,
  type InvalidTokenReason
} from './errors.js'
export { AuditOpenError } from './observability/audit.js'

/**
 * Read, validate and normalise a gateway config file (YAML), exactly as the
 * `mcp-auth-gateway` command does: `${NAME}` references and `fromEnv` secrets
 * are resolved from `env`, and relative file paths (TLS, `fromFile`) from the
 * file's directory.
 *
 * @param path - the config file
 * @param env - the environment for `${NAME}` and `fromEnv`; default: the process environment
 * @returns the frozen, normalised config; risky but accepted settings are in `warnings`
 * @throws {@link ConfigError} listing every problem found (`problems`, and one per line in
 *   `message`), each as `path: what is wrong: the rule`; an unreadable file is one such problem
 */
export function loadConfig (path: string, env?: Env): GatewayConfig {
  return env === undefined ? loadConfigFile(path) : loadConfigFile(path, env)
}

/**
 * Validate config text that did not come from a file (a secret store, a
 * template). Same rules and errors as {@link loadConfig}.
 *
 * @param text - YAML (or JSON, a subset of YAML)
 * @param opts - `env` for `${NAME}` and `fromEnv` (default: the process environment);
 *   `baseDir` to resolve relative file paths (default: the working directory)
 * @throws {@link ConfigError} listing every problem found
 */
export function parseConfig (text: string, opts: { env?: Env, baseDir?: string } = {}): GatewayConfig {
  return parseConfigText(text, opts)
}

/** Options of {@link createGateway}. Every field is optional. */
export interface CreateGatewayOptions {
  /**
   * Where the gateway's JSON log lines go (a pino destination, e.g. a file or
   * a Writable). Default: stdout, buffered and flushed at least every second.
   */
  logDestination?: DestinationStream
}

/**
 * Build the gateway for a validated config as a Fastify instance: the MCP
 * routes, their `/.well-known/oauth-protected-resource` metadata, the health
 * probes, `/metrics` when enabled and, when identity assertions are signed,
 * the JWKS.
 *
 * Nothing is fetched or connected until the instance is ready (`listen()`,
 * `ready()` or the first `inject()`): then the authorization servers'
 * metadata and keys start loading (token-bearing requests get 503 until they
 * are; the readiness probe says when), Redis connects if configured, and a
 * separate `metrics.listen` listener is bound. `close()` lets in-flight
 * requests finish for at most `shutdownTimeoutSeconds`, then cuts open SSE
 * streams, stops key refreshes and closes Redis, the metrics listener and the
 * audit file.
 *
 * The instance listens where you tell it: `config.listen` is what the command
 * line uses, e.g. `app.listen({ host: config.listen.host, port: config.listen.port })`.
 * Routes and hooks you add share its error handling and 404s. `listen.tls` and the
 * `limits` enforced by Node's HTTP server apply to the server Fastify creates.
 * SIGHUP reloads are the command line's; here, build a new instance.
 *
 * @param config - from {@link loadConfig} or {@link parseConfig}
 * @param options - see {@link CreateGatewayOptions}
 * @throws {@link AuditOpenError} when `audit.destination` is a file that cannot be opened for appending
 */
export function createGateway (config: GatewayConfig, options: CreateGatewayOptions = {}): FastifyInstance {
  const loggers = createLoggers(config.logLevel, options.logDestination)
  // Gateway.listen()/close() steps are Fastify hooks of the app (gateway.ts), so the caller's
  // ready()/listen()/close() run them: issuers and Redis start, metrics.listen binds, the drain is bounded.
  return buildGateway(config, { loggers }).app
}
