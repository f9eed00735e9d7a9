/**
 * pino options. The gateway writes its own one-line-per-request record and
 * never logs raw headers, URLs with queries, or library error messages that
 * could quote a token. Redaction is a second line of defence for anything that
 * slips into a log object anyway.
 */
import { writeSync } from 'node:fs'
import pino, { type Logger, type LoggerOptions, type DestinationStream } from 'pino'
import { LOG_BUFFER_BYTES, LOG_FAILURE_REPORT_INTERVAL_MS, LOG_FLUSH_INTERVAL_MS, LOG_MAX_HELD_BYTES } from '../config/defaults.js'

/** The `service` field of every line. */
const SERVICE = 'mcp-auth-gateway'

/** Paths redacted wherever they appear in a log object. */
export const REDACT_PATHS = [
  'authorization', 'headers.authorization', 'req.headers.authorization', '*.headers.authorization',
  'cookie', 'headers.cookie', 'req.headers.cookie', '*.headers.cookie',
  'headers["proxy-authorization"]', 'req.headers["proxy-authorization"]',
  'token', 'accessToken', 'access_token', 'clientSecret', 'client_secret', 'secret', 'password',
  '*.token', '*.accessToken', '*.access_token', '*.clientSecret', '*.client_secret', '*.secret', '*.password'
]

/** Strip the query string: it may hold session ids or (rejected) access tokens. */
export function safePath (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    base: { service: SERVICE },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      // Fastify's own logs (errors, startup) use these: method and path only.
      req: (req: { method?: string, url?: string, id?: string }) => ({ id: req.id, method: req.method, path: safePath(req.url ?? '') }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      // jose messages may quote claims: for JOSE errors only the stable code is kept.
      err: (err: { name?: string, code?: string, statusCode?: number, message?: string }) => ({
        type: err.name,
        code: err.code,
        statusCode: err.statusCode,
        message: typeof err.code === 'string' && err.code.startsWith('ERR_J') ? undefined : err.message
      })
    }
  }
}

export function createLogger (level: string, destination?: DestinationStream): Logger {
  return createLoggers(level, destination).logger
}

let lastMs = -1
let lastTime = ''
let lastSecond = -1
let secondPrefix = ''
/**
 * pino's isoTime, reusing the string within one millisecond and its
 * `YYYY-MM-DDTHH:MM:SS.` part within one second: at thousands of request
 * lines a second, building a Date and its ISO string (~1.2 µs) showed in
 * profiles (~1.4 % of CPU per request, then ~1 µs per line when most lines
 * fell in a new millisecond).
 */
export function isoTimeCached (): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    const second = Math.floor(now / 1000)
    if (second !== lastSecond) {
      lastSecond = second
      secondPrefix = ',"time":"' + new Date(second * 1000).toISOString().slice(0, 20)
    }
    const ms = now - second * 1000
    lastTime = secondPrefix + (ms < 10 ? '00' : ms < 100 ? '0' : '') + String(ms) + 'Z"'
  }
  return lastTime
}

/**
 * The gateway's two loggers, writing to one destination:
 * - `logger`, with redaction and serializers, for everything that may carry
 *   foreign objects (errors, warnings, startup);
 * - `access`, for the one-line-per-request record only. Its objects are built
 *   field by field by the gateway (plugins/request-log.ts) and never hold a
 *   header or a token, so it skips redaction, which measured at ~25 µs a line.
 */
export interface Loggers {
  readonly logger: Logger
  readonly access: Logger
  /** Write one request record through `access` (at its level, info), serialised by {@link requestLineWriter}. */
  readonly requestLine: (line: RequestLine) => void
  /** Write out buffered lines now (synchronously). A no-op for a caller-given destination. */
  readonly flush: () => void
  /** Stop the periodic flush and write out what is buffered. */
  readonly close: () => void
}

/**
 * Lines, in order, handed to a synchronous sonic-boom in batches of at least
 * LOG_BUFFER_BYTES bytes. sonic-boom's own batching (`minLength`) runs
 * `Buffer.byteLength` on its whole pending buffer for every line it appends;
 * handing it one string per batch does that once per batch (BENCHMARKS.md).
 *
 * Each line is copied into a reused byte buffer as it arrives, so no line
 * string outlives its request. Holding the strings until the batch filled kept
 * them alive across scavenges; once an old-space collection had run (after the
 * process sat idle, for one) ~2 MB survived every scavenge from then on, against
 * ~0.1 MB with the copy, and V8's GC threads cost twice the CPU (BENCHMARKS.md,
 * "After idle").
 */
export class LineBatch implements DestinationStream {
  readonly #dest: DestinationStream
  // Room for a full batch plus the line that completes it; a longer line bypasses the buffer.
  readonly #buf = Buffer.allocUnsafe(2 * LOG_BUFFER_BYTES)
  #bytes = 0

  constructor (dest: DestinationStream) {
    this.#dest = dest
  }

  write (line: string): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8 (a surrogate pair: 4 for 2 units).
    const worst = 3 * line.length
    if (this.#bytes + worst > this.#buf.length) {
      this.drain()
      if (worst > this.#buf.length) {
        this.#dest.write(line)
        return
      }
    }
    this.#bytes += this.#buf.write(line, this.#bytes)
    if (this.#bytes >= LOG_BUFFER_BYTES) this.drain()
  }

  /** Hand what is batched to the destination. */
  drain (): void {
    if (this.#bytes === 0) return
    const n = this.#bytes
    this.#bytes = 0
    this.#dest.write(this.#buf.toString('utf8', 0, n))
  }
}

/** Batches not closed yet: drained when the process ends. */
const openBatches = new Set<LineBatch>()
let exitHookInstalled = false

function drainOnExit (batch: LineBatch): void {
  openBatches.add(batch)
  if (exitHookInstalled) return
  exitHookInstalled = true
  const drainAll = (): void => {
    for (const b of openBatches) {
      try {
        b.drain()
      } catch {
        // The stream is already gone: nothing more can be written.
      }
    }
  }
  // 'beforeExit': the event loop ran dry; 'exit': process.exit() or an uncaught exception.
  // Both run synchronously, and the writes below are synchronous, so nothing is left behind.
  process.prependListener('beforeExit', drainAll)
  process.prependListener('exit', drainAll)
}

/**
 * A file descriptor or file written in batches ({@link LineBatch}): when
 * LOG_BUFFER_BYTES have accumulated, every LOG_FLUSH_INTERVAL_MS, on flush(),
 * close() and when the process ends.
 *
 * The writes are synchronous. An asynchronous sonic-boom keeps one write in
 * flight on libuv's thread pool, and process.exit() (or a flushSync during it)
 * then wrote the later lines first, or lost the in-flight ones: out of order in
 * 9 of 100 runs here (regression test in test/unit/logger.test.ts). A
 * synchronous 64 KiB write also costs less CPU (~45 µs to a file, against ~90 µs
 * through the thread pool) and blocks the event loop for as long, once per
 * ~240 request lines. A log reader that stops reading holds the gateway up
 * rather than growing its memory without bound (pino's own default for stdout).
 */
export interface BatchedStream {
  /** Where loggers write. */
  readonly batch: LineBatch
  /** Write out what is batched now (and retry what a failing destination holds). */
  readonly flush: () => void
  /** Write out what is batched, then reopen a file (after logrotate moved it). */
  readonly reopen: () => void
  /** Stop the periodic flush and write out what is batched; `end` also closes the file descriptor. */
  readonly close: (end: boolean) => void
}

/** What the owner of a {@link BatchedStream} is told when its destination fails, and when it works again. */
export interface WriteFailureReport {
  /**
   * A write failed (disk full, I/O error, the reader gone: EPIPE, after which
   * pino discards every line). At most once per LOG_FAILURE_REPORT_INTERVAL_MS.
   * `droppedBytes`: log bytes dropped so far, past LOG_MAX_HELD_BYTES.
   */
  failed: (code: string, droppedBytes: number) => void
  /** The held lines were written after a failure; `droppedBytes` were lost meanwhile. */
  resumed: (droppedBytes: number) => void
}

/**
 * Open a batched, synchronous writer on `dest` (1 stdout, 2 stderr, or a file
 * appended to). A destination that refuses a write never throws at the logger:
 * sonic-boom holds the failed lines (at most LOG_MAX_HELD_BYTES, beyond which
 * new lines are dropped and counted), every flush retries them, and `report`
 * is told of the failure and of the recovery.
 */
export function openBatchedStream (dest: number | string, report: WriteFailureReport): BatchedStream {
  const stream = pino.destination({ dest, sync: true, mkdir: false, append: true, maxLength: LOG_MAX_HELD_BYTES })
  let dropped = 0
  let failing = false
  let closed = false
  let errored = false
  let lastReport = Number.NEGATIVE_INFINITY
  const failed = (err: NodeJS.ErrnoException): void => {
    errored = true
    if (err.code === 'EPIPE') closed = true
    failing = !closed
    const now = Date.now()
    if (now - lastReport < LOG_FAILURE_REPORT_INTERVAL_MS) return
    lastReport = now
    report.failed(typeof err.code === 'string' ? err.code : 'unknown error', dropped)
  }
  // Without a listener the error would be thrown at whichever request or timer wrote the batch.
  stream.on('error', failed)
  stream.on('drop', (data: string) => { dropped += Buffer.byteLength(data) })
  const batch = new LineBatch(stream as DestinationStream)
  drainOnExit(batch)
  const flush = (): void => {
    batch.drain()
    if (!failing) return
    // sonic-boom retries held lines only when something is written, and writes nothing more
    // once LOG_MAX_HELD_BYTES are held: an empty write retries them, once per flush.
    // (Not flushSync(): sonic-boom 4 retries a failing flushSync forever, 100 ms apart.)
    errored = false
    stream.write('')
    if (errored) return
    failing = false
    lastReport = Number.NEGATIVE_INFINITY
    report.resumed(dropped)
  }
  const timer = setInterval(flush, LOG_FLUSH_INTERVAL_MS)
  timer.unref()
  return {
    batch,
    flush,
    reopen: () => {
      flush()
      try {
        stream.reopen()
      } catch {
        // A synchronous sonic-boom throws when the file cannot be opened (its directory is gone),
        // and also emits the error on its 'error' event on the next tick, reported there.
        // Lines go on to the file descriptor open before.
      }
    },
    close: (end) => {
      clearInterval(timer)
      flush()
      openBatches.delete(batch)
      if (end) stream.end()
    }
  }
}

/**
 * With no destination given, lines go to stdout through {@link openBatchedStream}.
 * One write per request line was ~10 % of the gateway's CPU per request
 * (BENCHMARKS.md).
 */
export function createLoggers (level: string, destination?: DestinationStream): Loggers {
  const out = destination === undefined ? openBatchedStream(1, STDOUT_FAILURE_REPORT) : undefined
  const dest = destination ?? out!.batch
  const logger = pino(loggerOptions(level), dest)
  const access = pino({ level, base: { service: SERVICE }, timestamp: isoTimeCached }, dest)
  const requestLine = requestLineWriter(access, dest)
  if (out === undefined) return { logger, access, requestLine, flush: () => {}, close: () => {} }
  // stdout is not ended: other code (and the process) may still write to it.
  return { logger, access, requestLine, flush: out.flush, close: () => { out.close(false) } }
}

/**
 * What a failing stdout does: the gateway keeps serving, and says so on stderr
 * (the log cannot). Only the error code is written, never a line's content.
 */
const STDOUT_FAILURE_REPORT: WriteFailureReport = {
  failed: (code, droppedBytes) => {
    toStderr(code === 'EPIPE'
      ? 'mcp-auth-gateway: stdout was closed (EPIPE): log lines are discarded from now on\n'
      : `mcp-auth-gateway: writing logs to stdout failed (${code}): the gateway keeps serving; lines are held ` +
        `(up to ${LOG_MAX_HELD_BYTES / 1048576} MiB) and retried every second, then dropped (${droppedBytes} bytes dropped so far)\n`)
  },
  resumed: (droppedBytes) => {
    toStderr(`mcp-auth-gateway: writing logs to stdout works again (${droppedBytes} bytes of log lines dropped meanwhile)\n`)
  }
}

function toStderr (text: string): void {
  try {
    writeSync(2, text)
  } catch {
    // stderr failing too: nowhere left to say it.
  }
}

/**
 * The one record per request (plugins/request-log.ts). Built field by field by
 * the gateway: never a header, a token or a query string.
 */
export interface RequestLine {
  readonly reqId: string
  /** The route id; null outside the MCP routes. */
  readonly route: string | null
  readonly method: string
  /** The path without its query string ({@link safePath}). */
  readonly path: string
  /** null when the client left before the response ended. */
  readonly status: number | null
  readonly subject: string | undefined
  readonly clientId: string | undefined
  readonly issuer: string | undefined
  readonly outcome: string
  readonly durationMs: number
}

/** pino's numeric level for info: request records are written at it. */
const INFO_LEVEL = 30

/** Characters a JSON string may hold unescaped, in printable ASCII (RFC 8259 §7: not `"`, `\\`, or controls). */
const JSON_PLAIN_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/** A JSON string literal: quoted as is when nothing needs escaping (the common case), else JSON.stringify. */
function jsonString (v: string): string {
  return JSON_PLAIN_RE.test(v) ? '"' + v + '"' : JSON.stringify(v)
}

/**
 * A request record as the same JSON line pino writes for
 * `access.info(line, 'request')` (level, time, service, the fields in order,
 * undefined ones left out, msg), serialised here: pino's generic serialiser
 * cost ~6 µs per request line on the hot path, this well under 1 µs
 * (BENCHMARKS.md). Every string goes through {@link jsonString}, so a subject
 * or path cannot break the line. `access`'s level is read per line (SIGHUP may change it).
 */
export function requestLineWriter (access: Logger, dest: DestinationStream): (line: RequestLine) => void {
  return (r) => {
    if (access.levelVal > INFO_LEVEL) return
    let s = '{"level":30' + isoTimeCached() + ',"service":"' + SERVICE + '","reqId":' + jsonString(r.reqId) +
      ',"route":' + (r.route === null ? 'null' : jsonString(r.route)) +
      ',"method":' + jsonString(r.method) + ',"path":' + jsonString(r.path) +
      ',"status":' + (r.status === null ? 'null' : String(r.status))
    if (r.subject !== undefined) s += ',"subject":' + jsonString(r.subject)
    if (r.clientId !== undefined) s += ',"clientId":' + jsonString(r.clientId)
    if (r.issuer !== undefined) s += ',"issuer":' + jsonString(r.issuer)
    dest.write(s + ',"outcome":' + jsonString(r.outcome) + ',"durationMs":' + String(r.durationMs) + ',"msg":"request"}\n')
  }
}
