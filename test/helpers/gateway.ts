/**
 * Starts a real gateway on loopback for integration tests. The config goes
 * through the real loader (YAML text → parseConfig), and logs are captured so
 * tests can assert on them (e.g. that no token ever appears).
 */
import { Writable } from 'node:stream'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.js'
import type { GatewayConfig } from '../../src/config/types.js'
import { createGateway, type Gateway } from '../../src/gateway.js'
import { createLoggers } from '../../src/observability/logger.js'
import type { VerifierOptions } from '../../src/auth/jwt.js'
import { freePort } from './net.js'

export interface RunningGateway {
  /** e.g. http://127.0.0.1:<port>, also the publicUrl. */
  url: string
  config: GatewayConfig
  gateway: Gateway
  /** Every log line written so far, raw JSON text. */
  logs: string[]
  /** Parsed log records with msg === 'request'. */
  requestLogs: () => Array<Record<string, unknown>>
  close: () => Promise<void>
}

/**
 * @param build returns the raw config object (as a user would write it in YAML) given the gateway's origin
 */
export async function startGateway (
  build: (origin: string) => Record<string, unknown>,
  opts: { verifier?: VerifierOptions, waitReady?: boolean, env?: Record<string, string> } = {}
): Promise<RunningGateway> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const raw = { listen: { host: '127.0.0.1', port }, publicUrl: origin, logLevel: 'debug', ...build(origin) }
  const config = parseConfig(stringify(raw), { env: opts.env ?? {} })
  const logs: string[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(line)
      cb()
    }
  })
  const gateway = createGateway(config, { loggers: createLoggers('debug', sink), verifier: opts.verifier ?? { retryInitialMs: 50, retryMaxMs: 200 } })
  await gateway.listen()
  if (opts.waitReady !== false) await gateway.authenticator.whenReady()
  return {
    url: origin,
    config,
    gateway,
    logs,
    requestLogs: () => logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.msg === 'request'),
    close: async () => { await gateway.close() }
  }
}

/** Standard MCP POST headers. */
export function mcpHeaders (token?: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
    ...extra
  }
}

export const INITIALIZE_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1.0.0' } }
})
