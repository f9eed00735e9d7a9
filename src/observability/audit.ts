/**
 * The audit log: one JSON line per MCP operation (each JSON-RPC request or
 * notification in a body sent to an MCP route), written when the exchange
 * ends, so the decision, the upstream status and the latency are known.
 *
 * A line never holds a token, a header, a session id or (unless
 * `audit.includeArguments`) the arguments. Names and URIs come from the
 * caller's body: they are cut to AUDIT_MAX_NAME_CHARS.
 *
 * The destination is opened once per process (runtime.ts), like the other
 * loggers: stdout shares the gateway's buffered log stream (one writer, no
 * interleaved partial lines); stderr and files get a batched, synchronous
 * writer of their own (logger.ts openBatchedStream): lines reach them within
 * LOG_FLUSH_INTERVAL_MS, in order, and are written out when the process ends.
 * Audit lines are written at `info` whatever `logLevel` says.
 */
import pino, { type Logger } from 'pino'
import type { AuditDestination } from '../config/types.js'
import { AUDIT_MAX_LINES_PER_REQUEST, AUDIT_MAX_NAME_CHARS } from '../config/defaults.js'
import { targetParamOf, type JsonRpcMessage } from '../mcp/jsonrpc.js'
import { isoTimeCached, openBatchedStream, type BatchedStream, type Loggers } from './logger.js'

/** The audit file cannot be opened for appending: a startup error. */
export class AuditOpenError extends Error {
  readonly code: string
  constructor (file: string, code: string) {
    super(`cannot open the audit log ${file} (${code}): the file must be writable, or its directory must exist and be writable`)
    this.name = 'AuditOpenError'
    this.code = code
  }
}

/** An open audit destination. */
export interface AuditLog {
  readonly destination: AuditDestination
  /** Writes the lines (level info, `audit: true`). */
  readonly logger: Logger
  /** Reopen a file destination (after logrotate moved it); a no-op for stdout and stderr. */
  reopen: () => void
  /** Write out what is buffered now. */
  flush: () => void
  /** Flush and close (a file or stderr destination; stdout belongs to the loggers). */
  close: () => void
}

/** Same destination (so an open log can serve a new config generation). */
export function sameDestination (a: AuditDestination, b: AuditDestination): boolean {
  return typeof a === 'string' || typeof b === 'string' ? a === b : a.file === b.file
}

/**
 * Open the destination. A file is opened (created if missing) synchronously,
 * so a file that cannot be written is an {@link AuditOpenError} now,
 * not a crash on the first line.
 */
export function openAuditLog (destination: AuditDestination, loggers: Pick<Loggers, 'access' | 'logger'>): AuditLog {
  if (destination === 'stdout') {
    const logger = loggers.access.child({ audit: true })
    // Independent of logLevel (and of a reload changing it): audit lines are not debug output.
    logger.level = 'info'
    return { destination, logger, reopen: () => {}, flush: () => {}, close: () => {} }
  }
  // Batched and synchronous like stdout (logger.ts openBatchedStream): in order, and written out on exit.
  // A file is opened synchronously there, so one that cannot be opened throws now.
  let out: BatchedStream
  try {
    // A failing write (disk full, file removed with its directory) is logged, never a crash.
    out = openBatchedStream(destination === 'stderr' ? 2 : destination.file, {
      failed: (code, droppedBytes) => { loggers.logger.error({ code, droppedBytes }, 'audit log write failed') },
      resumed: (droppedBytes) => { loggers.logger.warn({ droppedBytes }, 'audit log writes resumed') }
    })
  } catch (err) {
    throw new AuditOpenError(typeof destination === 'object' ? destination.file : 'stderr', (err as NodeJS.ErrnoException).code ?? 'error')
  }
  const logger = pino({ level: 'info', base: { service: 'mcp-auth-gateway', audit: true }, timestamp: isoTimeCached }, out.batch)
  return {
    destination,
    logger,
    reopen: () => { if (typeof destination === 'object') out.reopen() },
    flush: out.flush,
    // stderr stays open (other code writes to it); a file is closed.
    close: () => { out.close(typeof destination === 'object') }
  }
}

/** What the route learnt about a body: its messages, or why it is not JSON-RPC; and, when the policy refused it, what each message lacks. */
export interface AuditState {
  readonly messages?: readonly JsonRpcMessage[] | undefined
  /** Set when the body is not valid JSON-RPC (the parser's message, or the content type refused). */
  readonly parseError?: string | undefined
  /** Policy refusals: per message, the needed scopes the caller lacks (empty: held back because another message was refused). */
  missing?: ReadonlyArray<readonly string[]> | undefined
}

/**
 * Who made the request, as the audit line names it. Structural, so that
 * observability/ does not import auth/ (auth's Principal has these fields).
 */
export interface AuditCaller {
  readonly subject: string
  readonly clientId: string | undefined
  readonly issuer: string
}

/** How the exchange ended, as the request log saw it. */
export interface AuditExchange {
  readonly route: string
  readonly reqId: string
  readonly principal: AuditCaller | null
  /** The body went to the upstream. */
  readonly forwarded: boolean
  /** The request outcome (insufficient_scope, rate_limited, …): the reason when not forwarded. */
  readonly outcome: string
  /** The upstream's status; null when not forwarded or when the upstream gave none (502/504 by the gateway). */
  readonly upstreamStatus: number | null
  readonly latencyMs: number
}

/** Methods whose params.name / params.uri is named in the line, and under which key. */
const TARGET_FIELD: ReadonlyMap<string, 'tool' | 'prompt' | 'resource'> = new Map([
  ['tools/call', 'tool'],
  ['prompts/get', 'prompt'],
  ['resources/read', 'resource'],
  ['resources/subscribe', 'resource'],
  ['resources/unsubscribe', 'resource']
])

function cut (s: string): string {
  return s.length > AUDIT_MAX_NAME_CHARS ? s.slice(0, AUDIT_MAX_NAME_CHARS) : s
}

/** Writes the lines of one config generation's exchanges (includeArguments is per config). */
export class AuditWriter {
  readonly #log: AuditLog
  readonly #includeArguments: boolean

  constructor (log: AuditLog, includeArguments: boolean) {
    this.#log = log
    this.#includeArguments = includeArguments
  }

  /**
   * One line per message with a method (responses sent by the client are not operations), at
   * most AUDIT_MAX_LINES_PER_REQUEST, then one line counting the rest; one line for a body
   * that is not JSON-RPC.
   */
  write (state: AuditState, ex: AuditExchange): void {
    const p = ex.principal
    const who = { route: ex.route, reqId: ex.reqId, subject: p?.subject ?? null, clientId: p?.clientId ?? null, issuer: p?.issuer ?? null }
    const end = { upstreamStatus: ex.upstreamStatus, latencyMs: Math.round(ex.latencyMs * 100) / 100 }
    const log = this.#log.logger
    const messages = state.messages
    if (messages === undefined) {
      log.info({ ...who, method: null, ...this.#decision(ex, undefined), ...end, parseError: state.parseError ?? null }, 'audit')
      return
    }
    let written = 0
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!
      if (typeof m.method !== 'string') continue
      if (written === AUDIT_MAX_LINES_PER_REQUEST) {
        // A batch's size is the caller's choice: bound the lines (and the time spent writing them).
        let omitted = 0
        for (let j = i; j < messages.length; j++) if (typeof messages[j]!.method === 'string') omitted++
        log.info({ ...who, method: null, ...this.#decision(ex, undefined), ...end, omittedMessages: omitted }, 'audit')
        return
      }
      written++
      const line: Record<string, unknown> = { ...who, method: cut(m.method) }
      const field = TARGET_FIELD.get(m.method)
      const key = targetParamOf(m.method)
      if (field !== undefined && key !== undefined) {
        const target = (m.params as Record<string, unknown> | undefined)?.[key]
        if (typeof target === 'string') line[field] = cut(target)
      }
      Object.assign(line, this.#decision(ex, state.missing?.[i]), end)
      if (this.#includeArguments && (field === 'tool' || field === 'prompt')) {
        const args = (m.params as Record<string, unknown> | undefined)?.arguments
        if (args !== undefined) line.arguments = args
      }
      log.info(line, 'audit')
    }
  }

  #decision (ex: AuditExchange, missing: readonly string[] | undefined): Record<string, unknown> {
    // Forwarded: `outcome` only when the exchange did not end normally (upstream_error, client_closed).
    if (ex.forwarded) return ex.outcome === 'ok' ? { decision: 'allowed' } : { decision: 'allowed', outcome: ex.outcome }
    if (missing === undefined) return { decision: 'denied', reason: ex.outcome }
    if (missing.length === 0) return { decision: 'denied', reason: 'batch_refused' }
    return { decision: 'denied', reason: ex.outcome, missingScopes: missing }
  }
}
