/**
 * The forwarding hot path: one undici `dispatch` per request, its handler
 * writing straight into the client's ServerResponse. No intermediate streams,
 * no header objects copied twice, no retries (a POST may be a tool call).
 *
 * Chosen over @fastify/reply-from after measuring (BENCHMARKS.md): the stream
 * plumbing and per-request closures of the generic proxy cost more CPU than
 * the authentication itself once tokens are cached.
 */
import type { ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { jsonRpcError, JSONRPC_UPSTREAM_TIMEOUT, JSONRPC_UPSTREAM_UNREACHABLE, requestIdOf } from '../mcp/jsonrpc.js'
import type { EndpointScanner } from '../mcp/sse.js'
import { cleanResponseHeaders } from './headers.js'

/** How a forwarded exchange ended, for the request log. */
export type ForwardOutcome = 'ok' | 'upstream_error' | 'client_closed'

export interface ForwardRequest {
  /** Upstream path with query. */
  readonly path: string
  readonly method: string
  /** Request headers as a flat [name, value, …] list, already cleaned and with identity set. */
  readonly headers: string[]
  readonly body: Buffer | undefined
  /** Response headers the gateway adds when the upstream did not set them (CORS). */
  readonly extraResponseHeaders: readonly string[]
  /** For GET: makes a rewriter for the legacy SSE endpoint event; undefined for no rewriting. */
  readonly sseRewriter: (() => EndpointScanner) | undefined
  /** Called once when the exchange ends. */
  readonly onEnd: (outcome: ForwardOutcome, failure?: 'timeout' | 'unreachable', code?: string, cut?: boolean) => void
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/** Error codes that mean "the client went away", not "the upstream failed". */
const ABORT_CODES = new Set(['UND_ERR_ABORTED', 'ABORT_ERR'])

class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse
  readonly #req: ForwardRequest
  #abort: ((err?: Error) => void) | undefined
  #scanner: EndpointScanner | undefined
  #paused = false
  #resume: (() => void) | undefined
  #done = false
  clientGone = false

  constructor (res: ServerResponse, req: ForwardRequest) {
    this.#res = res
    this.#req = req
  }

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
    if (this.clientGone) abort()
  }

  /** Client disconnected before the exchange ended: abort the upstream request. */
  cancel (): void {
    if (this.#done) return
    this.clientGone = true
    this.#abort?.()
    this.#finish('client_closed')
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    const res = this.#res
    this.#resume = resume
    const { headers, sse } = cleanResponseHeaders(rawHeaders, this.#req.extraResponseHeaders)
    if (sse && this.#req.sseRewriter !== undefined) this.#scanner = this.#req.sseRewriter()
    try {
      res.writeHead(statusCode, headers)
    } catch {
      // An upstream header Node refuses to send (invalid characters): a bad gateway.
      // Answer first, so the abort that follows is not mistaken for the client leaving.
      this.#fail('unreachable', 'ERR_INVALID_UPSTREAM_HEADER')
      this.#abort?.()
      return false
    }
    if (sse) res.flushHeaders()
    return true
  }

  onData (chunk: Buffer): boolean {
    let out: Buffer | undefined = chunk
    if (this.#scanner !== undefined) out = this.#scanner.write(chunk)
    if (out === undefined || out.length === 0) return true
    if (!this.#res.write(out)) {
      // Backpressure from the client: stop reading the upstream until it drains.
      if (!this.#paused) {
        this.#paused = true
        this.#res.once('drain', () => {
          this.#paused = false
          this.#resume?.()
        })
      }
      return false
    }
    return true
  }

  onComplete (): void {
    if (this.#done) return
    if (this.#scanner !== undefined) {
      const rest = this.#scanner.end()
      if (rest !== undefined && rest.length > 0) this.#res.write(rest)
    }
    this.#res.end()
    this.#finish('ok')
  }

  onError (err: Error): void {
    if (this.#done) return
    const code = (err as { code?: string }).code
    if (this.clientGone || (code !== undefined && ABORT_CODES.has(code))) {
      this.#finish('client_closed')
      return
    }
    this.#fail(code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'unreachable', code)
  }

  #fail (failure: 'timeout' | 'unreachable', code: string | undefined): void {
    const res = this.#res
    if (res.headersSent) {
      // Mid-response: the status is gone; cutting the connection is the only honest signal.
      res.destroy()
      this.#finish('upstream_error', failure, code, true)
      return
    } else {
      const timeout = failure === 'timeout'
      const body = jsonRpcError(
        requestIdOf(this.#req.body),
        timeout ? JSONRPC_UPSTREAM_TIMEOUT : JSONRPC_UPSTREAM_UNREACHABLE,
        timeout ? 'The upstream MCP server did not respond in time' : 'The upstream MCP server is unreachable'
      )
      const extra = this.#req.extraResponseHeaders
      const headers = ['content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), ...extra]
      res.writeHead(timeout ? 504 : 502, headers)
      res.end(body)
    }
    this.#finish('upstream_error', failure, code)
  }

  #finish (outcome: ForwardOutcome, failure?: 'timeout' | 'unreachable', code?: string, cut = false): void {
    if (this.#done) return
    this.#done = true
    this.#req.onEnd(outcome, failure, code, cut)
  }
}

/**
 * Forward one request. The response (or a 502/504 JSON-RPC error) is written
 * to `res`; a client disconnect aborts the upstream request.
 */
export function forward (pool: Dispatcher, res: ServerResponse, req: ForwardRequest): void {
  const handler = new ForwardHandler(res, req)
  res.once('close', () => { if (!res.writableFinished) handler.cancel() })
  pool.dispatch({ path: req.path, method: req.method as Dispatcher.HttpMethod, headers: req.headers, body: req.body }, handler as unknown as Dispatcher.DispatchHandler)
}
