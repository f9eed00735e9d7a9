/**
 * Session binding (MCP security best practices, "Session Hijacking"): a
 * session id is honoured only for the identity (issuer + subject) it was
 * created for. No fastify here; plugins/session-gate.ts adapts it to routes.
 *
 * - Recorded: a 2xx response that sets `Mcp-Session-Id` (Streamable HTTP; the
 *   initialize answer), and the session id in the URL of a legacy HTTP+SSE
 *   `endpoint` event (`sessionId`, or `session_id` as the Python SDK names it).
 * - Checked: every request carrying an `Mcp-Session-Id` header or a legacy
 *   session query parameter. Another identity's session gets 404 (the body an
 *   SDK server gives for an unknown session) and is never forwarded.
 * - An `Mcp-Session-Id` the gateway has no record of is forwarded (the upstream
 *   decides: it may predate a gateway restart) and, if the upstream accepts it
 *   (2xx), bound to that caller from then on. A legacy session id with no
 *   record is refused: legacy sessions live only as long as their SSE stream,
 *   which this gateway (or, with Redis, a replica) carried and recorded, and
 *   refusing unknown ones leaves no room for upstreams that normalise ids
 *   (Python parses them as UUIDs) to be reached with a variant spelling.
 * - Ended: by a 2xx DELETE or an upstream 404 on the path the session was
 *   bound on, when a legacy SSE stream closes, or after the idle TTL (every
 *   use refreshes it, and so does a stream of the session while it is open).
 *
 * Store keys are SHA-256 hashes of the session id (bounded size whatever the
 * client sends; no raw ids in Redis); values are `<owner> <path>` with the
 * owner a SHA-256 hash of the identity. Logs show a 12-character prefix of the key.
 */
import { hash } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import { jsonRpcError } from '../mcp/jsonrpc.js'
import type { Redis } from 'ioredis'
import type { SessionsConfig } from '../config/types.js'
import { isPromise, MemorySessionStore, type Awaitable, type SessionStore } from './store.js'
import { RedisSessionStore } from './redis-store.js'
import { SESSION_MEMORY_MAX_ENTRIES, SESSION_STORE_RETRY_AFTER_SECONDS, SESSION_STORE_WARN_INTERVAL_MS } from '../config/defaults.js'

/** The Streamable HTTP session header (MCP transports, session management), lowercased. */
export const SESSION_HEADER = 'mcp-session-id'

/** Legacy HTTP+SSE session query parameters, lowercased: TypeScript SDK `sessionId`, Python SDK `session_id`. Matched case-insensitively (ASP.NET reads queries so). */
const LEGACY_PARAMS: ReadonlySet<string> = new Set(['sessionid', 'session_id'])

/** JSON-RPC code the MCP SDK servers answer an unknown session with (TypeScript SDK streamableHttp.ts). */
export const JSONRPC_SESSION_NOT_FOUND = -32001

/** Characters of the session key logged to correlate lines (never the session id itself). */
const LOG_HASH_CHARS = 12

/** Open-stream bindings are refreshed every third of the idle TTL, but not more often than this. */
const HOLD_MIN_INTERVAL_MS = 100

/** Why a request carrying a session id is refused, and how it is answered. */
export interface SessionRefusal {
  readonly status: number
  /** The request log's outcome. */
  readonly outcome: 'session_mismatch' | 'session_not_found' | 'session_store_unavailable'
  /** JSON body, already serialised. */
  readonly body: string
  /** `Retry-After` seconds, for 503. */
  readonly retryAfterSeconds: number | undefined
}

/** The 404 body: what the TypeScript SDK's servers answer for an unknown session, so a foreign session looks unknown. */
export const SESSION_NOT_FOUND_BODY = jsonRpcError(null, JSONRPC_SESSION_NOT_FOUND, 'Session not found')

const MISMATCH: SessionRefusal = Object.freeze({ status: 404, outcome: 'session_mismatch', body: SESSION_NOT_FOUND_BODY, retryAfterSeconds: undefined })
const NOT_FOUND: SessionRefusal = Object.freeze({ status: 404, outcome: 'session_not_found', body: SESSION_NOT_FOUND_BODY, retryAfterSeconds: undefined })
const UNAVAILABLE: SessionRefusal = Object.freeze({
  status: 503,
  outcome: 'session_store_unavailable',
  body: JSON.stringify({ error: 'temporarily_unavailable', error_description: 'The session store is unavailable; retry later' }),
  retryAfterSeconds: SESSION_STORE_RETRY_AFTER_SECONDS
})

/** The session ids a request carries. */
export interface SessionIds {
  /** `Mcp-Session-Id` values: the header as received, plus each comma-separated part when it has commas. */
  readonly header: readonly string[]
  /** Legacy session query parameter values, decoded. */
  readonly legacy: readonly string[]
}

const NONE: readonly string[] = Object.freeze([])

/** The store key of a session id: SHA-256, base64url (43 characters). */
export function sessionKey (id: string): string {
  return hash('sha256', id, 'base64url')
}

const owners = new WeakMap<Principal, string>()

/** The binding owner: a hash of issuer and subject, cached per principal (principals are cached per token). */
export function ownerOf (principal: Principal): string {
  let o = owners.get(principal)
  if (o === undefined) {
    o = hash('sha256', JSON.stringify([principal.issuer, principal.subject]), 'base64url')
    owners.set(principal, o)
  }
  return o
}

/**
 * The session ids of a request, or undefined when it carries none (the common
 * case for stateless traffic; nothing is allocated then).
 *
 * Repeated `Mcp-Session-Id` headers reach here joined with ", " (Node); an
 * upstream may read the first, the last or the whole value, so each part is
 * checked as well as the whole.
 */
export function sessionIdsOf (header: string | string[] | undefined, url: string): SessionIds | undefined {
  let h: string[] | undefined
  if (header !== undefined) {
    const value = Array.isArray(header) ? header.join(', ') : header
    if (value !== '') {
      h = [value]
      if (value.includes(',')) {
        for (const part of value.split(',')) {
          const p = part.trim()
          if (p !== '' && !h.includes(p)) h.push(p)
        }
      }
    }
  }
  let l: string[] | undefined
  const q = url.indexOf('?')
  if (q !== -1 && q < url.length - 1) {
    // URLSearchParams decodes names and values (and + as space) as the upstream frameworks do.
    for (const [name, value] of new URLSearchParams(url.slice(q + 1))) {
      if (LEGACY_PARAMS.has(name.toLowerCase())) (l ??= []).push(value)
    }
  }
  if (h === undefined && l === undefined) return undefined
  return { header: h ?? NONE, legacy: l ?? NONE }
}

/** A session check's answer: the exchange to watch, or a refusal. */
export type SessionCheck = SessionExchange | SessionRefusal

export interface SessionBinderOptions {
  readonly store: SessionStore
  /** deny: 503 when the store fails; allow: forward unchecked. */
  readonly onStoreError: 'deny' | 'allow'
  readonly idleTtlMs: number
  readonly logger: Logger
}

/** Per-request logging context. */
export interface SessionLogContext {
  readonly reqId: string
  readonly route: string
}

/** One per gateway: the store, the fail mode, the open-stream refresher and rate-limited warnings. */
export class SessionBinder {
  readonly store: SessionStore
  readonly #allow: boolean
  readonly #logger: Logger
  readonly #holdIntervalMs: number
  /** Keys of sessions with an open stream through this process → number of such streams. */
  readonly #held = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  /** Rate-limited warnings: message → when last logged and how many were not logged since. */
  readonly #warned = new Map<string, { lastMs: number, suppressed: number }>()

  constructor (opts: SessionBinderOptions) {
    this.store = opts.store
    this.#allow = opts.onStoreError === 'allow'
    this.#logger = opts.logger
    this.#holdIntervalMs = Math.max(HOLD_MIN_INTERVAL_MS, Math.floor(opts.idleTtlMs / 3))
  }

  /**
   * Check the ids a request carries against the store, for `principal`.
   * Synchronous with the memory store; a Promise with Redis.
   */
  check (ids: SessionIds, principal: Principal, method: string, url: string, log: SessionLogContext): Awaitable<SessionCheck> {
    const keys: string[] = []
    for (const id of ids.header) keys.push(sessionKey(id))
    for (const id of ids.legacy) keys.push(sessionKey(id))
    const owner = ownerOf(principal)
    const store = this.store
    try {
      if (keys.length === 1) {
        const v = store.get(keys[0]!)
        if (isPromise(v)) return v.then((x) => this.#judge(ids, keys, [x], principal, owner, method, url, log), (err: unknown) => this.#failed(err, ids, principal, method, url, log))
        return this.#judge(ids, keys, [v], principal, owner, method, url, log)
      }
      const values = keys.map((k) => store.get(k))
      if (values.some(isPromise)) return Promise.all(values).then((xs) => this.#judge(ids, keys, xs, principal, owner, method, url, log), (err: unknown) => this.#failed(err, ids, principal, method, url, log))
      return this.#judge(ids, keys, values as Array<string | undefined>, principal, owner, method, url, log)
    } catch (err) {
      return this.#failed(err, ids, principal, method, url, log)
    }
  }

  /**
   * A request without session ids that may start one: a POST (initialize) or
   * a GET (a legacy SSE stream). undefined for other methods.
   */
  watch (principal: Principal, method: string, url: string): SessionExchange | undefined {
    if (method !== 'POST' && method !== 'GET') return undefined
    return new SessionExchange(this, principal, method, url, NONE, undefined, undefined)
  }

  #judge (ids: SessionIds, keys: readonly string[], values: ReadonlyArray<string | undefined>, principal: Principal, owner: string, method: string, url: string, log: SessionLogContext): SessionCheck {
    let bound: Array<readonly [string, string]> | undefined
    let unknown: string[] | undefined
    let legacyUnknown = false
    const nHeader = ids.header.length
    for (let i = 0; i < keys.length; i++) {
      const v = values[i]
      const key = keys[i]!
      if (v === undefined) {
        if (i >= nHeader) legacyUnknown = true
        else (unknown ??= []).push(key)
      } else if (v.length > owner.length && v.charCodeAt(owner.length) === 32 && v.startsWith(owner)) {
        (bound ??= []).push([key, v.slice(owner.length + 1)])
      } else {
        this.#logger.warn({ reqId: log.reqId, route: log.route, session: key.slice(0, LOG_HASH_CHARS) }, 'session bound to another identity: refused')
        return MISMATCH
      }
    }
    if (legacyUnknown) return NOT_FOUND
    // Adopt an unknown id only when it is unambiguous: one header value, no legacy parameter.
    return new SessionExchange(this, principal, method, url, ids.header, bound, nHeader === 1 && ids.legacy.length === 0 ? unknown : undefined)
  }

  #failed (err: unknown, ids: SessionIds, principal: Principal, method: string, url: string, log: SessionLogContext): SessionCheck {
    this.warnStore(err, log)
    // allow: forwarded unchecked, and nothing is adopted (the store cannot take it now anyway).
    return this.#allow ? new SessionExchange(this, principal, method, url, ids.header, undefined, undefined) : UNAVAILABLE
  }

  /** A store failure: one warning per interval, with how many were not logged. */
  warnStore (err: unknown, log?: SessionLogContext): void {
    this.#warn('session store unavailable', { reqId: log?.reqId, route: log?.route, err, onStoreError: this.#allow ? 'allow' : 'deny' })
  }

  /** The memory store evicted a live binding to make room: that session is unbound from now on. */
  warnEvicted (): void {
    this.#warn('session store full: least recently used binding evicted', {})
  }

  #warn (msg: string, fields: Record<string, unknown>): void {
    const now = Date.now()
    let w = this.#warned.get(msg)
    if (w === undefined) this.#warned.set(msg, w = { lastMs: -Infinity, suppressed: 0 })
    if (now - w.lastMs < SESSION_STORE_WARN_INTERVAL_MS) {
      w.suppressed++
      return
    }
    w.lastMs = now
    const suppressed = w.suppressed
    w.suppressed = 0
    this.#logger.warn({ ...fields, suppressed }, msg)
  }

  /** Run a store write in the background; failures are logged (rate-limited), never thrown. */
  write (op: () => Awaitable<void>): void {
    try {
      const r = op()
      if (isPromise(r)) r.catch((err: unknown) => { this.warnStore(err) })
    } catch (err) {
      this.warnStore(err)
    }
  }

  /** Keep the bindings of `keys` alive while a stream of theirs is open. */
  hold (keys: readonly string[]): void {
    for (const k of keys) this.#held.set(k, (this.#held.get(k) ?? 0) + 1)
    if (this.#timer === undefined && this.#held.size > 0) {
      this.#timer = setInterval(() => {
        const all = [...this.#held.keys()]
        this.write(() => this.store.touch(all))
      }, this.#holdIntervalMs)
      this.#timer.unref()
    }
  }

  release (keys: readonly string[]): void {
    for (const k of keys) {
      const n = this.#held.get(k)
      if (n === undefined) continue
      if (n <= 1) this.#held.delete(k)
      else this.#held.set(k, n - 1)
    }
    if (this.#held.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** Sessions with an open stream through this process (tests). */
  get heldCount (): number {
    return this.#held.size
  }

  close (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#held.clear()
    this.store.close()
  }
}

/** Build the gateway's binder from `sessions:`; `redis` is the shared connection (required for store redis). */
export function createSessionBinder (config: SessionsConfig, redis: Redis | undefined, logger: Logger): SessionBinder {
  let binder: SessionBinder | undefined
  let store: SessionStore
  if (config.store === 'redis') {
    if (redis === undefined) throw new Error('sessions.store is redis but no redis connection was given')
    store = new RedisSessionStore(redis, { idleTtlMs: config.idleTtlMs })
  } else {
    store = new MemorySessionStore({ idleTtlMs: config.idleTtlMs, maxEntries: SESSION_MEMORY_MAX_ENTRIES, onEvict: () => { binder?.warnEvicted() } })
  }
  binder = new SessionBinder({ store, onStoreError: config.onStoreError, idleTtlMs: config.idleTtlMs, logger })
  return binder
}

/** The first value of `name` in a flat [name, value, …] list with lowercased names. */
function headerOf (headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1]
  return undefined
}

/**
 * One admitted request's view of its sessions, fed by the forwarder: the
 * response status and headers (new sessions, DELETE, 404), the legacy
 * `endpoint` event, and the end of the exchange (streams).
 */
export class SessionExchange {
  readonly #binder: SessionBinder
  readonly #principal: Principal
  readonly #method: string
  /** The request URL as received; its path (no query) is where a binding made here is bound. */
  readonly #url: string
  /** Keys bound to this caller, each with the path it was bound on. */
  readonly #bound: ReadonlyArray<readonly [string, string]> | undefined
  /** Keys of header session ids with no record, adopted if the upstream accepts them. */
  readonly #unknown: readonly string[] | undefined
  /** The `Mcp-Session-Id` values the request carried (each was checked: bound to this caller, or unknown). */
  readonly #sent: readonly string[]
  /** Keys held open by this exchange (a GET stream). */
  #held: string[] | undefined
  /** Legacy sessions this stream created: they end with it. */
  #created: string[] | undefined
  #ended = false

  constructor (binder: SessionBinder, principal: Principal, method: string, url: string, sent: readonly string[], bound: ReadonlyArray<readonly [string, string]> | undefined, unknown: readonly string[] | undefined) {
    this.#binder = binder
    this.#sent = sent
    this.#principal = principal
    this.#method = method
    this.#url = url
    this.#bound = bound
    this.#unknown = unknown
  }

  /** Computed only when a binding is made or ended: most responses need neither. */
  get #path (): string {
    const q = this.#url.indexOf('?')
    return q === -1 ? this.#url : this.#url.slice(0, q)
  }

  get #owner (): string {
    return ownerOf(this.#principal)
  }

  /** The upstream's status and cleaned response headers (flat list, lowercased names), before anything is sent on. */
  responseStart (status: number, headers: readonly string[]): void {
    const binder = this.#binder
    const store = binder.store
    const bound = this.#bound
    if (status >= 200 && status < 300) {
      const stream = this.#method === 'GET'
      if (this.#method === 'DELETE') {
        // The session ended (MCP transports: session management).
        this.#end(bound)
        return
      }
      const sid = headerOf(headers, SESSION_HEADER)
      // Most responses echo the session the request carried (the SDK servers do): nothing new, no hash.
      if (sid !== undefined && sid !== '' && !this.#sent.includes(sid)) {
        const key = sessionKey(sid)
        const value = this.#owner + ' ' + this.#path
        binder.write(() => store.claim(key, value))
        if (stream) this.#hold([key])
      }
      const unknown = this.#unknown
      if (unknown !== undefined) {
        // The upstream accepted a session the gateway had no record of: bind it to this caller.
        const value = this.#owner + ' ' + this.#path
        for (const key of unknown) binder.write(() => store.claim(key, value))
        if (stream) this.#hold(unknown)
      }
      if (stream && bound !== undefined) this.#hold(bound.map(([k]) => k))
    } else if (status === 404) {
      // The upstream does not know the session (any more).
      this.#end(bound)
    }
  }

  /** The legacy `endpoint` event's URL, rewritten into the gateway's space (a path with the session query). */
  endpoint (url: string): void {
    const ids = sessionIdsOf(undefined, url)
    if (ids === undefined) return
    const q = url.indexOf('?')
    const value = this.#owner + ' ' + (q === -1 ? url : url.slice(0, q))
    const keys = ids.legacy.map(sessionKey)
    const binder = this.#binder
    for (const key of keys) binder.write(() => binder.store.claim(key, value))
    ;(this.#created ??= []).push(...keys)
    this.#hold(keys)
  }

  /** The exchange ended (response finished, cut, or the client left): streams stop holding their sessions. */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    const binder = this.#binder
    if (this.#held !== undefined) binder.release(this.#held)
    const created = this.#created
    if (created !== undefined) {
      // A legacy session lives as long as its SSE stream.
      for (const key of created) binder.write(() => binder.store.delete(key))
    }
  }

  #hold (keys: readonly string[]): void {
    if (this.#ended || keys.length === 0) return
    ;(this.#held ??= []).push(...keys)
    this.#binder.hold(keys)
  }

  /** Forget the bindings that were bound on this request's path (a session is ended where it lives, not by a stray 404 elsewhere). */
  #end (bound: ReadonlyArray<readonly [string, string]> | undefined): void {
    if (bound === undefined) return
    const binder = this.#binder
    const here = this.#path
    for (const [key, path] of bound) {
      if (path === here) binder.write(() => binder.store.delete(key))
    }
  }
}
