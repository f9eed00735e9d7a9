#!/usr/bin/env node
/**
 * mcp-auth-gateway command line: argv → loadConfig → createGateway → listen,
 * signals and exit codes. The user never sees a stack trace.
 *
 * Exit codes: 0 ok, 1 invalid configuration (or --check failed), 2 bad usage, 3 runtime failure.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError } from './errors.js'
import { loadConfigFile, resolveConfigPath } from './config/load.js'
import { createRuntime } from './runtime.js'
import { AuditOpenError } from './observability/audit.js'

const HELP = `Usage: mcp-auth-gateway [--config <file>] [--check [--print]]

An authenticating reverse proxy that makes an unmodified MCP server an
OAuth 2.1 protected resource.

Options:
  -c, --config <file>  config file (default: $MCP_GATEWAY_CONFIG, else ./gateway.yaml)
      --check          validate the config and exit: 0 when valid, 1 with every problem listed
      --print          with --check: also print the normalised config (defaults applied)
                       as YAML, every secret redacted
  -v, --version        print the version
  -h, --help           print this help

Signals: SIGTERM/SIGINT stop accepting connections and let in-flight requests
finish (bounded by shutdownTimeoutSeconds). SIGHUP re-reads the config file:
a valid one applies to new requests while open streams continue; an invalid
one is refused with its problems logged, and the current config keeps serving.
SIGHUP also reopens the audit log file (for logrotate).
`

function version (): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version
    } catch { /* try the next layout (src/ under tsx, dist/src/ when built) */ }
  }
  return 'unknown'
}

async function main (argv: string[]): Promise<number> {
  let args
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        print: { type: 'boolean' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (err) {
    process.stderr.write(`mcp-auth-gateway: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  if (args.help === true) {
    process.stdout.write(HELP)
    return 0
  }
  if (args.version === true) {
    process.stdout.write(`${version()}\n`)
    return 0
  }

  if (args.print === true && args.check !== true) {
    process.stderr.write(`mcp-auth-gateway: --print needs --check (it prints the config instead of starting the gateway)\n\n${HELP}`)
    return 2
  }

  const path = resolveConfigPath(args.config)
  let config
  try {
    config = loadConfigFile(path)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mcp-auth-gateway: ${path}: ${err.problems.length} configuration problem${err.problems.length === 1 ? '' : 's'}:\n`)
      for (const p of err.problems) process.stderr.write(`  ${p}\n`)
      return 1
    }
    throw err
  }
  if (args.check === true && args.print === true) {
    // stdout stays one YAML document: the summary is a comment, the warnings are in `warnings`.
    process.stdout.write(`# ${path}: configuration is valid (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}, ${config.authorizationServers.length} authorization server${config.authorizationServers.length === 1 ? '' : 's'})\n`)
    const { printConfig, readConfigSource } = await import('./config/print.js')
    process.stdout.write(printConfig(config, readConfigSource(path)))
    return 0
  }
  if (args.check === true) {
    process.stdout.write(`${path}: configuration is valid (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}, ${config.authorizationServers.length} authorization server${config.authorizationServers.length === 1 ? '' : 's'})\n`)
    for (const w of config.warnings) process.stdout.write(`  warning: ${w}\n`)
    return 0
  }

  let gateway
  try {
    gateway = createRuntime(config, { load: () => loadConfigFile(path), source: path })
  } catch (err) {
    // The audit file is opened at startup: one that cannot be written stops the gateway here.
    if (!(err instanceof AuditOpenError)) throw err
    process.stderr.write(`mcp-auth-gateway: ${err.message}\n`)
    return 3
  }
  try {
    await gateway.listen()
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { listenAddress?: string }
    const where = e.listenAddress ?? `${config.listen.host}:${config.listen.port}`
    gateway.logger.fatal({ code: e.code }, `cannot listen on ${where}`)
    gateway.flushLogs()
    process.stderr.write(`mcp-auth-gateway: cannot listen on ${where} (${e.code ?? e.message})\n`)
    return 3
  }
  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      gateway.logger.info({ signal }, 'shutting down: draining in-flight requests')
      gateway.flushLogs()
      gateway.close().then(() => { resolve(0) }, () => { resolve(3) })
    }
    const hup = (): void => {
      gateway.logger.info({ signal: 'SIGHUP', file: path }, 'reloading the configuration')
      void gateway.reload()
    }
    process.on('SIGHUP', hup)
    process.once('SIGTERM', () => { process.off('SIGHUP', hup); stop('SIGTERM') })
    process.once('SIGINT', () => { process.off('SIGHUP', hup); stop('SIGINT') })
  })
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`mcp-auth-gateway: unexpected failure: ${(err as Error).name}: ${(err as Error).message}\n`)
    process.exitCode = 3
  }
)
