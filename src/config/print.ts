/**
 * `mcp-auth-gateway --check --print`: the normalised configuration (defaults
 * applied, profiles resolved: what the loader returns) as YAML, with every
 * secret redacted.
 *
 * What counts as secret is derived, not listed by hand: every place the zod
 * schema uses `secretRefSchema` (`{ fromEnv }` / `{ fromFile }`) is found by
 * walking the schema, so a new secret field is redacted as soon as it uses a
 * secret reference. Key material read from files (TLS key, signing keys) is
 * listed in {@link FILE_CONTENTS}, and anything that is not plain data
 * (Buffer, Uint8Array, KeyObject) is redacted whatever its path: fail closed.
 * Two more nets: URL credentials are blanked in every string, and a string
 * that contains a resolved secret is redacted wherever it appears.
 */
import { readFileSync } from 'node:fs'
import { Document, isScalar, parse, visit } from 'yaml'
import type { z } from 'zod'
import { configSchema, secretRefSchema } from './schema.js'
import type { GatewayConfig } from './types.js'

/** A path pattern segment: a key, `[]` for any list index, `*` for any mapping key (z.record). */
type Segment = string
/** A concrete path in a value: keys and list indexes. */
type Path = ReadonlyArray<string | number>

/** Shortest resolved secret that is also searched for inside other strings (shorter ones would redact common words). */
const MIN_EMBEDDED_SECRET_LENGTH = 8

/** Walk a zod schema and return the path of every use of `target` (`routes[].upstreamAuth.value`). */
export function schemaPathsOf (schema: z.ZodType, target: z.ZodType): string[][] {
  const out: string[][] = []
  const seen = new Set<unknown>()
  const walk = (s: z.ZodType, path: string[]): void => {
    if (s === target) {
      out.push(path)
      return
    }
    if (seen.has(s)) return
    seen.add(s)
    const def = (s as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def
    switch (def.type) {
      case 'optional': case 'nullable': case 'default': case 'prefault': case 'nonoptional': case 'readonly': case 'catch':
        walk(def.innerType as z.ZodType, path)
        break
      case 'pipe':
        walk(def.in as z.ZodType, path)
        walk(def.out as z.ZodType, path)
        break
      case 'lazy':
        walk((def.getter as () => z.ZodType)(), path)
        break
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, z.ZodType>)) walk(v, [...path, k])
        break
      case 'array':
        walk(def.element as z.ZodType, [...path, '[]'])
        break
      case 'record':
        walk(def.valueType as z.ZodType, [...path, '*'])
        break
      case 'union':
        for (const o of def.options as z.ZodType[]) walk(o, path)
        break
      case 'intersection':
        walk(def.left as z.ZodType, path)
        walk(def.right as z.ZodType, path)
        break
      default:
        // Scalars, enums, literals: nothing below them.
    }
    seen.delete(s)
  }
  walk(schema, [])
  return out
}

/**
 * Every secret reference in the config schema, as path patterns. The loader
 * keeps each resolved secret at the same path in the normalised config
 * (config-print.test.ts proves it for every one of them).
 */
export const SECRET_REF_PATHS: ReadonlyArray<readonly Segment[]> = Object.freeze(schemaPathsOf(configSchema, secretRefSchema).map((p) => Object.freeze(p)))
if (SECRET_REF_PATHS.length === 0) throw new Error('print: no secret reference found in the config schema')

interface FileContents {
  /** Pattern of the normalised field holding the file's contents. */
  readonly path: readonly Segment[]
  /** The config key naming the file, from the concrete normalised path. */
  readonly source: (path: Path) => Path
  readonly secret: boolean
  readonly what: string
}

/** Normalised fields that hold the contents of a file named in the config (they are not secret references). */
export const FILE_CONTENTS: readonly FileContents[] = Object.freeze<FileContents[]>([
  { path: ['listen', 'tls', 'key'], source: () => ['listen', 'tls', 'keyFile'], secret: true, what: 'private key' },
  { path: ['listen', 'tls', 'cert'], source: () => ['listen', 'tls', 'certFile'], secret: false, what: 'certificate' },
  { path: ['signing', 'keys', '[]', 'privateKey'], source: (p) => ['signingKeys', p[2]!, 'file'], secret: true, what: 'private key' }
])

function matches (pattern: readonly Segment[], path: Path): boolean {
  if (pattern.length !== path.length) return false
  for (let i = 0; i < pattern.length; i++) {
    const s = pattern[i]!
    const p = path[i]!
    if (s === '[]' ? typeof p !== 'number' : s === '*' ? typeof p !== 'string' : s !== p) return false
  }
  return true
}

function valueAt (root: unknown, path: Path): unknown {
  let cur = root
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string | number, unknown>)[p]
  }
  return cur
}

function formatPath (path: Path): string {
  return path.map((p, i) => typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`).join('')
}

function isPlainObject (v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/** The label printed in place of a secret: which reference it came from, never the value. */
function secretLabel (source: unknown, path: Path): string {
  const ref = valueAt(source, path)
  if (ref !== null && typeof ref === 'object') {
    const { fromEnv, fromFile } = ref as { fromEnv?: unknown, fromFile?: unknown }
    if (typeof fromEnv === 'string') return `<redacted: fromEnv ${fromEnv}>`
    if (typeof fromFile === 'string') return `<redacted: fromFile ${fromFile}>`
  }
  return '<redacted>'
}

/** Blank the password (and user) of any URL inside a string: `scheme://user:pass@host` → `scheme://<redacted>@host`. */
export function redactUrlCredentials (s: string): string {
  return s.replace(/([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#@\s]*@/g, '$1<redacted>@')
}

/** Resolved secret values, to catch a copy of one in any other field. */
function collectSecrets (config: unknown): string[] {
  const out: string[] = []
  const walk = (v: unknown, path: Array<string | number>): void => {
    if (v === null || v === undefined) return
    if (SECRET_REF_PATHS.some((p) => matches(p, path))) {
      if (typeof v === 'string') out.push(v)
      else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'))
      return
    }
    if (Array.isArray(v)) v.forEach((e, i) => { walk(e, [...path, i]) })
    else if (v instanceof Map) for (const [k, e] of v) walk(e, [...path, String(k)])
    else if (typeof v === 'object' && isPlainObject(v)) for (const [k, e] of Object.entries(v)) walk(e, [...path, k])
  }
  walk(config, [])
  return out.filter((s) => s.length >= MIN_EMBEDDED_SECRET_LENGTH)
}

/**
 * The normalised config as plain data with every secret replaced by a label.
 * `source` is the config file as parsed YAML (before validation): only used to
 * say where a redacted value came from (`<redacted: fromEnv NAME>`).
 */
export function redactConfig (config: GatewayConfig, source?: unknown): unknown {
  const secrets = collectSecrets(config)
  const walk = (v: unknown, path: Array<string | number>): unknown => {
    if (v === undefined || v === null) return null
    if (SECRET_REF_PATHS.some((p) => matches(p, path))) return secretLabel(source, path)
    const file = FILE_CONTENTS.find((f) => matches(f.path, path))
    if (file !== undefined) {
      const name = valueAt(source, file.source(path))
      const from = typeof name === 'string' ? ` from ${formatPath(file.source(path))} ${name}` : ''
      return file.secret ? `<redacted: ${file.what}${from}>` : `<${file.what}${from}>`
    }
    if (typeof v === 'string') {
      if (secrets.some((s) => v.includes(s))) return '<redacted: contains a secret>'
      return redactUrlCredentials(v)
    }
    if (typeof v === 'number' || typeof v === 'boolean') return v
    if (Array.isArray(v)) return v.map((e, i) => walk(e, [...path, i]))
    if (v instanceof Map) return Object.fromEntries([...v].map(([k, e]) => [String(k), walk(e, [...path, String(k)])]))
    // Buffers, typed arrays, KeyObjects and anything else that is not plain data: fail closed.
    if (typeof v !== 'object' || !isPlainObject(v)) return '<redacted>'
    return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, walk(e, [...path, k])]))
  }
  return walk(config, [])
}

/** {@link redactConfig} as a YAML document. */
export function printConfig (config: GatewayConfig, source?: unknown): string {
  const doc = new Document(redactConfig(config, source), { aliasDuplicateObjects: false })
  // Lists of scalars (scopes, claim paths) read best on one line.
  visit(doc, { Seq (_, node) { if (node.items.every(isScalar)) node.flow = true } })
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false })
}

/** The config file as parsed YAML, for the labels of {@link printConfig}; undefined if it cannot be read again. */
export function readConfigSource (path: string): unknown {
  try {
    return parse(readFileSync(path, 'utf8'), { maxAliasCount: 100 }) as unknown
  } catch {
    return undefined
  }
}
