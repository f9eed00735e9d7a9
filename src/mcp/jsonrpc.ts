/**
 * JSON-RPC 2.0 helpers. Routes without a policy forward request bodies byte
 * for byte and only look inside when they must answer on the upstream's
 * behalf; policy routes parse and validate every POST body here. Never
 * imports fastify.
 */

import { MAX_JSON_RPC_DEPTH } from '../config/defaults.js'

export type JsonRpcId = string | number | null

/** The `id` of a single JSON-RPC request body, or null (notifications, batches, non-JSON). */
export function requestIdOf (body: unknown): JsonRpcId {
  let value = body
  if (Buffer.isBuffer(value)) {
    if (value.length === 0) return null
    try {
      value = JSON.parse(value.toString('utf8'))
    } catch {
      return null
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  const id = (value as { id?: unknown }).id
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : null
}

/** A JSON-RPC error response body. */
export function jsonRpcError (id: JsonRpcId, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } })
}

/** Gateway-originated JSON-RPC error codes (implementation-defined server errors, JSON-RPC 2.0 §5.1). */
export const JSONRPC_UPSTREAM_UNREACHABLE = -32000
/** Same value the MCP SDK uses for a request timeout. */
export const JSONRPC_UPSTREAM_TIMEOUT = -32001

/** JSON-RPC 2.0 §5.1: the body is not valid JSON. */
export const JSONRPC_PARSE_ERROR = -32700
/** JSON-RPC 2.0 §5.1: the JSON is not a valid request object (or batch). */
export const JSONRPC_INVALID_REQUEST = -32600
/** JSON-RPC 2.0 §5.1: the method's parameters are invalid (here: the name or URI a policy keys on). */
export const JSONRPC_INVALID_PARAMS = -32602
/** MCP 2026-07-28 `HeaderMismatch`: an `Mcp-Method` / `Mcp-Name` header disagrees with the body. */
export const JSONRPC_HEADER_MISMATCH = -32020
/**
 * The gateway refused the operation for lack of a scope (HTTP 403). MCP 2026-07-28 (basic/index,
 * "Error Codes") asks for new codes outside the reserved -32768…-32000 range: -31403 mirrors the status.
 */
export const JSONRPC_INSUFFICIENT_SCOPE = -31403

/** One JSON-RPC message as sent: the parsed object itself, validated by {@link parseJsonRpc}. */
export interface JsonRpcMessage {
  readonly jsonrpc: '2.0'
  /** Requests: a string or finite number (MCP forbids null). Responses: also null. Notifications: absent. */
  readonly id?: JsonRpcId
  /** Requests and notifications. */
  readonly method?: string
  /** Absent, an object or an array (JSON-RPC 2.0 §4.2). */
  readonly params?: unknown
  readonly result?: unknown
  readonly error?: unknown
}

/** What a message is; decided by its members (JSON-RPC 2.0 §4, §4.1, §5). */
export type JsonRpcMessageKind = 'request' | 'notification' | 'response'

/** A body that is valid JSON-RPC: one message, or a non-empty batch (JSON-RPC 2.0 §6). */
export interface JsonRpcBody {
  readonly ok: true
  /** The parsed JSON, as it will be re-serialised. */
  readonly value: unknown
  readonly batch: boolean
  /** The message, or the batch's elements in order. */
  readonly messages: readonly JsonRpcMessage[]
}

/** A body that is not: the error to answer with (HTTP 400), never forwarded. */
export interface JsonRpcBodyError {
  readonly ok: false
  readonly code: number
  readonly message: string
  /** The request's id when it could be read (invalid params of a single request), else null (§5). */
  readonly id: JsonRpcId
  /** Set when the body is a batch longer than the cap given to {@link parseJsonRpc}. */
  readonly batchTooLong?: true
}

/**
 * Methods whose target is named in params: the tool or prompt `name`, the resource `uri`. Policies
 * and the `Mcp-Name` header (MCP 2026-07-28 "Standard Request Headers") key on it.
 */
const NAMED_METHODS: ReadonlyMap<string, 'name' | 'uri'> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['resources/subscribe', 'uri'],
  ['resources/unsubscribe', 'uri']
])

/** The params member holding a method's target (`name` or `uri`), or undefined for other methods. */
export function targetParamOf (method: string): 'name' | 'uri' | undefined {
  return NAMED_METHODS.get(method)
}

/** The tool/prompt name or resource URI a message acts on; undefined for methods without one. Valid messages only. */
export function targetOf (msg: JsonRpcMessage): string | undefined {
  if (msg.method === undefined) return undefined
  const key = NAMED_METHODS.get(msg.method)
  return key === undefined ? undefined : (msg.params as Record<string, string>)[key]
}

/** Kind of a message that passed {@link parseJsonRpc}. */
export function kindOf (msg: JsonRpcMessage): JsonRpcMessageKind {
  if (msg.method === undefined) return 'response'
  return msg.id === undefined ? 'notification' : 'request'
}

const PARSE_ERROR: JsonRpcBodyError = Object.freeze({ ok: false, code: JSONRPC_PARSE_ERROR, message: 'Parse error', id: null })
/** A batch longer than `limits.maxBatchMessages`: -32600, the whole batch refused (JSON-RPC 2.0 §6 has no partial acceptance). */
function batchTooLong (max: number): JsonRpcBodyError {
  return { ok: false, code: JSONRPC_INVALID_REQUEST, message: `Invalid Request: a batch may hold at most ${max} messages`, id: null, batchTooLong: true }
}

const TOO_DEEP: JsonRpcBodyError = Object.freeze({ ok: false, code: JSONRPC_INVALID_REQUEST, message: `Invalid Request: nested deeper than ${MAX_JSON_RPC_DEPTH} levels`, id: null })
const INVALID_REQUEST: JsonRpcBodyError = Object.freeze({ ok: false, code: JSONRPC_INVALID_REQUEST, message: 'Invalid Request', id: null })

/**
 * True when the JSON text nests arrays/objects deeper than `max`. One pass over the bytes,
 * brackets inside strings skipped; no allocation. Only valid JSON matters: JSON.parse judges the rest.
 */
export function nestedDeeperThan (body: Buffer, max: number): boolean {
  // Each level needs at least one byte: a shorter body cannot be too deep.
  if (body.length <= max) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped byte
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

function isId (v: unknown): v is string | number {
  return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))
}

/** undefined when valid; otherwise the error for this element. */
function checkMessage (v: unknown): JsonRpcBodyError | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return INVALID_REQUEST
  const m = v as Record<string, unknown>
  if (m.jsonrpc !== '2.0') return INVALID_REQUEST
  const method = m.method
  if (method !== undefined) {
    // Request or notification. MCP: a request id is a string or number, never null.
    if (typeof method !== 'string') return INVALID_REQUEST
    if ('id' in m && !isId(m.id)) return INVALID_REQUEST
    if ('result' in m || 'error' in m) return INVALID_REQUEST
    const params = m.params
    if (params !== undefined && (params === null || typeof params !== 'object')) return INVALID_REQUEST
    const key = NAMED_METHODS.get(method)
    if (key !== undefined) {
      // The policy keys on this value: a missing or non-string one cannot be authorised.
      if (params === undefined || Array.isArray(params) || typeof (params as Record<string, unknown>)[key] !== 'string') {
        return { ok: false, code: JSONRPC_INVALID_PARAMS, message: `Invalid params: params.${key} must be a string`, id: isId(m.id) ? m.id : null }
      }
    }
    return undefined
  }
  // Response: an id (null allowed, §5) and exactly one of result / error.
  if (!('id' in m) || !(m.id === null || isId(m.id))) return INVALID_REQUEST
  if (('result' in m) === ('error' in m)) return INVALID_REQUEST
  return undefined
}

/**
 * Parse and validate a request body as JSON-RPC 2.0: one message or a
 * non-empty batch of requests, notifications and responses. One `JSON.parse`;
 * the messages are the parsed objects themselves. Requests and notifications
 * of {@link targetParamOf named methods} must carry their name/URI as a string
 * (else -32602: a policy cannot authorise what it cannot read). An invalid
 * element makes the whole batch invalid (-32600): the gateway forwards all of
 * a batch or none of it.
 */
export function parseJsonRpc (body: Buffer | undefined, maxBatchMessages: number | null = null): JsonRpcBody | JsonRpcBodyError {
  if (body === undefined || body.length === 0) return PARSE_ERROR
  // The body is re-serialised for the upstream; JSON.stringify recurses and would overflow the stack.
  if (nestedDeeperThan(body, MAX_JSON_RPC_DEPTH)) return TOO_DEEP
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    return PARSE_ERROR
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return INVALID_REQUEST
    // Before any element is read: the cost of a refused batch does not grow with its length.
    if (maxBatchMessages !== null && value.length > maxBatchMessages) return batchTooLong(maxBatchMessages)
    for (let i = 0; i < value.length; i++) {
      const err = checkMessage(value[i])
      if (err !== undefined) return err.code === JSONRPC_INVALID_PARAMS ? { ...err, id: null } : err
    }
    return { ok: true, value, batch: true, messages: value as JsonRpcMessage[] }
  }
  const err = checkMessage(value)
  if (err !== undefined) return err
  return { ok: true, value, batch: false, messages: [value as JsonRpcMessage] }
}

const SENTINEL_PREFIX = '=?base64?'
const SENTINEL_SUFFIX = '?='
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decode an `Mcp-Name` header value: plain, or the MCP 2026-07-28 Base64
 * sentinel `=?base64?…?=` (UTF-8 inside). Returns undefined for a sentinel
 * that is not canonical Base64 of valid UTF-8: such a header cannot match.
 */
export function decodeMcpHeaderValue (raw: string): string | undefined {
  if (!(raw.startsWith(SENTINEL_PREFIX) && raw.endsWith(SENTINEL_SUFFIX) && raw.length >= SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length)) return raw
  const b64 = raw.slice(SENTINEL_PREFIX.length, raw.length - SENTINEL_SUFFIX.length)
  if (b64.length % 4 !== 0 || !BASE64_RE.test(b64)) return undefined
  const bytes = Buffer.from(b64, 'base64')
  if (bytes.toString('base64') !== b64) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * MCP 2026-07-28 "Server Validation": a present `Mcp-Method` must equal the
 * body's method and a present `Mcp-Name` the body's name/URI (after sentinel
 * decoding). The headers describe one message, so on a batch any of them is a
 * mismatch; so is `Mcp-Name` on a method that names nothing. Absent headers
 * are not checked (earlier protocol versions do not send them).
 * @returns a description of the mismatch, or undefined when consistent
 */
export function headerMismatch (body: JsonRpcBody, mcpMethod: string | undefined, mcpName: string | undefined): string | undefined {
  if (mcpMethod === undefined && mcpName === undefined) return undefined
  if (body.batch) return 'Header mismatch: Mcp-Method and Mcp-Name describe a single message, not a batch'
  const msg = body.messages[0]!
  if (mcpMethod !== undefined && mcpMethod !== msg.method) return 'Header mismatch: the Mcp-Method header does not match the body method'
  if (mcpName !== undefined) {
    const target = targetOf(msg)
    if (target === undefined || decodeMcpHeaderValue(mcpName) !== target) return 'Header mismatch: the Mcp-Name header does not match the body'
  }
  return undefined
}

/**
 * The error body answering a refused body: one error object for a single
 * message, an array with one error per element that has an id for a batch
 * (JSON-RPC 2.0 §6). A batch with no id at all (or a single notification or
 * response) gets one error with id null, so the HTTP error still has a body.
 * @param messageOf the message for element `i` (lets denied and merely held-back elements differ)
 */
export function jsonRpcErrorsFor (body: JsonRpcBody, code: number, messageOf: (msg: JsonRpcMessage, index: number) => string): string {
  if (!body.batch) {
    const msg = body.messages[0]!
    return jsonRpcError(msg.method !== undefined && msg.id !== undefined ? msg.id : null, code, messageOf(msg, 0))
  }
  const out: string[] = []
  for (let i = 0; i < body.messages.length; i++) {
    const msg = body.messages[i]!
    if (msg.method !== undefined && msg.id !== undefined) out.push(jsonRpcError(msg.id, code, messageOf(msg, i)))
  }
  return out.length === 0 ? jsonRpcError(null, code, messageOf(body.messages[0]!, 0)) : `[${out.join(',')}]`
}
