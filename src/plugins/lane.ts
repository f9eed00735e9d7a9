/**
 * The lane: the common request of a protected route, taken before Fastify
 * sees it. That request is a POST to the route's exact path, from a
 * non-browser client (no Origin), with a Content-Length body within the limit
 * and a bearer token the gateway has already verified (a cache hit; one without
 * the route's scopes is answered 403 here, as Fastify's route would). From there it runs the route's own steps, the ones
 * Fastify's route runs too (plugins/exchange.ts): session gate, policy, stream
 * bounds, forwarding, the request line, metrics and audit.
 *
 * Everything else goes to Fastify untouched, and nothing of the request has
 * been consumed by then: no token or an unknown one, an Origin header, a
 * query string, a chunked or oversized body, another content type on a policy
 * route, a gateway that is closing. So every refusal before the body is read
 * is written in one place (Fastify's route), except the rate limits' 429/503,
 * which both edges answer through the same checks (plugins/rate-limit.ts).
 *
 * Why: a lane prototype took a cached-token POST from 142 to 131 µs; with perIp
 * and perPrincipal limits, taking those routes too went from 58.1 to 50.9 µs
 * (BENCHMARKS.md, "Findings").
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { SessionExchange } from '../session/binding.js'
import type { AuditState } from '../observability/audit.js'
import { answerInternalError, type Exchange } from './exchange.js'
import { writeJsonError, errorBody } from './http-errors.js'
import { outcomeOf, recordRequest, type RequestRecording } from './request-log.js'

/** A route's lane entry: true when it took the request (and will answer it), false to leave it to Fastify. */
export type LaneRoute = (req: IncomingMessage, res: ServerResponse) => boolean

/** Request ids shared by Fastify (genReqId) and the lane, so they never repeat within a gateway. */
export function createRequestIds (): () => string {
  let next = 0
  return () => 'req-' + (next++).toString(36)
}

const NONE: readonly string[] = []

/** An {@link Exchange} of the lane: plain fields, no framework objects. */
export class LaneExchange implements Exchange {
  readonly id: string
  readonly method = 'POST'
  readonly url: string
  readonly raw: IncomingMessage
  readonly res: ServerResponse
  readonly log: Logger
  principal: Principal | null
  outcome: string | null = null
  session: SessionExchange | null = null
  audit: AuditState | null = null
  readonly #rec: RequestRecording
  readonly #start: number
  #recorded = false

  constructor (id: string, req: IncomingMessage, res: ServerResponse, log: Logger, rec: RequestRecording, principal: Principal, start: number) {
    this.id = id
    this.url = req.url!
    this.raw = req
    this.res = res
    this.log = log
    this.#rec = rec
    this.principal = principal
    this.#start = start
  }

  elapsedMs (): number { return performance.now() - this.#start }
  take (): void {}

  sendError (status: number, error: string, description: string, headers: readonly string[] = NONE): void {
    writeJsonError(this.res, status, errorBody(error, description), headers)
    this.finished(false)
  }

  sendJsonRpcError (status: number, body: string, headers: readonly string[] = NONE): void {
    writeJsonError(this.res, status, body, headers)
    this.finished(false)
  }

  finished (aborted: boolean): void {
    if (this.#recorded) return
    this.#recorded = true
    recordRequest(this.#rec, this.id, this.method, this.url, this.res, this.principal, this.outcome, outcomeOf(aborted, this.outcome, this.res.statusCode), aborted, this.elapsedMs(), this.audit)
  }
}

/** The gateway's lane: the routes that take part, by exact path. */
export class Lane {
  readonly #routes = new Map<string, LaneRoute>()
  readonly #nextId: () => string
  readonly #log: Logger
  #closed = false
  /** Requests the lane has taken (tests and diagnostics; a plain counter). */
  taken = 0
  /** limits.maxBodyBytes: only bodies whose Content-Length is within it are taken (Fastify's bodyLimit answers the rest). */
  readonly maxBodyBytes: number

  constructor (nextId: () => string, log: Logger, maxBodyBytes: number) {
    this.#nextId = nextId
    this.#log = log
    this.maxBodyBytes = maxBodyBytes
  }

  add (path: string, route: LaneRoute): void {
    this.#routes.set(path, route)
  }

  /** From now on every request goes to Fastify (it answers 503 while closing). */
  close (): void {
    this.#closed = true
  }

  /** Fastify's request handler with the lane in front. */
  wrap (fastify: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      if (req.method === 'POST' && !this.#closed) {
        const route = this.#routes.get(req.url!)
        if (route !== undefined && route(req, res)) {
          this.taken++
          return
        }
      }
      fastify(req, res)
    }
  }

  /** An exchange for a request a route has taken. */
  exchange (req: IncomingMessage, res: ServerResponse, rec: RequestRecording, principal: Principal, start: number): LaneExchange {
    return new LaneExchange(this.#nextId(), req, res, this.#log, rec, principal, start)
  }
}

/**
 * Read the body (its Content-Length is within the limit, so Node's parser
 * bounds it), then run `then` on it. A client that leaves first is recorded
 * as `client_closed`; an exception in `then` is a 500, as Fastify's error
 * handler would answer it.
 */
export function readBody (x: LaneExchange, then: (x: Exchange, body: Buffer) => void): void {
  const req = x.raw
  // The client left while an earlier step waited on a store (rate limit, session): record it, read nothing.
  if (req.destroyed) {
    x.finished(true)
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  req.on('error', () => { x.finished(true) })
  req.on('end', () => {
    try {
      then(x, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
    } catch (err) {
      answerInternalError(x, err)
    }
  })
}
