/**
 * The npm package: the exact file list `npm pack` produces (compiled output,
 * declarations, docs, the example config and schema; no tests, fixtures,
 * sources, source maps or secrets), package.json's entry points, and a real
 * install of the packed tarball in a fresh project: the bin runs, the "."
 * export loads under import and require, deep imports are closed, and a
 * TypeScript consumer type-checks against the shipped declarations.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import t from 'tap'
import { ROOT, runCommand, type Run } from '../helpers/cli.js'

// npm pack, an install from the registry (or this machine's cache) and tsc.
t.setTimeout(300_000)

interface PackageJson {
  name: string
  version: string
  license: string
  main: string
  types: string
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
  engines: { node: string }
  files: string[]
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson


const listFiles = (dir: string): string[] => readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile())
  .map((d) => relative(ROOT, join(d.parentPath, d.name)))

/** Every path an export, main, types or bin points at. */
function entryTargets (p: PackageJson): string[] {
  const out = [p.main, p.types, ...Object.values(p.bin)]
  for (const v of Object.values(p.exports)) out.push(...(typeof v === 'string' ? [v] : Object.values(v)))
  return out.map((x) => x.replace(/^\.\//, ''))
}

const work = mkdtempSync(join(tmpdir(), 'gw-pack-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })

let packed: string[] = []
let tarball = ''

t.before(async () => {
  if (!existsSync(join(ROOT, 'dist/src/index.js'))) throw new Error('dist/src is missing: npm test builds before tap (npm run build)')
  const r = await runCommand('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT })
  if (r.code !== 0) throw new Error(`npm pack failed: ${r.stderr}`)
  // npm may print warnings before the JSON.
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string, mode: number }> }>
  packed = info[0]!.files.map((f) => f.path).sort()
  tarball = join(work, info[0]!.filename)
})

t.test('the tarball holds exactly the compiled output, declarations, docs, example config and schema', async (t) => {
  t.ok(existsSync(join(ROOT, 'dist/src/main.js')), 'dist/src is built (npm test builds before tap)')
  // One .js and one .d.ts per source module: a stale file in dist/ (a module since removed) shows up here.
  const modules = listFiles('src').filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => f.replace(/^src\//, 'dist/src/').replace(/\.ts$/, ''))
  const expected = [
    'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'gateway.example.yaml', 'schema/gateway.schema.json',
    ...modules.flatMap((m) => [`${m}.js`, `${m}.d.ts`])
  ].sort()
  t.same(packed, expected, 'npm pack file list')
})

t.test('nothing that must stay out of the package is in it', async (t) => {
  t.ok(packed.length > 50, `the list is real (${packed.length} files)`)
  const forbidden: Array<[string, RegExp]> = [
    ['tests', /^test\//],
    ['fixtures', /(?:^|\/)fixtures?\//],
    ['benchmarks', /^bench\//],
    ['scratch notes', /^\.scratch\//],
    ['local caches and tap state', /^\.(?:cache|tap)\//],
    ['scripts', /^scripts\//],
    ['deploy material', /^deploy\//],
    ['TypeScript sources', /^src\/|(?<!\.d)\.ts$/],
    ['source maps', /\.map$/],
    ['env files', /(?:^|\/)\.env(?:\.|$)/],
    ['keys and certificates', /\.(?:pem|key|crt|p12|jwk)$/],
    ['a local gateway.yaml', /(?:^|\/)gateway\.ya?ml$/],
    ['node_modules', /(?:^|\/)node_modules\//]
  ]
  for (const [what, re] of forbidden) t.same(packed.filter((p) => re.test(p)), [], `no ${what}`)
})

t.test('package.json: entry points exist in the tarball; license, engines, files', async (t) => {
  for (const target of entryTargets(pkg)) t.ok(packed.includes(target), `${target} is in the tarball`)
  t.same(pkg.exports['.'], { types: './dist/src/index.d.ts', default: './dist/src/index.js' }, '"." export: types first, then the ESM entry')
  t.equal(pkg.exports['./package.json'], './package.json')
  t.equal(pkg.bin['mcp-auth-gateway'], 'dist/src/main.js')
  t.match(readFileSync(join(ROOT, 'dist/src/main.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin has a node shebang')
  t.equal(pkg.license, 'MIT')
  t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) \d{4} mcp-auth-gateway contributors\n/)
  t.equal(pkg.engines.node, '>=20.19')
  t.match(readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8'), new RegExp(`^## \\[${pkg.version.replace(/\./g, '\\.')}\\]`, 'm'), 'CHANGELOG.md has a section for this version')
})

t.test('installed from the tarball in a fresh project: bin, import, require, closed deep imports, TypeScript types', async (t) => {
  const app = join(work, 'consumer')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }))
  // What a user gets: the tarball and its dependency ranges (no lockfile is published).
  const t0 = Date.now()
  const install = await runCommand('npm', ['install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app })
  t.comment(`installed in ${Date.now() - t0} ms`)
  t.equal(install.code, 0, 'npm install <tarball>', { stderr: install.stderr.slice(-2000) })
  const installed = join(app, 'node_modules', pkg.name)
  t.ok(existsSync(join(installed, 'dist/src/index.js')))
  const env = { ...process.env, PATH: `${join(app, 'node_modules/.bin')}:${process.env.PATH ?? ''}` }

  // The bin, through the link npm made (shebang, executable bit).
  const version = await runCommand(join(app, 'node_modules/.bin/mcp-auth-gateway'), ['--version'], { cwd: app, env })
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), pkg.version, 'mcp-auth-gateway --version')
  const check = await runCommand(join(app, 'node_modules/.bin/mcp-auth-gateway'), ['--check', '--config', join(installed, 'gateway.example.yaml')], { cwd: app, env: { PATH: env.PATH } })
  t.equal(check.code, 0, '--check on the packaged example config', { stderr: check.stderr })

  // import: the API works from the package (a gateway built from the example config answers /healthz).
  const esm = await runCommand(process.execPath, ['--input-type=module', '-e', `
    const m = await import('${pkg.name}')
    const config = m.loadConfig(${JSON.stringify(join(installed, 'gateway.example.yaml'))}, {})
    const app = m.createGateway(config, { logDestination: { write () {} } })
    const res = await app.inject({ method: 'GET', url: '/healthz' })
    const bad = (() => { try { m.loadConfig('missing.yaml') } catch (e) { return e instanceof m.ConfigError } })()
    await app.close()
    console.log(JSON.stringify({ exports: Object.keys(m).sort(), status: res.statusCode, body: res.json(), configError: bad }))
  `], { cwd: app })
  t.equal(esm.code, 0, 'import', { stderr: esm.stderr })
  t.same(JSON.parse(esm.stdout.trim().split('\n').at(-1) ?? '{}'), {
    exports: ['AuditOpenError', 'ConfigError', 'GatewayError', 'InvalidRequestError', 'InvalidTokenError', 'TemporarilyUnavailableError', 'createGateway', 'loadConfig', 'parseConfig'],
    status: 200,
    body: { status: 'ok' },
    configError: true
  })

  // require: CommonJS consumers load the ESM entry (require(esm), Node >= 20.19, the engines floor).
  const cjs = await runCommand(process.execPath, ['-e', `
    const m = require('${pkg.name}')
    console.log(JSON.stringify([typeof m.createGateway, typeof m.loadConfig, require('${pkg.name}/package.json').version]))
  `], { cwd: app })
  t.equal(cjs.code, 0, 'require', { stderr: cjs.stderr })
  t.same(JSON.parse(cjs.stdout.trim().split('\n').at(-1) ?? '[]'), ['function', 'function', pkg.version])

  // Internals are not part of the API: the exports map closes them.
  const deep = await runCommand(process.execPath, ['--input-type=module', '-e', `await import('${pkg.name}/dist/src/gateway.js')`], { cwd: app })
  t.not(deep.code, 0, 'a deep import fails')
  t.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/)

  // TypeScript: the "types" condition resolves, and the types are real (the @ts-expect-error
  // lines fail the check if loadConfig or createGateway were typed any).
  writeFileSync(join(app, 'consumer.ts'), `
import { createGateway, loadConfig, ConfigError, type GatewayConfig, type RouteConfig } from '${pkg.name}'
import type { FastifyInstance } from 'fastify'
const config: GatewayConfig = loadConfig('gateway.yaml')
const routes: readonly RouteConfig[] = config.routes
const app: FastifyInstance = createGateway(config)
const problems: readonly string[] = new ConfigError(['x']).problems
// @ts-expect-error a path is a string
loadConfig(42)
// @ts-expect-error createGateway takes a loaded config, not a path
createGateway('gateway.yaml')
export { app, problems, routes }
`)
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      strict: true,
      noEmit: true,
      // Checking every dependency's declarations costs ~30 s here; the @ts-expect-error lines
      // already fail if the shipped declarations do not resolve (everything would be any).
      skipLibCheck: true,
      // @types/node is a devDependency of the consumer in real life; borrowed from this repo here.
      typeRoots: [join(ROOT, 'node_modules/@types')],
      types: ['node']
    },
    files: ['consumer.ts']
  }))
  const tsc = await runCommand(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: app })
  t.comment(`all steps in ${Date.now() - t0} ms`)
  t.equal(tsc.code, 0, 'a TypeScript consumer type-checks against the shipped declarations', { stdout: tsc.stdout.slice(-3000) })
})
