/**
 * Policy decisions: the scopes an operation (or a whole batch) needs against
 * the principal's scopes. Fail closed: a batch passes only if every element
 * does. Sees the Principal and JSON-RPC message types only.
 */
import type { Principal } from '../auth/principal.js'
import { targetOf, type JsonRpcMessage } from '../mcp/jsonrpc.js'
import type { CompiledPolicy } from './compile.js'

/** The outcome of one policy check. */
export interface Decision {
  readonly allow: boolean
  /** Every scope the operation (or batch) needs, route scopes included: the 403 challenge's `scope`. */
  readonly needed: readonly string[]
  /** The needed scopes the principal lacks; empty when allowed. */
  readonly missing: readonly string[]
}

const NONE: readonly string[] = Object.freeze([])

function decide (needed: readonly string[], scopes: ReadonlySet<string>): Decision {
  let missing: string[] | undefined
  for (let i = 0; i < needed.length; i++) {
    const s = needed[i]!
    if (!scopes.has(s)) (missing ??= []).push(s)
  }
  return missing === undefined ? { allow: true, needed, missing: NONE } : { allow: false, needed, missing }
}

/** The scopes one message needs: by method and target for requests and notifications, the base for responses. */
export function requiredFor (policy: CompiledPolicy, msg: JsonRpcMessage): readonly string[] {
  return policy.required(msg.method, targetOf(msg))
}

/**
 * Decide one body (a message, or every element of a batch) for a principal.
 * `messages` must come from parseJsonRpc (names and URIs already validated).
 */
export function evaluate (policy: CompiledPolicy, principal: Principal, messages: readonly JsonRpcMessage[]): Decision {
  if (messages.length === 1) return decide(requiredFor(policy, messages[0]!), principal.scopes)
  const union = new Set<string>()
  for (let i = 0; i < messages.length; i++) for (const s of requiredFor(policy, messages[i]!)) union.add(s)
  return decide([...union], principal.scopes)
}

/** Decide a request without a body (GET, DELETE, HEAD): route scopes and default. */
export function evaluateNoBody (policy: CompiledPolicy, principal: Principal): Decision {
  return decide(policy.base, principal.scopes)
}

/** Whether the principal may send this one message (used to tell denied batch elements from held-back ones). */
export function allows (policy: CompiledPolicy, principal: Principal, msg: JsonRpcMessage): boolean {
  const needed = requiredFor(policy, msg)
  for (let i = 0; i < needed.length; i++) if (!principal.scopes.has(needed[i]!)) return false
  return true
}

/** Whether the principal may call the named tool: the predicate a filtered tools/list uses. */
export function mayCallTool (policy: CompiledPolicy, scopes: ReadonlySet<string>, name: string): boolean {
  const needed = policy.required('tools/call', name)
  for (let i = 0; i < needed.length; i++) if (!scopes.has(needed[i]!)) return false
  return true
}
