/**
 * Error bodies and the response helpers every plugin uses. Bodies are always
 * `{ error, error_description }` JSON; 5xx bodies are generic.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import { GatewayError } from '../errors.js'

/** The `{ error, error_description }` body. */
export function errorBody (error: string, description: string): string {
  return JSON.stringify({ error, error_description: description })
}

/** Every error answer: JSON, never stored by a cache. */
const JSON_TYPE = 'application/json; charset=utf-8'
const NO_STORE = 'no-store'

/** Send `{ error, error_description }` with the given status. */
export function sendError (reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return sendJsonRpcError(reply, status, errorBody(error, description))
}

/**
 * Write a JSON error body straight to a response (the lane, plugins/lane.ts):
 * the same status, content type and cache-control as {@link sendError} and
 * {@link sendJsonRpcError}; `headers`: more [name, value, …].
 */
export function writeJsonError (res: ServerResponse, status: number, body: string, headers: readonly string[]): void {
  res.writeHead(status, ['content-type', JSON_TYPE, 'cache-control', NO_STORE, 'content-length', String(Buffer.byteLength(body)), ...headers])
  res.end(body)
}

/**
 * Send a JSON-RPC error body (already serialised; jsonrpc.ts builds it) with
 * the given status: policy routes answer malformed, mismatched and refused
 * JSON-RPC bodies this way, in the protocol the client speaks. {@link sendError}
 * sends its body through here too.
 */
export function sendJsonRpcError (reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', JSON_TYPE)
    .header('cache-control', NO_STORE)
    .send(body)
}

/** Map a Fastify or unknown error to a status and public body; never echoes its message. */
export function publicErrorOf (err: unknown): { status: number, error: string, description: string } {
  if (err instanceof GatewayError) return { status: err.status, error: err.code, description: err.publicDescription }
  const code = (err as { code?: string }).code
  const statusCode = (err as { statusCode?: number }).statusCode
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, error: 'payload_too_large', description: 'The request body exceeds the configured limit' }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, error: 'unsupported_media_type', description: 'The request content type is not supported' }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, error: 'invalid_request', description: 'The request body is malformed' }
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return { status: statusCode, error: 'invalid_request', description: 'The request is malformed' }
  }
  return { status: 500, error: 'internal_error', description: 'Internal gateway error' }
}

/**
 * Answer HTTP parse errors (malformed requests, oversized headers, request
 * timeouts) before any route runs, with our error body, then close the socket.
 */
export function clientErrorResponse (code: string | undefined): string {
  let status = 400
  let error = 'invalid_request'
  let description = 'The HTTP request is malformed'
  if (code === 'HPE_HEADER_OVERFLOW') {
    status = 431
    description = 'The request headers are too large'
  } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408
    error = 'request_timeout'
    description = 'The request was not received in time'
  }
  const body = JSON.stringify({ error, error_description: description })
  const reason = status === 400 ? 'Bad Request' : status === 431 ? 'Request Header Fields Too Large' : 'Request Timeout'
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}
