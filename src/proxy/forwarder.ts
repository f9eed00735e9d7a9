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
import { jsonRpcError, JSONRPC_UPSTREAM_TIMEOUT, JSONRPC_UPSTREAM_UNREACHABLE, requestIdOf, type JsonRpcId } from '../mcp/jsonrpc.js'
import { cleanResponseHeaders, forgetCredentials } from './headers.js'

/** How a forwarded exchange ended, for the request log. */
export type ForwardOutcome = 'ok' | 'upstream_error' | 'client_closed'

/** Why an upstream exchange failed: no answer in time, no answer at all, or an answer the gateway must not pass on. */
export type ForwardFailure = 'timeout' | 'unreachable' | 'unfilterable'

/**
 * Rewrites a response body as it streams (SSE): `write` returns the bytes to
 * send now (possibly none), `end` what was held back. Headers are sent before
 * the first chunk. `write` may throw: the response is then cut, since its
 * status is already gone (the legacy endpoint scanner; the tools/list SSE filter).
 */
export interface StreamTransform {
  write: (chunk: Buffer) => Buffer | undefined
  end: () => Buffer | undefined
}

/**
 * Rewrites a whole response body: the body is buffered (at most `maxBytes`)
 * and the headers held until `apply` has run, so Content-Length can be set
 * for the new body. `apply` returns undefined when it cannot rewrite; that,
 * or a body over `maxBytes`, becomes a 502 (the tools/list JSON filter).
 */
export interface BufferedTransform {
  readonly maxBytes: number
  apply: (body: Buffer) => Buffer | undefined
}

export type ResponseTransform = StreamTransform | BufferedTransform

/**
 * Chooses a transform once per response, from its status and cleaned headers
 * (flat [name, value, …], names lowercased; `sse` when text/event-stream).
 * undefined: the bytes pass through untouched. 'refuse': the response cannot
 * be transformed (e.g. a content coding) and must not be sent; the client gets a 502.
 */
export type TransformChooser = (statusCode: number, headers: readonly string[], sse: boolean) => ResponseTransform | 'refuse' | undefined

export interface ForwardRequest {
  /** Upstream path with query. */
  readonly path: string
  readonly method: string
  /** Request headers as a flat [name, value, …] list, already cleaned and with identity set. */
  readonly headers: string[]
  /** Bytes as received, or (policy routes) the re-serialised JSON that was authorised. undici sets Content-Length. */
  readonly body: Buffer | string | undefined
  /** The JSON-RPC id for gateway-written errors when the body was already parsed; undefined: read from `body`. */
  readonly requestId?: JsonRpcId
  /** Response headers the gateway adds when the upstream did not set them (CORS). */
  readonly extraResponseHeaders: readonly string[]
  /** Response-body transform for this exchange (legacy SSE endpoint, tools/list filter); undefined: none. */
  readonly responseTransform: TransformChooser | undefined
  /** Called once when the exchange ends. */
  readonly onEnd: (outcome: ForwardOutcome, failure?: ForwardFailure, code?: string, cut?: boolean) => void
  /** Sees the upstream's status and cleaned headers before anything is sent on (session binding); undefined: none. */
  readonly observer?: ResponseObserver | undefined
  /** Called once when the upstream answers with an SSE stream (stream bounds); undefined: none. */
  readonly onStream?: (() => void) | undefined
}

/** Told of each upstream response as it starts: status, and headers as a flat [name, value, …] list with lowercased names. */
export interface ResponseObserver {
  responseStart: (statusCode: number, headers: readonly string[]) => void
}

/** Upstream silence past a bound: no connection, no first byte, or a stalled body. All are 504 (RFC 9110 §15.6.5). */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/** Error codes that mean "the client went away", not "the upstream failed". */
const ABORT_CODES = new Set(['UND_ERR_ABORTED', 'ABORT_ERR'])

class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse
  readonly #req: ForwardRequest
  #abort: ((err?: Error) => void) | undefined
  #scanner: StreamTransform | undefined
  /** Set while a whole body is being buffered; headers wait in #heldStatus/#heldHeaders. */
  #buffered: BufferedTransform | undefined
  #chunks: Buffer[] | undefined
  #bufferedBytes = 0
  #heldStatus = 0
  #heldHeaders: string[] | undefined
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
    this.#req.observer?.responseStart(statusCode, headers)
    if (sse) this.#req.onStream?.()
    const choose = this.#req.responseTransform
    if (choose !== undefined) {
      const t = choose(statusCode, headers, sse)
      if (t === 'refuse') {
        this.#refuse('ERR_UNFILTERABLE_RESPONSE')
        return false
      }
      if (t !== undefined) {
        if ('apply' in t) {
          this.#buffered = t
          this.#chunks = []
          this.#heldStatus = statusCode
          this.#heldHeaders = headers
          return true
        }
        this.#scanner = t
      }
    }
    try {
      res.writeHead(statusCode, headers)
    } catch {
      // An upstream header Node refuses to send (invalid characters): a bad gateway.
      // Answer first, so the abort that follows is not mistaken for the client leaving.
      this.#fail('unreachable', 'ERR_INVALID_UPSTREAM_HEADER')
      this.#abort?.()
      return false
    }
    if (sse) {
      res.flushHeaders()
      // A stream may stay open for hours: keep no copy of the caller's token for that long.
      forgetCredentials(res.req)
    }
    return true
  }

  onData (chunk: Buffer): boolean {
    if (this.#buffered !== undefined) {
      // Already answered (502 over the cap): late chunks before the abort lands are dropped.
      if (this.#done) return false
      this.#bufferedBytes += chunk.length
      if (this.#bufferedBytes > this.#buffered.maxBytes) {
        this.#chunks = undefined
        this.#refuse('ERR_RESPONSE_TOO_LARGE_TO_FILTER')
        return false
      }
      this.#chunks!.push(chunk)
      return true
    }
    let out: Buffer | undefined = chunk
    if (this.#scanner !== undefined) {
      try {
        out = this.#scanner.write(chunk)
      } catch (err) {
        this.#refuse((err as { code?: string }).code ?? 'ERR_RESPONSE_TRANSFORM')
        return false
      }
    }
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
    if (this.#buffered !== undefined) {
      this.#completeBuffered(this.#buffered)
      return
    }
    if (this.#scanner !== undefined) {
      let rest: Buffer | undefined
      try {
        rest = this.#scanner.end()
      } catch (err) {
        this.#refuse((err as { code?: string }).code ?? 'ERR_RESPONSE_TRANSFORM')
        return
      }
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

  #completeBuffered (t: BufferedTransform): void {
    const chunks = this.#chunks!
    this.#chunks = undefined
    const body = t.apply(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
    if (body === undefined) {
      this.#refuse('ERR_UNFILTERABLE_RESPONSE')
      return
    }
    const headers = this.#heldHeaders!
    let set = false
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === 'content-length') {
        headers[i + 1] = String(body.length)
        set = true
      }
    }
    if (!set) headers.push('content-length', String(body.length))
    try {
      this.#res.writeHead(this.#heldStatus, headers)
    } catch {
      this.#fail('unreachable', 'ERR_INVALID_UPSTREAM_HEADER')
      return
    }
    this.#res.end(body)
    this.#finish('ok')
  }

  /**
   * The upstream answered with something that must not be passed on: a 502 while
   * the headers are unsent, else the client connection is cut; then the upstream
   * request is aborted. Answer first, so the abort is not mistaken for the client leaving.
   */
  #refuse (code: string): void {
    this.#fail('unfilterable', code)
    this.#abort?.()
  }

  #fail (failure: ForwardFailure, code: string | undefined): void {
    const res = this.#res
    if (res.headersSent) {
      // Mid-response: the status is gone; cutting the connection is the only honest signal.
      res.destroy()
      this.#finish('upstream_error', failure, code, true)
      return
    } else {
      const timeout = failure === 'timeout'
      const id = this.#req.requestId !== undefined ? this.#req.requestId : requestIdOf(this.#req.body)
      const message = timeout
        ? 'The upstream MCP server did not respond in time'
        : failure === 'unfilterable' ? 'The upstream response could not be filtered for this caller' : 'The upstream MCP server is unreachable'
      const body = jsonRpcError(id, timeout ? JSONRPC_UPSTREAM_TIMEOUT : JSONRPC_UPSTREAM_UNREACHABLE, message)
      const extra = this.#req.extraResponseHeaders
      const headers = ['content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), ...extra]
      res.writeHead(timeout ? 504 : 502, headers)
      res.end(body)
    }
    this.#finish('upstream_error', failure, code)
  }

  #finish (outcome: ForwardOutcome, failure?: ForwardFailure, code?: string, cut = false): void {
    if (this.#done) return
    this.#done = true
    this.#req.onEnd(outcome, failure, code, cut)
  }
}

/** The exchange a response belongs to, read by {@link responseClosed}. */
const kForward = Symbol('forward')
type ForwardedResponse = ServerResponse & { [kForward]?: ForwardHandler }

/** One 'close' listener for every forwarded response (`this` is the response): no closure per request. */
function responseClosed (this: ForwardedResponse): void {
  if (!this.writableFinished) this[kForward]!.cancel()
}

/**
 * Forward one request. The response (or a 502/504 JSON-RPC error) is written
 * to `res`; a client disconnect aborts the upstream request.
 */
export function forward (pool: Dispatcher, res: ServerResponse, req: ForwardRequest): void {
  const handler = new ForwardHandler(res, req)
  ;(res as ForwardedResponse)[kForward] = handler
  res.on('close', responseClosed)
  pool.dispatch({ path: req.path, method: req.method as Dispatcher.HttpMethod, headers: req.headers, body: req.body }, handler as unknown as Dispatcher.DispatchHandler)
}
