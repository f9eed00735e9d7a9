/**
 * docs/configuration.md documents every key of the config schema.
 *
 * Convention: the "Key summary" table is the index of documented keys. Its
 * first column names keys in backticks, as the page already writes them:
 * - an absolute dotted path: `listen.host`, `routes[]` (a list of objects);
 * - a path starting with `.` (indentation allowed): relative to the last list
 *   row above it, so `  .issuer` under `authorizationServers[]` is
 *   `authorizationServers[].issuer`;
 * - alternatives after the first, separated by ` / ` (inside or between code
 *   spans): each replaces as many trailing segments of the previous path as it
 *   has, so `listen.tls.certFile` / `keyFile` is also `listen.tls.keyFile`,
 *   and `rateLimits.perIp.max` / `.perTool.max` is also `rateLimits.perTool.max`.
 *
 * Every leaf key of schema/gateway.schema.json (objects, nested objects, lists
 * of objects and the object branches of unions are walked; a secret reference
 * and a free-form mapping such as `routes[].claims` count as one key) must
 * appear, and every path in the table must exist in the schema.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SCHEMA_PATH, SECRET_REF_TITLE } from '../../scripts/gen-schema.js'

const ROOT = join(import.meta.dirname, '..', '..')
const DOC = join(ROOT, 'docs', 'configuration.md')

type Json = Record<string, unknown>

/** Leaf key paths and object key paths of a JSON Schema. */
function schemaKeys (schema: Json): { leaves: string[], objects: string[] } {
  const leaves: string[] = []
  const objects: string[] = []
  /** The object schemas a value may be: itself, list items, union branches. */
  const objectBranches = (node: Json): Array<{ node: Json, suffix: string }> => {
    const out: Array<{ node: Json, suffix: string }> = []
    if (node.properties !== undefined && node.title !== SECRET_REF_TITLE) out.push({ node, suffix: '' })
    if (node.items !== undefined) for (const b of objectBranches(node.items as Json)) out.push({ node: b.node, suffix: '[]' + b.suffix })
    for (const s of (node.anyOf ?? []) as Json[]) out.push(...objectBranches(s))
    return out
  }
  const hasScalarBranch = (node: Json): boolean => {
    const anyOf = node.anyOf as Json[] | undefined
    if (anyOf === undefined) return node.properties === undefined && (node.items === undefined || objectBranches(node.items as Json).length === 0)
    return anyOf.some(hasScalarBranch)
  }
  const walk = (node: Json, path: string): void => {
    for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Json>)) {
      const p = path === '' ? k : `${path}.${k}`
      const branches = objectBranches(v)
      // A key that may also be a scalar or a list of scalars (`audit.destination: stdout | { file }`) is documented itself too.
      if (branches.length === 0 || hasScalarBranch(v)) leaves.push(p)
      for (const b of branches) {
        objects.push(p + b.suffix)
        walk(b.node, p + b.suffix)
      }
    }
  }
  walk(schema, '')
  return { leaves, objects: [...new Set(objects)] }
}

/** Key paths named in the first column of the Key summary table (convention above). */
function documentedKeys (markdown: string): Set<string> {
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => /^## Key summary\s*$/.test(l))
  if (start === -1) throw new Error('docs/configuration.md has no "## Key summary" section')
  const out = new Set<string>()
  let listContext = ''
  for (const line of lines.slice(start + 1)) {
    if (/^## /.test(line)) break
    if (!line.startsWith('|') || /^\|\s*-/.test(line) || /^\|\s*key\s*\|/.test(line)) continue
    const cell = line.split('|')[1] ?? ''
    const items = [...cell.matchAll(/`([^`]*)`/g)].flatMap((m) => m[1]!.split(' / ')).map((s) => s.trim()).filter((s) => s !== '')
    let prev: string[] | undefined
    for (const [i, item] of items.entries()) {
      const segs = item.replace(/^\./, '').split('.')
      let path: string[]
      if (i === 0) {
        path = item.startsWith('.') ? [...listContext.split('.').filter((s) => s !== ''), ...segs] : segs
        if (!item.startsWith('.') && item.endsWith('[]')) listContext = item
      } else {
        path = [...prev!.slice(0, prev!.length - segs.length), ...segs]
      }
      out.add(path.join('.'))
      prev = path
    }
  }
  return out
}

const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Json
const markdown = readFileSync(DOC, 'utf8')
const { leaves, objects } = schemaKeys(schema)
const documented = documentedKeys(markdown)

t.test('the walk reaches every kind of key', async (t) => {
  t.ok(leaves.length >= 80, `${leaves.length} leaf keys`)
  const cases = ['listen.tls.certFile', 'authorizationServers[].introspection.clientSecret', 'routes[].policy.tools', 'routes[].upstreamAuth.type', 'rateLimits.perPrincipal.key', 'signingKeys[].file', 'trustProxy']
  for (const c of cases) t.ok(leaves.includes(c), `leaf ${c}`)
  for (const c of ['listen', 'listen.tls', 'authorizationServers[]', 'routes[].policy', 'signingKeys[]']) t.ok(objects.includes(c), `object ${c}`)
  t.notOk(leaves.includes('redis.password.fromEnv'), 'a secret reference is one key')
})

t.test('the table parser follows the page convention', async (t) => {
  const sample = [
    '## Key summary', '| key | type |', '|---|---|',
    '| `listen.tls.certFile` / `keyFile` | x |',
    '| `authorizationServers[]` | x |', '| `  .issuer` | x |', '| `  .claims.subject` / `.clientId` | x |',
    '| `rateLimits.perIp.max` / `.perTool.max` | x |',
    '| `  .identityHeaders.subject / clientId` | x |',
    '## next', '| `not.read` | x |'
  ].join('\n')
  t.strictSame([...documentedKeys(sample)].sort(), [
    'authorizationServers[]', 'authorizationServers[].claims.clientId', 'authorizationServers[].claims.subject', 'authorizationServers[].identityHeaders.clientId',
    'authorizationServers[].identityHeaders.subject', 'authorizationServers[].issuer', 'listen.tls.certFile', 'listen.tls.keyFile', 'rateLimits.perIp.max', 'rateLimits.perTool.max'
  ])
})

t.test('docs/configuration.md documents every key of the schema', async (t) => {
  const missing = leaves.filter((k) => !documented.has(k))
  t.strictSame(missing, [], `keys missing from the Key summary table of docs/configuration.md (add a row per key, see the convention in test/unit/config-docs.test.ts):\n  ${missing.join('\n  ')}`)
})

t.test('every key the table names exists in the schema', async (t) => {
  const known = new Set([...leaves, ...objects])
  const stale = [...documented].filter((k) => !known.has(k))
  t.strictSame(stale, [], `Key summary rows naming keys the schema does not have:\n  ${stale.join('\n  ')}`)
})
