/**
 * The layout rules of docs/architecture.md ("Dependency direction"), read from the source: which layer may
 * import which. Regression test for config/ importing the layers above it
 * (config/schema.ts took normaliseOrigin from policy/, checkTrustedRange from
 * proxy/, and config/upstream-identity.ts parsePrivateKey from identity/).
 */
import { test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

interface Import { from: string, to: string, typeOnly: boolean, spec: string }

function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}

/** Every static `import … from '…'` and `export … from '…'` of every file under src/, internal ones resolved to src-relative paths. */
function imports (): Import[] {
  const out: Import[] = []
  const re = /^(import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'/gm
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(re)) {
      const spec = m[3]!
      const to = spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '') : spec
      out.push({ from: relative(SRC, file).replace(/\.ts$/, ''), to, typeOnly: m[2] !== undefined, spec })
    }
  }
  return out
}

/** The layer of a src-relative module: its directory, or the file name for top-level files. */
const layer = (mod: string): string => mod.includes('/') ? mod.slice(0, mod.indexOf('/')) : mod

const all = imports()
const internal = all.filter((i) => i.spec.startsWith('.'))

test('the scan finds the imports it checks', (t) => {
  t.ok(internal.length > 100, `internal imports found (${internal.length})`)
  t.ok(internal.some((i) => i.from === 'plugins/mcp-route' && i.to === 'proxy/forwarder'), 'a known import is seen')
  t.end()
})

test('config/ imports only config/ and errors (it is the bottom layer)', (t) => {
  const bad = internal.filter((i) => layer(i.from) === 'config' && layer(i.to) !== 'config' && i.to !== 'errors')
  t.same(bad.map((i) => `${i.from} → ${i.to}`), [], 'no import from config/ into a layer above it')
  t.end()
})

test('the core modules never import the plugin layer or the entry points', (t) => {
  const core = new Set(['config', 'auth', 'metadata', 'mcp', 'policy', 'proxy', 'observability', 'identity', 'session', 'errors'])
  const top = new Set(['plugins', 'gateway', 'runtime', 'main', 'index'])
  const bad = internal.filter((i) => core.has(layer(i.from)) && top.has(layer(i.to)))
  t.same(bad.map((i) => `${i.from} → ${i.to}`), [], 'core → plugins/gateway/runtime/main: none')
  t.end()
})

test('only the Fastify layer imports fastify', (t) => {
  const allowed = (from: string): boolean => layer(from) === 'plugins' || from === 'gateway' || from === 'index'
  const bad = all.filter((i) => /^(fastify|@fastify\/)/.test(i.spec) && !allowed(i.from))
  t.same(bad.map((i) => `${i.from} → ${i.spec}`), [], 'fastify imported only by plugins/, gateway.ts and index.ts (types)')
  t.end()
})

test('only config/load.ts reads process.env', (t) => {
  const readers = sourceFiles(SRC).filter((f) => /process\.env\b/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f))
  t.same(readers, ['config/load.ts'])
  t.end()
})

test('the layers form no cycle (type-only imports included)', (t) => {
  const edges = new Map<string, Set<string>>()
  for (const i of internal) {
    const a = layer(i.from)
    const b = layer(i.to)
    if (a === b) continue
    let s = edges.get(a)
    if (s === undefined) edges.set(a, s = new Set())
    s.add(b)
  }
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const visit = (n: string, path: string[]): void => {
    if (state.get(n) === 'done') return
    if (state.get(n) === 'open') {
      cycles.push([...path.slice(path.indexOf(n)), n].join(' → '))
      return
    }
    state.set(n, 'open')
    for (const m of edges.get(n) ?? []) visit(m, [...path, n])
    state.set(n, 'done')
  }
  for (const n of edges.keys()) visit(n, [])
  t.same(cycles, [], 'no layer reaches itself through others')
  t.end()
})
