/**
 * schema/gateway.schema.json, the JSON Schema editors use for the config file:
 * - it is exactly what scripts/gen-schema.ts generates from src/config/schema.ts
 *   today (so it cannot drift from the runtime validation);
 * - every config the project ships validates against it (ajv, draft-07):
 *   gateway.example.yaml, the complete YAML blocks of the docs, the valid
 *   fixtures, and every gateway config found under deploy/ (ConfigMaps,
 *   compose files, the Helm chart rendered with its default values);
 * - it rejects the structural problems of the invalid fixtures (unknown key,
 *   missing key, wrong type, enum, range) at the same path as the loader;
 * - every object is closed (additionalProperties: false), at the top level
 *   and nested.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import t from 'tap'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { parse, parseAllDocuments } from 'yaml'
import { generateSchemaText, SCHEMA_PATH, undocumentedKeys } from '../../scripts/gen-schema.js'

const ROOT = join(import.meta.dirname, '..', '..')
const FIXTURES = join(ROOT, 'test', 'fixtures', 'config')
const DEPLOY = join(ROOT, 'deploy')

type Json = Record<string, unknown>
/** The type of `t` inside a subtest. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const committed = readFileSync(SCHEMA_PATH, 'utf8')
const schema = JSON.parse(committed) as Json
// strict: unknown keywords are errors. Type unions (requiredClaims values) and `required`
// inside if/then (upstreamAuth) are valid draft-07 that strict mode would flag.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, strictRequired: false })
const validate: ValidateFunction = ajv.compile(schema)

function errorsOf (value: unknown): ErrorObject[] {
  return validate(value) ? [] : [...(validate.errors ?? [])]
}

function describeErrors (errors: readonly ErrorObject[]): string {
  return errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'if').map((e) => `${e.instancePath || '(root)'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`).join('\n  ')
}

t.test('the committed schema is what scripts/gen-schema.ts generates from src/config/schema.ts', async (t) => {
  t.ok(committed === generateSchemaText(), 'schema/gateway.schema.json is out of date with src/config/schema.ts: run `npm run schema` and commit the result')
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#', 'draft-07: what yaml-language-server supports')
  t.type(schema.$id, 'string')
  t.type(schema.title, 'string')
  t.type(schema.description, 'string')
  t.ok(ajv.validateSchema(schema), 'a valid draft-07 schema')
})

t.test('every key has a description, taken from its TSDoc in src/config/schema.ts', async (t) => {
  const missing = undocumentedKeys(schema)
  t.strictSame(missing, [], `keys without TSDoc in src/config/schema.ts (add a /** … */ comment on the field, then npm run schema):\n  ${missing.join('\n  ')}`)
})

t.test('the package publishes the schema and the example config points at it', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[], scripts: Record<string, string> }
  t.ok(pkg.files.includes('schema'), 'package.json files has schema')
  t.equal(pkg.scripts.schema, 'tsx scripts/gen-schema.ts')
  const first = readFileSync(join(ROOT, 'gateway.example.yaml'), 'utf8').split('\n')[0]
  t.equal(first, '# yaml-language-server: $schema=./schema/gateway.schema.json')
})

// --- Every shipped config validates -----------------------------------------

/** ```yaml blocks of a Markdown file; `# fragment` first lines mark partial ones (as in provider-docs.test.ts). */
function yamlBlocks (file: string): Array<{ line: number, text: string, fragment: boolean }> {
  const lines = readFileSync(file, 'utf8').split('\n')
  const out: Array<{ line: number, text: string, fragment: boolean }> = []
  let start = -1
  let body: string[] = []
  lines.forEach((l, i) => {
    if (start === -1) {
      if (/^```ya?ml\s*$/.test(l)) { start = i; body = [] }
    } else if (/^```\s*$/.test(l)) {
      out.push({ line: start + 1, text: body.join('\n') + '\n', fragment: /^#\s*fragment\b/.test(body[0] ?? '') })
      start = -1
    } else body.push(l)
  })
  return out
}

function assertValid (t: Test, label: string, value: unknown): void {
  const errors = errorsOf(value)
  t.strictSame(errors, [], errors.length === 0 ? `${label} validates` : `${label} does not validate:\n  ${describeErrors(errors)}`)
}

t.test('gateway.example.yaml validates', async (t) => {
  assertValid(t, 'gateway.example.yaml', parse(readFileSync(join(ROOT, 'gateway.example.yaml'), 'utf8')))
})

t.test('every complete YAML block in the docs validates', async (t) => {
  const providers = join(ROOT, 'docs', 'providers')
  const files = [...readdirSync(providers).filter((f) => f.endsWith('.md')).sort().map((f) => join(providers, f)), join(ROOT, 'docs', 'configuration.md')]
  let complete = 0
  for (const file of files) {
    for (const b of yamlBlocks(file)) {
      if (b.fragment) continue
      complete++
      assertValid(t, `${relative(ROOT, file)} yaml block at line ${b.line}`, parse(b.text))
    }
  }
  t.ok(complete >= 8, `${complete} complete blocks checked`)
})

t.test('the valid fixtures validate', async (t) => {
  const valid = readdirSync(FIXTURES).filter((f) => f.startsWith('valid-') && f.endsWith('.yaml')).sort()
  t.ok(valid.length >= 3, `${valid.length} valid fixtures`)
  for (const f of valid) assertValid(t, f, parse(readFileSync(join(FIXTURES, f), 'utf8')))
})

/** A mapping that is a whole gateway config (both required lists present). */
function isGatewayConfig (v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && 'authorizationServers' in v && 'routes' in v
}

/** Gateway configs inside a parsed YAML document: itself, a nested mapping, or a string holding YAML (ConfigMap data, compose configs.content). */
function findConfigs (v: unknown, where: string, out: Array<{ where: string, config: Json }>): void {
  if (isGatewayConfig(v)) {
    out.push({ where, config: v })
    return
  }
  if (typeof v === 'string' && v.includes('authorizationServers') && v.includes('routes')) {
    let inner: unknown
    try { inner = parse(v) } catch { return }
    if (isGatewayConfig(inner)) out.push({ where, config: inner })
    return
  }
  if (Array.isArray(v)) v.forEach((e, i) => { findConfigs(e, `${where}[${i}]`, out) })
  else if (v !== null && typeof v === 'object') for (const [k, e] of Object.entries(v)) findConfigs(e, where === '' ? k : `${where}.${k}`, out)
}

function walkFiles (dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? walkFiles(p) : [p]
  })
}

t.test('every gateway config under deploy/ validates (each file is accounted for)', async (t) => {
  const files = walkFiles(DEPLOY).filter((f) => /\.ya?ml$/.test(f))
  if (files.length === 0) {
    t.comment('deploy/ holds no YAML yet')
    t.pass('nothing to check')
    return
  }
  const charts = new Set(files.filter((f) => f.endsWith('/Chart.yaml')).map((f) => dirname(f)))
  let found = 0
  for (const file of files) {
    const rel = relative(ROOT, file)
    const chart = [...charts].find((c) => file.startsWith(c + '/'))
    if (chart !== undefined && file.startsWith(join(chart, 'templates') + '/')) {
      t.comment(`${rel}: Helm template, checked through the rendered chart below`)
      continue
    }
    const configs: Array<{ where: string, config: Json }> = []
    let docs
    try {
      docs = parseAllDocuments(readFileSync(file, 'utf8'))
    } catch (err) {
      t.fail(`${rel}: cannot be parsed as YAML (${(err as Error).message})`)
      continue
    }
    for (const [i, d] of (Array.isArray(docs) ? docs : [docs]).entries()) {
      t.strictSame(d.errors.map((e) => e.message), [], `${rel} document ${i + 1} is well-formed YAML`)
      findConfigs(d.toJS(), `document ${i + 1}`, configs)
    }
    if (configs.length === 0) t.comment(`${rel}: holds no complete gateway config (${chart !== undefined ? 'chart metadata or values, checked through the rendered chart' : 'no mapping with authorizationServers and routes'})`)
    for (const c of configs) {
      found++
      assertValid(t, `${rel} (${c.where})`, c.config)
    }
  }
  for (const chart of charts) {
    const rel = relative(ROOT, chart)
    const renderer = join(ROOT, 'scripts', 'render-helm.ts')
    t.ok(existsSync(renderer), `${rel}: scripts/render-helm.ts renders the chart without helm`)
    if (!existsSync(renderer)) continue
    const { renderChart } = await import('../../scripts/render-helm.js') as { renderChart: (dir: string) => { manifest: string } }
    const configs: Array<{ where: string, config: Json }> = []
    for (const [i, d] of parseAllDocuments(renderChart(chart).manifest).entries()) findConfigs(d.toJS(), `rendered document ${i + 1}`, configs)
    t.ok(configs.length > 0, `${rel}: the chart rendered with its default values holds a gateway config`)
    for (const c of configs) {
      found++
      assertValid(t, `${rel} rendered with default values (${c.where})`, c.config)
    }
  }
  t.ok(found > 0, `${found} gateway configs found under deploy/`)
})

// --- Invalid fixtures: the schema rejects the structural problems ------------

/** `routes[0].policy.tools[""]` → ['routes', 0, 'policy', 'tools', ''] */
function parsePath (path: string): Array<string | number> {
  if (path === '(root)') return []
  const out: Array<string | number> = []
  for (const m of path.matchAll(/\[""\]|\[(\d+)\]|\.?([^.[]+)/g)) {
    if (m[0] === '[""]') out.push('')
    else if (m[1] !== undefined) out.push(Number(m[1]))
    else out.push(m[2]!)
  }
  return out
}

const pointer = (path: ReadonlyArray<string | number>): string => path.map((p) => '/' + String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('')

interface Expectation {
  /** Which error proves the schema catches the problem: at the key's path or at its parent. */
  readonly at: 'path' | 'parent'
  readonly keywords: readonly string[]
  /** For parent errors: the params field naming the key. */
  readonly param?: string
}

/** Loader messages whose problem is structural, and the ajv error that must match each. */
const STRUCTURAL: ReadonlyArray<readonly [RegExp, Expectation]> = [
  [/^unknown key: /, { at: 'parent', keywords: ['additionalProperties'], param: 'additionalProperty' }],
  [/^missing: this key is required$/, { at: 'parent', keywords: ['required'], param: 'missingProperty' }],
  [/^missing: type \w+ needs \w+$/, { at: 'parent', keywords: ['required'], param: 'missingProperty' }],
  [/^not used by type \w+: /, { at: 'parent', keywords: ['propertyNames'], param: 'propertyName' }],
  [/^got (a |null)/, { at: 'path', keywords: ['type', 'anyOf'] }],
  [/^not a mapping: /, { at: 'path', keywords: ['type'] }],
  [/^(unsupported value|unsupported algorithm): /, { at: 'path', keywords: ['enum'] }],
  [/^not exactly one source: /, { at: 'path', keywords: ['minProperties', 'maxProperties'] }],
  [/^(not positive|too large|too small|negative|out of range|empty list|not an integer): /, { at: 'path', keywords: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'maxItems', 'type'] }]
]

/** Fixtures the schema must reject, with the kind of problem that makes them structural. */
const REJECTED: Readonly<Record<string, string>> = {
  'unknown-keys.yaml': 'unknown keys at the top level and nested',
  'wrong-types.yaml': 'wrong types at the top level',
  'wrong-types-nested.yaml': 'wrong types in nested objects',
  'missing-required.yaml': 'required keys absent',
  'missing-lists.yaml': 'required lists absent',
  'not-a-mapping.yaml': 'the document is a list',
  'scalar-document.yaml': 'the document is a scalar',
  'empty-lists.yaml': 'lists that need an entry',
  'ranges.yaml': 'numbers out of range',
  'algorithms.yaml': 'unsupported algorithm names',
  'claims-overrides.yaml': 'claim mapping: bad profile, empty list, wrong types',
  'redis-url-scheme.yaml': 'a session TTL out of range',
  'policy-schema.yaml': 'policy: missing default, wrong types, unknown key',
  'introspection-schema.yaml': 'introspection: bad enum, secret with two sources',
  'sessions-schema.yaml': 'sessions/redis: unknown keys, enums, ranges',
  'edge-settings.yaml': 'rate limits and edge settings: unknown key, enums, ranges, missing key',
  'upstream-identity.yaml': 'upstreamAuth keys that the type does not take or needs'
}

const fixtureFiles = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml') && !f.startsWith('valid-')).sort()

t.test('the schema rejects the structurally invalid fixtures', async (t) => {
  for (const [name, why] of Object.entries(REJECTED)) {
    t.ok(fixtureFiles.includes(name), `${name} exists`)
    if (!fixtureFiles.includes(name)) continue
    const errors = errorsOf(parse(readFileSync(join(FIXTURES, name), 'utf8')))
    t.ok(errors.length > 0, `${name} is rejected (${why})`)
  }
})

t.test('each structural problem the loader reports, the schema reports at the same key', async (t) => {
  let checked = 0
  for (const name of fixtureFiles) {
    const docs = parseAllDocuments(readFileSync(join(FIXTURES, name), 'utf8'), { uniqueKeys: true })
    const doc = Array.isArray(docs) ? docs[0] : docs
    if (doc === undefined || doc.errors.length > 0) continue // YAML syntax errors: no document to validate
    const errors = errorsOf(doc.toJS())
    const expected = readFileSync(join(FIXTURES, name.replace(/\.yaml$/, '.expected.txt')), 'utf8').split('\n').filter((l) => l !== '')
    for (const line of expected) {
      const sep = line.indexOf(': ')
      const path = parsePath(line.slice(0, sep))
      const message = line.slice(sep + 2)
      const rule = STRUCTURAL.find(([re]) => re.test(message))?.[1]
      if (rule === undefined) continue
      checked++
      const at = pointer(rule.at === 'path' ? path : path.slice(0, -1))
      const key = path.at(-1)
      const hit = errors.some((e) => rule.keywords.includes(e.keyword) && e.instancePath === at &&
        (rule.param === undefined || (e.params as Record<string, unknown>)[rule.param] === key))
      t.ok(hit, `${name}: ${line}`)
      if (!hit) t.comment(`schema errors:\n  ${describeErrors(errors)}`)
    }
    if (!REJECTED[name] && expected.some((l) => STRUCTURAL.some(([re]) => re.test(l.slice(l.indexOf(': ') + 2))))) {
      t.fail(`${name} has structural problems: add it to REJECTED`)
    }
  }
  t.ok(checked >= 60, `${checked} structural problems matched`)
})

// --- Closed objects -----------------------------------------------------------

t.test('every object in the schema is closed (additionalProperties: false)', async (t) => {
  const open: string[] = []
  let objects = 0
  const walk = (node: Json, path: string): void => {
    if (node.properties !== undefined) {
      objects++
      if (node.additionalProperties !== false) open.push(path || '(root)')
      for (const [k, v] of Object.entries(node.properties as Record<string, Json>)) walk(v, path === '' ? k : `${path}.${k}`)
    }
    if (node.items !== undefined) walk(node.items as Json, `${path}[]`)
    for (const s of (node.anyOf ?? []) as Json[]) walk(s, path)
  }
  walk(schema, '')
  t.ok(objects >= 25, `${objects} objects`)
  t.strictSame(open, [], 'objects that accept unknown keys')
})

/** A valid config with every nested object the table below reaches. */
const BASE = parse(`
listen: { host: 127.0.0.1, port: 8080, tls: { certFile: c.pem, keyFile: k.pem } }
publicUrl: https://mcp.example.com
rateLimits: { perPrincipal: { key: subject, max: 10, windowSeconds: 60 } }
sessions: { store: memory }
redis: { url: redis://127.0.0.1:6379/0, password: { fromEnv: REDIS_PASSWORD } }
authorizationServers:
  - issuer: https://as.example.com
    tokenType: auto
    claims: { subject: sub }
    introspection:
      endpoint: https://as.example.com/introspect
      clientId: gw
      clientSecret: { fromEnv: INTROSPECTION_SECRET }
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001
    policy: { default: [] }
    identityHeaders: { subject: X-User }
    identityAssertion: { ttlSeconds: 30 }
    upstreamAuth: { type: header, value: { fromEnv: API_KEY } }
    timeouts: { connectSeconds: 5 }
limits: { maxBodyBytes: 1024 }
tokenCache: { maxEntries: 10 }
signingKeys: [{ file: key.pem }]
`) as Json

function withKey (base: Json, path: ReadonlyArray<string | number>, key: string): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>
  let cur = copy
  for (const p of path) cur = cur[p] as Record<string | number, unknown>
  cur[key] = 1
  return copy
}

t.test('unknown keys are rejected at the top level and in nested objects', async (t) => {
  assertValid(t, 'the base config', BASE)
  const places: ReadonlyArray<ReadonlyArray<string | number>> = [
    [], ['listen'], ['listen', 'tls'], ['rateLimits'], ['rateLimits', 'perPrincipal'], ['sessions'], ['redis'], ['redis', 'password'],
    ['authorizationServers', 0], ['authorizationServers', 0, 'claims'], ['authorizationServers', 0, 'introspection'],
    ['authorizationServers', 0, 'introspection', 'clientSecret'],
    ['routes', 0], ['routes', 0, 'policy'], ['routes', 0, 'identityHeaders'], ['routes', 0, 'identityAssertion'],
    ['routes', 0, 'upstreamAuth'], ['routes', 0, 'upstreamAuth', 'value'], ['routes', 0, 'timeouts'],
    ['limits'], ['tokenCache'], ['signingKeys', 0]
  ]
  for (const place of places) {
    const errors = errorsOf(withKey(BASE, place, 'notAKey'))
    t.ok(errors.some((e) => e.keyword === 'additionalProperties' && e.instancePath === pointer(place) && e.params.additionalProperty === 'notAKey'),
      `notAKey at ${pointer(place) || '(root)'} is rejected`)
  }
})

t.test('value rules zod checks in code are not in the schema, but its types are', async (t) => {
  // Documented limit: URL and header-name rules stay with `--check`; types, enums and ranges are here.
  const cases: ReadonlyArray<readonly [string, unknown, boolean]> = [
    ['publicUrl with a path (a refinement)', { ...BASE, publicUrl: 'https://mcp.example.com/x' }, true],
    ['port as ${PORT} (typed substitution)', { ...BASE, listen: { port: '${PORT}' } }, true],
    ['logLevel as ${LEVEL}', { ...BASE, logLevel: '${LEVEL}' }, true],
    ['port as a word', { ...BASE, listen: { port: 'eighty' } }, false],
    ['port out of range', { ...BASE, listen: { port: 70000 } }, false],
    ['logLevel not in the enum', { ...BASE, logLevel: 'verbose' }, false],
    ['a secret with both sources', { ...BASE, redis: { url: 'redis://h', password: { fromEnv: 'A', fromFile: 'b' } } }, false],
    ['a secret with no source', { ...BASE, redis: { url: 'redis://h', password: {} } }, false],
    ['upstreamAuth header without value', { ...BASE, routes: [{ path: '/m', upstream: 'http://127.0.0.1:1', upstreamAuth: { type: 'header' } }] }, false],
    ['upstreamAuth none with a value', { ...BASE, routes: [{ path: '/m', upstream: 'http://127.0.0.1:1', upstreamAuth: { type: 'none', value: { fromEnv: 'A' } } }] }, false]
  ]
  for (const [label, value, ok] of cases) t.equal(errorsOf(value).length === 0, ok, `${label}: ${ok ? 'accepted' : 'rejected'}`)
})
