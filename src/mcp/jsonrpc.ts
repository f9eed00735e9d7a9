/**
 * Minimal JSON-RPC 2.0 helpers. The gateway forwards request bodies byte for
 * byte; it only looks inside when it must answer on the upstream's behalf.
 */

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
