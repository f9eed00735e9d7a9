/**
 * `npm run schema`: writes schema/gateway.schema.json, the JSON Schema of the
 * config file, generated from the zod schema the loader validates with
 * (src/config/schema.ts), so the two never drift. `--check` compares instead
 * of writing and exits 1 when the committed file is stale.
 *
 * What zod cannot express is turned into something an editor can still use:
 * - refinements (URL rules, header names, cross-field checks) are dropped: the
 *   schema is structural, `mcp-auth-gateway --check` stays the authority;
 * - secret references get "exactly one of fromEnv, fromFile";
 * - `routes[].upstreamAuth` gets the keys each `type` accepts and requires;
 * - a number, boolean or enum value may be a `${NAME}` reference, which the
 *   loader substitutes before validating (docs/configuration.md).
 *
 * Descriptions come from the TSDoc comments on the schema's fields, read with
 * the TypeScript parser: a field documented in schema.ts is documented in the
 * editor, with no second copy to maintain.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ts from 'typescript'
import { z } from 'zod'
import { configSchema, secretRefSchema, UPSTREAM_AUTH_KEYS, UPSTREAM_AUTH_REQUIRED } from '../src/config/schema.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
/** Where the schema is published (package.json `files`). */
export const SCHEMA_PATH = join(ROOT, 'schema', 'gateway.schema.json')
const SCHEMA_SOURCE = join(ROOT, 'src', 'config', 'schema.ts')

/** Stable identifier; resolves once the package is on npm. */
export const SCHEMA_ID = 'https://unpkg.com/mcp-auth-gateway/schema/gateway.schema.json'

/** Title given to every secret reference object (config-docs.test.ts treats them as one key). */
export const SECRET_REF_TITLE = 'secret reference'

type Json = Record<string, unknown>

/** A whole `${NAME}` value: the loader substitutes it before validation, numbers and true/false keep their type. */
const ENV_REF = { type: 'string', pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$', description: 'A ${NAME} reference, replaced from the environment before validation.' }
/** A string holding at least one `${NAME}` reference. */
const ENV_REF_IN_STRING = { type: 'string', pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}', description: 'A string with ${NAME} references, replaced from the environment before validation.' }

interface DocObject {
  /** Keys in source order (spreads expanded). */
  readonly keys: readonly string[]
  /** TSDoc of each key. */
  readonly docs: ReadonlyMap<string, string>
  /** TSDoc of the variable holding the object, if any. */
  readonly doc: string | undefined
  readonly line: number
}

function jsDocText (node: ts.Node): string | undefined {
  const docs = (node as { jsDoc?: ts.JSDoc[] }).jsDoc
  const last = docs?.at(-1)
  if (last === undefined) return undefined
  const text = ts.getTextOfJSDocComment(last.comment)
  return text === undefined || text.trim() === '' ? undefined : text.replace(/\s+/g, ' ').trim()
}

/**
 * Every object literal given to z.strictObject / z.object in schema.ts, with
 * the TSDoc of its keys. Matched to the generated schema by ordered key list.
 */
export function docObjects (file = SCHEMA_SOURCE): DocObject[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true)
  const literals = new Map<string, ts.ObjectLiteralExpression>()
  const visitVars = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer !== undefined && ts.isObjectLiteralExpression(node.initializer)) {
      literals.set(node.name.text, node.initializer)
    }
    ts.forEachChild(node, visitVars)
  }
  visitVars(source)

  const expand = (lit: ts.ObjectLiteralExpression, keys: string[], docs: Map<string, string>): void => {
    for (const p of lit.properties) {
      if (ts.isSpreadAssignment(p) && ts.isIdentifier(p.expression)) {
        const target = literals.get(p.expression.text)
        if (target === undefined) throw new Error(`gen-schema: cannot resolve spread ...${p.expression.text} in ${file}`)
        expand(target, keys, docs)
      } else if ((ts.isPropertyAssignment(p) || ts.isShorthandPropertyAssignment(p)) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) {
        keys.push(p.name.text)
        const d = jsDocText(p)
        if (d !== undefined) docs.set(p.name.text, d)
      }
    }
  }
  /** The TSDoc of `const x = z.strictObject(...)...`, through any method chain. */
  const holderDoc = (call: ts.Node): string | undefined => {
    let n: ts.Node = call
    while (ts.isPropertyAccessExpression(n.parent) || (ts.isCallExpression(n.parent) && n.parent.expression === n)) n = n.parent
    if (ts.isVariableDeclaration(n.parent) && ts.isVariableDeclarationList(n.parent.parent)) return jsDocText(n.parent.parent.parent)
    return undefined
  }

  const out: DocObject[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) &&
        ts.isIdentifier(node.expression.expression) && node.expression.expression.text === 'z' &&
        (node.expression.name.text === 'strictObject' || node.expression.name.text === 'object')) {
      const arg = node.arguments[0]
      const lit = arg === undefined ? undefined : ts.isObjectLiteralExpression(arg) ? arg : ts.isIdentifier(arg) ? literals.get(arg.text) : undefined
      if (lit !== undefined) {
        const keys: string[] = []
        const docs = new Map<string, string>()
        expand(lit, keys, docs)
        out.push({ keys, docs, doc: holderDoc(node), line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 })
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return out
}

/** Index the doc objects by key list; two objects with the same keys must agree on their docs. */
function indexDocs (objects: readonly DocObject[]): Map<string, DocObject> {
  const index = new Map<string, DocObject>()
  for (const o of objects) {
    const sig = o.keys.join(',')
    const prev = index.get(sig)
    if (prev === undefined) {
      index.set(sig, o)
      continue
    }
    for (const k of o.keys) {
      if (prev.docs.get(k) !== o.docs.get(k)) {
        throw new Error(`gen-schema: schema.ts lines ${prev.line} and ${o.line} define objects with the same keys (${sig}) but different TSDoc for ${k}: make the docs agree, or the keys differ`)
      }
    }
  }
  return index
}

function isObject (v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Child schemas of a node, for a full walk. */
function children (node: Json): Json[] {
  const out: Json[] = []
  if (isObject(node.properties)) out.push(...Object.values(node.properties).filter(isObject))
  for (const k of ['items', 'additionalProperties', 'propertyNames']) if (isObject(node[k])) out.push(node[k])
  for (const k of ['anyOf', 'oneOf', 'allOf']) if (Array.isArray(node[k])) out.push(...(node[k] as unknown[]).filter(isObject))
  return out
}

/** Attach TSDoc descriptions, top-down: a field's own TSDoc wins over the TSDoc of the object it holds. */
function describe (node: Json, index: ReadonlyMap<string, DocObject>): void {
  if (isObject(node.properties)) {
    const props = node.properties
    const doc = index.get(Object.keys(props).join(','))
    if (doc !== undefined) {
      if (node.description === undefined && doc.doc !== undefined) node.description = doc.doc
      for (const [k, v] of Object.entries(props)) {
        const d = doc.docs.get(k)
        if (d !== undefined && isObject(v)) v.description = d
      }
    }
  }
  for (const c of children(node)) describe(c, index)
}

function envRefFor (node: Json): typeof ENV_REF | typeof ENV_REF_IN_STRING | undefined {
  if (node.type === 'number' || node.type === 'integer' || node.type === 'boolean') return ENV_REF
  if (node.type === 'string' && Array.isArray(node.enum)) return ENV_REF_IN_STRING
  return undefined
}

/**
 * A number, boolean or enum may also be written as `${NAME}` (typed substitution).
 * A union gets the reference as one more branch; a lone scalar is wrapped, with
 * its description kept on the outer node so that editors still show it.
 */
function allowEnvRefs (node: Json, wrap = true): Json {
  for (const [k, v] of Object.entries(node)) {
    if (k === 'properties' && isObject(v)) {
      for (const [pk, pv] of Object.entries(v)) if (isObject(pv)) v[pk] = allowEnvRefs(pv)
    } else if ((k === 'items' || k === 'additionalProperties') && isObject(v)) {
      node[k] = allowEnvRefs(v)
    } else if (k === 'anyOf' && Array.isArray(v)) {
      const branches = v.map((s) => isObject(s) ? allowEnvRefs(s, false) : s)
      const refs = new Set(branches.map((s) => isObject(s) ? envRefFor(s) : undefined).filter((r) => r !== undefined))
      node[k] = [...branches, ...refs]
    }
  }
  const ref = envRefFor(node)
  if (!wrap || ref === undefined) return node
  const { description, ...rest } = node
  return description === undefined ? { anyOf: [rest, ref] } : { description, anyOf: [rest, ref] }
}

/** `type` decides which other keys upstreamAuth takes and needs (as its superRefine does). */
function upstreamAuthRules (root: Json): void {
  const routes = (root.properties as Json).routes as Json
  const auth = ((routes.items as Json).properties as Json).upstreamAuth as Json | undefined
  if (auth === undefined || !isObject(auth.properties)) throw new Error('gen-schema: routes[].upstreamAuth not found in the generated schema')
  auth.allOf = Object.entries(UPSTREAM_AUTH_KEYS).map(([type, keys]) => ({
    if: { properties: { type: { const: type } }, required: ['type'] },
    then: {
      propertyNames: { enum: ['type', ...keys] },
      ...(UPSTREAM_AUTH_REQUIRED[type as keyof typeof UPSTREAM_AUTH_REQUIRED].length > 0 ? { required: [...UPSTREAM_AUTH_REQUIRED[type as keyof typeof UPSTREAM_AUTH_REQUIRED]] } : {})
    }
  }))
}

/** The JSON Schema of the config file, as an object. */
export function generateSchema (): Json {
  let secretRefs = 0
  const generated = z.toJSONSchema(configSchema, {
    target: 'draft-07',
    io: 'input',
    // A zod type with no JSON Schema form must be handled here, not silently widened.
    unrepresentable: 'throw',
    override: (ctx) => {
      if (ctx.zodSchema === secretRefSchema) {
        secretRefs++
        Object.assign(ctx.jsonSchema, {
          title: SECRET_REF_TITLE,
          description: 'A secret given by reference, never inline: exactly one of fromEnv (an environment variable) or fromFile (a file; relative to the config file). Resolved once at load time.',
          minProperties: 1,
          maxProperties: 1
        })
      }
    }
  }) as Json
  if (secretRefs === 0) throw new Error('gen-schema: secretRefSchema was not found in configSchema')
  // zod may share one JSON object between the places a schema is used: copy before editing per place.
  const body = JSON.parse(JSON.stringify(generated)) as Json
  delete body.$schema
  describe(body, indexDocs(docObjects()))
  upstreamAuthRules(body)
  const withEnv = allowEnvRefs(body)
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: SCHEMA_ID,
    title: 'mcp-auth-gateway configuration',
    ...withEnv,
    description: 'The mcp-auth-gateway YAML configuration file (docs/configuration.md). Generated from src/config/schema.ts by `npm run schema`. It checks structure, types, ranges and unknown keys; URL, header-name and cross-field rules are checked by `mcp-auth-gateway --check`.'
  }
}

/** The file's exact text: stable key order, 2-space indent, trailing newline. */
export function generateSchemaText (): string {
  return JSON.stringify(generateSchema(), null, 2) + '\n'
}

/** Dotted paths (routes[].policy.tools) of keys without a description. */
export function undocumentedKeys (schema: Json): string[] {
  const out: string[] = []
  const walk = (node: Json, path: string): void => {
    if (isObject(node.properties)) {
      for (const [k, v] of Object.entries(node.properties)) {
        if (!isObject(v)) continue
        const p = path === '' ? k : `${path}.${k}`
        if (v.description === undefined) out.push(p)
        walk(v, p)
      }
    }
    if (isObject(node.items)) walk(node.items, `${path}[]`)
    for (const k of ['anyOf', 'oneOf']) if (Array.isArray(node[k])) for (const s of node[k] as unknown[]) if (isObject(s)) walk(s, path)
  }
  walk(schema, '')
  return out
}

function main (args: readonly string[]): number {
  const text = generateSchemaText()
  const missing = undocumentedKeys(JSON.parse(text) as Json)
  if (missing.length > 0) process.stderr.write(`gen-schema: keys without TSDoc in src/config/schema.ts (no description in the schema):\n  ${missing.join('\n  ')}\n`)
  if (args.includes('--check')) {
    let current = ''
    try { current = readFileSync(SCHEMA_PATH, 'utf8') } catch { /* missing counts as stale */ }
    if (current !== text) {
      process.stderr.write(`gen-schema: ${SCHEMA_PATH} is out of date with src/config/schema.ts: run npm run schema\n`)
      return 1
    }
    process.stdout.write(`gen-schema: ${SCHEMA_PATH} is up to date\n`)
    return 0
  }
  mkdirSync(dirname(SCHEMA_PATH), { recursive: true })
  writeFileSync(SCHEMA_PATH, text)
  process.stdout.write(`gen-schema: wrote ${SCHEMA_PATH}\n`)
  return 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2))
}
