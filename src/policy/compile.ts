/**
 * Per-operation policy, compiled once per route at startup: exact names in a
 * Map, `*` globs as precompiled segment matchers, and the required-scope list
 * of each (method, name) memoised in a bounded Map. Sees config types and
 * JSON-RPC method names only; never fastify, never auth internals.
 */
import type { PolicyConfig } from '../config/types.js'
import { POLICY_MEMO_MAX_ENTRIES } from '../config/defaults.js'

/**
 * A `*`-only glob as a linear-time matcher: prefix, suffix, and the middle
 * segments found leftmost in order (leftmost is optimal when `*` is the only
 * wildcard). Chosen over a RegExp of `[\s\S]*` runs, which backtracks
 * polynomially on hostile names (`*a*a*a*b` against `aaaa…`). `*` matches any
 * sequence, `/` included. Every other character is literal.
 */
export function compileGlob (pattern: string): (name: string) => boolean {
  const parts = pattern.split('*')
  if (parts.length === 1) return (name) => name === pattern
  const first = parts[0]!
  const last = parts[parts.length - 1]!
  const middle = parts.slice(1, -1).filter((p) => p !== '')
  const minLength = first.length + last.length
  return (name) => {
    if (name.length < minLength || !name.startsWith(first) || !name.endsWith(last)) return false
    let pos = first.length
    const end = name.length - last.length
    for (let i = 0; i < middle.length; i++) {
      const seg = middle[i]!
      const at = name.indexOf(seg, pos)
      if (at === -1 || at + seg.length > end) return false
      pos = at + seg.length
    }
    return true
  }
}

/** One of tools / resources / prompts: exact names in a Map, globs in config order. */
class PatternTable {
  readonly #exact = new Map<string, readonly string[]>()
  readonly #globs: Array<readonly [(name: string) => boolean, readonly string[]]> = []

  constructor (entries: ReadonlyArray<readonly [string, readonly string[]]>) {
    for (const [pattern, scopes] of entries) {
      if (pattern.includes('*')) this.#globs.push([compileGlob(pattern), scopes])
      else this.#exact.set(pattern, [...(this.#exact.get(pattern) ?? []), ...scopes])
    }
  }

  get empty (): boolean {
    return this.#exact.size === 0 && this.#globs.length === 0
  }

  /** Add the scopes of every entry matching `name`. */
  addMatches (name: string, into: Set<string>): void {
    const exact = this.#exact.get(name)
    if (exact !== undefined) for (const s of exact) into.add(s)
    for (let i = 0; i < this.#globs.length; i++) {
      const [match, scopes] = this.#globs[i]!
      if (match(name)) for (const s of scopes) into.add(s)
    }
  }
}

/** A FIFO-bounded memo: insertion order is Map order, so the oldest key is the first. */
class Memo {
  readonly #map = new Map<string, readonly string[]>()
  readonly #max: number
  constructor (max: number) { this.#max = max }
  get (key: string): readonly string[] | undefined { return this.#map.get(key) }
  set (key: string, value: readonly string[]): void {
    if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value!)
    this.#map.set(key, value)
  }

  get size (): number { return this.#map.size }
}

/** A route's policy, ready for {@link evaluate} (policy/evaluate.ts). */
export interface CompiledPolicy {
  /** Route scopes ∪ default: what a request needs before anything else (and all a body-less GET/DELETE needs). */
  readonly base: readonly string[]
  /** Whether tools/list results are filtered to the tools the caller may call. */
  readonly filterToolsList: boolean
  /**
   * Every scope one operation needs, route scopes first, then default, the
   * method's, then each matching tools / resources / prompts entry; no
   * duplicates. `name` is the tool or prompt name or resource URI of a named
   * method (jsonrpc.ts targetOf), undefined otherwise. Responses the client
   * sends pass method undefined. The array is shared: never mutate it.
   */
  required: (method: string | undefined, name: string | undefined) => readonly string[]
  /** Memoised entries per table (unnamed methods, then each named method), for tests and diagnostics. */
  memoSizes: () => number[]
}

/** Which table a named method's target is looked up in. */
const TABLE_OF: ReadonlyMap<string, 'tools' | 'resources' | 'prompts'> = new Map([
  ['tools/call', 'tools'],
  ['prompts/get', 'prompts'],
  ['resources/read', 'resources'],
  ['resources/subscribe', 'resources'],
  ['resources/unsubscribe', 'resources']
])

/**
 * Compile a route's policy. `routeScopes` (the route's `scopes`) are part of
 * every requirement, so one challenge names all the scopes an operation needs
 * (MCP 2026-07-28: all required scopes in one 403).
 */
export function compilePolicy (policy: PolicyConfig, routeScopes: readonly string[], memoMax = POLICY_MEMO_MAX_ENTRIES): CompiledPolicy {
  const base = Object.freeze([...new Set([...routeScopes, ...policy.default])])
  const tables = {
    tools: new PatternTable(policy.tools),
    resources: new PatternTable(policy.resources),
    prompts: new PatternTable(policy.prompts)
  }
  // Unnamed methods and named ones are memoised apart: a method literally named
  // "tools/call\0x" must never share an entry with tools/call of tool "x".
  const byMethod = new Memo(memoMax)
  const byName = new Map<string, Memo>()
  for (const m of TABLE_OF.keys()) byName.set(m, new Memo(memoMax))

  const compute = (method: string | undefined, name: string | undefined): readonly string[] => {
    const extra = method === undefined ? undefined : policy.methods.get(method)
    const table = method === undefined || name === undefined ? undefined : TABLE_OF.get(method)
    if (extra === undefined && table === undefined) return base
    const set = new Set(base)
    if (extra !== undefined) for (const s of extra) set.add(s)
    if (table !== undefined) tables[table].addMatches(name!, set)
    return set.size === base.length ? base : Object.freeze([...set])
  }

  const required = (method: string | undefined, name: string | undefined): readonly string[] => {
    if (method === undefined) return base
    const memo = name === undefined ? byMethod : byName.get(method)
    if (memo === undefined) return compute(method, undefined)
    const key = name ?? method
    let v = memo.get(key)
    if (v === undefined) {
      v = compute(method, name)
      memo.set(key, v)
    }
    return v
  }

  const memoSizes = (): number[] => [byMethod.size, ...[...byName.values()].map((m) => m.size)]
  return Object.freeze({ base, filterToolsList: policy.filterToolsList, required, memoSizes })
}
