/**
 * The container image without a Docker engine (none runs in CI): the Dockerfile
 * is parsed, its required facts checked (multi-stage, Node 24 slim, non-root,
 * production dependencies only, HEALTHCHECK on /healthz, config path from env),
 * and then its steps are followed in temporary directories that stand for the
 * two stages' file systems: every COPY (filtered by .dockerignore) and every
 * RUN, then the runtime stage's ENTRYPOINT with its ENV. The installed gateway
 * must pass `--check` on the example config, start with the config named by
 * the image's env var, answer /healthz and 401 challenges, let a real token
 * through, satisfy the image's own HEALTHCHECK command, and exit 0 on SIGTERM.
 * A broken production install (a dependency in devDependencies, a file the
 * image does not copy, a lockfile out of step) fails here.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join, posix, relative } from 'node:path'
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { DEFAULT_LISTEN_PORT } from '../../src/config/defaults.js'
import { ROOT, runCommand, startCli, type Run } from '../helpers/cli.js'
import { startAuthServer } from '../helpers/as.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { INITIALIZE_BODY, mcpHeaders } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'

// npm ci, tsc and a real gateway run: minutes on a busy 2-core machine, seconds usually.
t.setTimeout(300_000)

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string, license: string, dependencies: Record<string, string>, devDependencies: Record<string, string>
}

// ---------------------------------------------------------------- Dockerfile parsing

interface Instruction { op: string, args: string, line: number }
interface Stage { from: string, name: string | undefined, steps: Instruction[] }

/** Instructions with continuation lines joined; comments and parser directives dropped. */
function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  let buf = ''
  let start = 0
  text.split('\n').forEach((raw, i) => {
    if (/^\s*#/.test(raw)) return // comments, also inside a continued instruction (as Docker does)
    const line = raw.trimEnd()
    if (buf === '' && line.trim() === '') return
    if (buf === '') start = i + 1
    if (line.endsWith('\\')) { buf += line.slice(0, -1) + ' '; return }
    buf += line
    const m = /^\s*(\S+)\s*(.*)$/s.exec(buf)!
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start })
    buf = ''
  })
  return out
}

function stagesOf (steps: Instruction[]): Stage[] {
  const stages: Stage[] = []
  for (const s of steps) {
    if (s.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(s.args)
      stages.push({ from: m?.[1] ?? s.args, name: m?.[2], steps: [] })
    } else {
      stages.at(-1)?.steps.push(s)
    }
  }
  return stages
}

/** Whitespace-separated words, double quotes grouping (LABEL/ENV values with spaces). */
function words (s: string): string[] {
  return [...s.matchAll(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g)].map((m) => m[0].replace(/"((?:[^"\\]|\\.)*)"/g, '$1'))
}

/** key=value pairs of ENV, LABEL and ARG, with ${NAME} from `vars`. */
function pairs (args: string, vars: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {}
  for (const w of words(args)) {
    const eq = w.indexOf('=')
    if (eq > 0) out[w.slice(0, eq)] = w.slice(eq + 1).replace(/\$\{(\w+)\}/g, (_m, n: string) => vars[n] ?? '')
  }
  return out
}

/** The JSON (exec) form of RUN/CMD/ENTRYPOINT; undefined for the shell form. */
function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  const v: unknown = JSON.parse(args)
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined
}

const ops = (stage: Stage, op: string): Instruction[] => stage.steps.filter((s) => s.op === op)

// ---------------------------------------------------------------- .dockerignore

/** Docker's matching: a pattern excludes a path or any directory above it; `!` re-includes; the last match wins. */
function dockerignore (text: string): (path: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!')
    const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''))
    const re = new RegExp('^' + pattern.split(/(\*\*\/|\*\*|\*|\?)/).map((part) =>
      part === '**/' ? '(?:.*/)?' : part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    ).join('') + '$')
    return { negate, re }
  })
  return (path) => {
    const segs = path.split('/')
    const candidates = segs.map((_s, i) => segs.slice(0, i + 1).join('/'))
    let excluded = false
    for (const r of rules) if (candidates.some((c) => r.re.test(c))) excluded = !r.negate
    return excluded
  }
}

function filesUnder (root: string, rel: string): string[] {
  const abs = join(root, rel)
  if (!statSync(abs).isDirectory()) return [rel]
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(root, join(d.parentPath, d.name)))
}

// ---------------------------------------------------------------- the facts the issue requires

const dockerfileText = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const stages = stagesOf(parseDockerfile(dockerfileText))
const runtime = stages.at(-1)!
const ignoreText = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
const ignored = dockerignore(ignoreText)

t.test('Dockerfile: multi-stage, Node 24 slim, non-root, production dependencies only, HEALTHCHECK on /healthz, config from env', async (t) => {
  t.ok(stages.length >= 2, `multi-stage (${stages.length} FROM lines)`)
  for (const s of stages) t.match(s.from, /^node:24(?:-(?:bookworm|trixie))?-slim(?:@sha256:[0-9a-f]{64})?$/, `FROM ${s.from}: Node 24 slim, major pinned`)
  const build = stages.find((s) => s.name !== undefined && s !== runtime)
  t.ok(build, 'a named build stage')
  t.ok(build !== undefined && ops(build, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)), 'the build stage runs npm run build')

  const runs = ops(runtime, 'RUN').map((r) => r.args)
  t.ok(runs.some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r)), 'the runtime stage installs with npm ci --omit=dev')
  t.notOk(runs.some((r) => /\bnpm (?:install|i)\b/.test(r)), 'no npm install (which would ignore the lockfile)')
  t.ok(ops(runtime, 'COPY').some((c) => c.args.startsWith('--from=')), 'the runtime stage takes the compiled output from the build stage')
  t.notOk(ops(runtime, 'COPY').some((c) => /(?:^|\s)(?:\.\/?|src\/?|node_modules\/?)(?:\s|$)/.test(c.args.replace(/\s\S+$/, ''))), 'no sources, whole context or node_modules copied into the runtime stage')

  const users = ops(runtime, 'USER')
  t.equal(users.length, 1, 'one USER in the runtime stage')
  t.notMatch(users[0]?.args ?? 'root', /^(?:root|0)(?::|$)/, 'USER is not root')
  t.equal(users[0]?.args, 'node', "the image's node user")

  const hc = ops(runtime, 'HEALTHCHECK')
  t.equal(hc.length, 1, 'one HEALTHCHECK')
  const hcCmd = execForm(hc[0]?.args.replace(/^(?:--\S+\s+)*CMD\s+/, '') ?? '')
  t.ok(hcCmd !== undefined && hcCmd[0] === 'node', 'HEALTHCHECK runs node itself (exec form; slim images have no curl)')
  t.match(hcCmd?.join(' ') ?? '', /\/healthz/, 'HEALTHCHECK asks /healthz')
  t.match(hcCmd?.join(' ') ?? '', /process\.env\.MCP_GATEWAY_PORT/, 'HEALTHCHECK takes the port from env')

  const env = Object.assign({}, ...ops(runtime, 'ENV').map((e) => pairs(e.args))) as Record<string, string>
  t.match(env.MCP_GATEWAY_CONFIG, /^\/.+\.ya?ml$/, 'MCP_GATEWAY_CONFIG names an absolute config path (the CLI reads it when --config is absent)')
  t.equal(env.MCP_GATEWAY_PORT, String(DEFAULT_LISTEN_PORT), 'MCP_GATEWAY_PORT defaults to the gateway default port')
  t.equal(env.NODE_ENV, 'production')
  // Node 24's young generation capped at Node 20's size (BENCHMARKS.md, Node 24 memory); the
  // real start below runs with this environment, so Node must accept the flag from NODE_OPTIONS.
  t.equal(env.NODE_OPTIONS, '--max-semi-space-size=16', 'NODE_OPTIONS caps the young generation')
  t.same(ops(runtime, 'EXPOSE').map((e) => e.args), [String(DEFAULT_LISTEN_PORT)], 'EXPOSE the default port')
  t.same(ops(runtime, 'STOPSIGNAL').map((e) => e.args), ['SIGTERM'])
  t.same(execForm(ops(runtime, 'ENTRYPOINT')[0]?.args ?? ''), ['node', 'dist/src/main.js'], 'ENTRYPOINT: the CLI, exec form (signals reach node)')
  t.same(ops(runtime, 'CMD'), [], 'no CMD: the config comes from MCP_GATEWAY_CONFIG, and arguments go to the CLI')

  const args = Object.assign({}, ...ops(runtime, 'ARG').map((a) => pairs(a.args))) as Record<string, string>
  const labels = Object.assign({}, ...ops(runtime, 'LABEL').map((l) => pairs(l.args, args))) as Record<string, string>
  t.equal(labels['org.opencontainers.image.title'], 'mcp-auth-gateway')
  t.equal(labels['org.opencontainers.image.version'], pkg.version, 'the version label defaults to package.json version')
  t.equal(labels['org.opencontainers.image.licenses'], pkg.license, 'the license label matches package.json')
  t.ok(labels['org.opencontainers.image.description'] !== undefined && labels['org.opencontainers.image.description'].length > 20, 'a description label')
})

t.test('.dockerignore keeps installs, git, local state, tests and secrets out of the build context', async (t) => {
  const rows: Array<[string, boolean]> = [
    ['node_modules/fastify/package.json', true],
    ['.git/config', true],
    ['.cache/node24/bin/node', true],
    ['.scratch/notes.md', true],
    ['.tap/processinfo/x.json', true],
    ['dist/src/main.js', true],
    ['test/unit/config.test.ts', true],
    ['bench/run.ts', true],
    ['coverage/lcov.info', true],
    ['gateway.yaml', true],
    ['.env', true],
    ['src/.env', true],
    ['src/keys/tls.pem', true],
    ['server.key', true],
    ['debug.log', true],
    ['package.json', false],
    ['package-lock.json', false],
    ['tsconfig.json', false],
    ['tsconfig.build.json', false],
    ['src/main.ts', false],
    ['src/config/load.ts', false],
    ['gateway.example.yaml', false],
    ['LICENSE', false]
  ]
  for (const [path, excluded] of rows) t.equal(ignored(path), excluded, `${path}: ${excluded ? 'excluded' : 'in the context'}`)
})

// ---------------------------------------------------------------- following the steps

const work = mkdtempSync(join(tmpdir(), 'gw-image-'))
/** Links to the repo's node_modules: removed as links first, so cleaning up can never reach the repo. */
const links: string[] = []
t.teardown(() => {
  for (const l of links) unlinkSync(l)
  rmSync(work, { recursive: true, force: true })
})


/**
 * Follow one stage in `root` (its file system): WORKDIR, COPY (context through
 * .dockerignore, or --from an earlier stage's root), RUN (npm steps only).
 */
async function followStage (t: Test, stage: Stage, root: string, roots: Map<string, string>): Promise<string> {
  let workdir = '/'
  const inContainer = (p: string): string => join(root, isAbsolute(p) ? p : join(workdir, p))
  for (const step of stage.steps) {
    if (step.op === 'WORKDIR') {
      workdir = isAbsolute(step.args) ? step.args : join(workdir, step.args)
      mkdirSync(inContainer('.'), { recursive: true })
    } else if (step.op === 'COPY') {
      const w = words(step.args)
      const from = w.find((x) => x.startsWith('--from='))?.slice('--from='.length)
      t.notOk(w.some((x) => x.startsWith('--') && !x.startsWith('--from=') && !x.startsWith('--chown=') && !x.startsWith('--chmod=')), `line ${step.line}: COPY flags this test knows`)
      const list = w.filter((x) => !x.startsWith('--'))
      const dest = list.pop()!
      const destAbs = inContainer(dest)
      const intoDir = dest.endsWith('/') || list.length > 1
      for (const src of list) {
        if (from !== undefined) {
          const fromRoot = roots.get(from)
          t.ok(fromRoot, `line ${step.line}: stage ${from} was followed`)
          const srcAbs = join(fromRoot!, src)
          t.ok(existsSync(srcAbs), `line ${step.line}: ${src} exists in stage ${from}`)
          cpSync(srcAbs, intoDir ? join(destAbs, basename(src)) : destAbs, { recursive: true })
          continue
        }
        // From the build context: what .dockerignore leaves of it.
        t.ok(existsSync(join(ROOT, src)), `line ${step.line}: ${src} exists in the build context`)
        const files = filesUnder(ROOT, src).filter((f) => !ignored(f))
        t.ok(files.length > 0, `line ${step.line}: ${src} is not excluded by .dockerignore`)
        const isDir = statSync(join(ROOT, src)).isDirectory()
        for (const f of files) {
          // A directory's contents go into dest; a file goes to dest (or into it).
          const target = isDir ? join(destAbs, relative(src, f)) : intoDir ? join(destAbs, basename(f)) : destAbs
          mkdirSync(dirname(target), { recursive: true })
          cpSync(join(ROOT, f), target)
        }
      }
    } else if (step.op === 'RUN') {
      for (const cmd of step.args.split('&&').map((c) => c.trim())) {
        const argv = words(cmd)
        const cwd = inContainer('.')
        if (argv[0] === 'npm' && argv[1] === 'ci' && !argv.includes('--omit=dev')) {
          // The full (dev) install of this same lockfile is the repo's own node_modules
          // (`npm ci` made it): linked instead of a second full install of several minutes.
          symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules'), 'dir')
          links.push(join(cwd, 'node_modules'))
        } else if (argv[0] === 'npm' && argv[1] === 'ci') {
          // Exactly the image's production install; --prefer-offline only reuses this machine's cache.
          const r = await runCommand('npm', [...argv.slice(1), '--prefer-offline'], { cwd })
          t.equal(r.code, 0, `line ${step.line}: ${cmd}`, { stderr: r.stderr.slice(-2000) })
        } else if (argv[0] === 'npm' && argv[1] === 'run') {
          const r = await runCommand('npm', argv.slice(1), { cwd })
          t.equal(r.code, 0, `line ${step.line}: ${cmd}`, { stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) })
        } else if (argv.join(' ') === 'npm cache clean --force') {
          // Keeps the image layer small; here it would empty this machine's npm cache.
        } else {
          t.fail(`line ${step.line}: a RUN step this test cannot follow yet: ${cmd}`)
        }
      }
    } else if (!['ARG', 'LABEL', 'ENV', 'USER', 'EXPOSE', 'STOPSIGNAL', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD'].includes(step.op)) {
      // Metadata above needs no file system work; anything else must be taught to this test.
      t.fail(`line ${step.line}: an instruction this test cannot follow yet: ${step.op}`)
    }
  }
  return inContainer('.')
}

t.test('the image steps, followed without Docker: production install, --check, a real start, HEALTHCHECK, SIGTERM', async (t) => {
  const startedAt = Date.now()
  const roots = new Map<string, string>()
  let appDir = ''
  for (const [i, stage] of stages.entries()) {
    const root = join(work, `stage-${i}`)
    mkdirSync(root)
    appDir = await followStage(t, stage, root, roots)
    if (stage.name !== undefined) roots.set(stage.name, root)
  }
  t.comment(`stages followed in ${Date.now() - startedAt} ms`)

  // What the runtime stage holds: the compiled output and production dependencies, nothing else.
  t.same(readdirSync(appDir).sort(), ['LICENSE', 'dist', 'gateway.example.yaml', 'node_modules', 'package-lock.json', 'package.json'], 'the runtime /app')
  t.same(readdirSync(join(appDir, 'dist')), ['src'], 'dist/src only')
  t.notOk(readdirSync(join(appDir, 'dist/src'), { recursive: true }).some((f) => String(f).endsWith('.ts') && !String(f).endsWith('.d.ts')), 'no TypeScript sources')
  for (const dep of Object.keys(pkg.dependencies)) t.ok(existsSync(join(appDir, 'node_modules', dep, 'package.json')), `dependency ${dep} installed`)
  // The lockfile marks what only devDependencies need (dev: true): none of it may be installed,
  // and everything else (but optional packages for other platforms) must be.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean, optional?: boolean }> }
  const entries = Object.entries(lock.packages).filter(([path]) => path.startsWith('node_modules/'))
  t.ok(entries.some(([, p]) => p.dev === true), 'the lockfile has dev-only packages (so the next check can fail)')
  t.same(entries.filter(([path, p]) => p.dev === true && existsSync(join(appDir, path))).map(([path]) => path), [], 'no dev-only package installed (typescript, tap, tsx, oidc-provider, ...)')
  t.same(entries.filter(([path, p]) => p.dev !== true && p.optional !== true && !existsSync(join(appDir, path))).map(([path]) => path), [], 'every production package installed')
  for (const dev of ['typescript', 'tap', 'tsx', 'oidc-provider']) t.notOk(existsSync(join(appDir, 'node_modules', dev)), `${dev} not installed`)

  // The runtime stage's environment, as `docker run` gives it; container paths map into the stage's root.
  const runtimeRoot = join(work, `stage-${stages.length - 1}`)
  const imageEnv = Object.assign({}, ...ops(runtime, 'ENV').map((e) => pairs(e.args))) as Record<string, string>
  const configPath = join(runtimeRoot, imageEnv.MCP_GATEWAY_CONFIG!)
  const entrypoint = execForm(ops(runtime, 'ENTRYPOINT')[0]!.args)!
  t.equal(entrypoint[0], 'node')
  const entry = join(appDir, entrypoint[1]!)
  const runEnv = (extra: Record<string, string> = {}): Record<string, string> => ({ ...imageEnv, MCP_GATEWAY_CONFIG: configPath, ...extra })
  const run = async (args: string[], env?: Record<string, string>): Promise<Run> => await startCli([...entrypoint.slice(2), ...args], { cwd: appDir, env: runEnv(env), entry }).done

  const version = await run(['--version'])
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), pkg.version, '--version reads the installed package.json')

  const example = await run(['--check', '--config', 'gateway.example.yaml'])
  t.equal(example.code, 0, '--check on the shipped example config exits 0', { stderr: example.stderr })
  t.match(example.stdout, /gateway\.example\.yaml: configuration is valid/)

  const missing = await run(['--check'])
  t.equal(missing.code, 1, 'nothing mounted at MCP_GATEWAY_CONFIG yet: exit 1')
  t.match(missing.stderr, /gateway\.yaml: cannot read the config file \(ENOENT\)/, 'the env var names the file read')

  // A real start: oidc-provider as the AS, an SDK MCP server upstream, the config "mounted"
  // at MCP_GATEWAY_CONFIG and the port from MCP_GATEWAY_PORT, as the Dockerfile suggests.
  const as = await startAuthServer()
  const upstream = await startStatelessUpstream()
  t.teardown(async () => { await upstream.close(); await as.close() })
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  as.registerResource({ url: `${origin}/mcp`, scope: 'mcp:tools' })
  mkdirSync(dirname(configPath), { recursive: true })
  writeFileSync(configPath, stringify({
    // 0.0.0.0 in a container; loopback here.
    listen: { host: '127.0.0.1', port: '${MCP_GATEWAY_PORT}' },
    publicUrl: origin,
    authorizationServers: [{ issuer: as.issuer }],
    routes: [{ path: '/mcp', upstream: `${upstream.origin}/mcp`, scopes: ['mcp:tools'] }]
  }))
  const env = { MCP_GATEWAY_PORT: String(port) }
  const gw = startCli(entrypoint.slice(2), { cwd: appDir, env: runEnv(env), entry })
  t.teardown(() => { gw.child.kill('SIGKILL') })
  const deadline = Date.now() + 30_000
  while (!gw.stdout().includes('authorization server keys loaded') && gw.child.exitCode === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(gw.stdout(), /gateway listening/, 'started with no arguments (config from MCP_GATEWAY_CONFIG)')

  const health = await fetch(`${origin}/healthz`)
  t.equal(health.status, 200, '/healthz')
  t.same(await health.json(), { status: 'ok' })
  t.equal((await fetch(`${origin}/readyz`)).status, 200, '/readyz once the AS keys are loaded')

  const unauth = await fetch(`${origin}/mcp`, { method: 'POST', headers: mcpHeaders(), body: INITIALIZE_BODY })
  t.equal(unauth.status, 401, 'unauthenticated POST')
  t.equal(unauth.headers.get('www-authenticate'), `Bearer scope="mcp:tools", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`)

  const token = await as.clientCredentialsToken({ resource: `${origin}/mcp`, scope: 'mcp:tools' })
  const init = await fetch(`${origin}/mcp`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
  t.equal(init.status, 200, 'a real token reaches the upstream')
  t.match(await init.text(), /"serverInfo"/)

  // The image's own HEALTHCHECK command, with the image's env.
  const hcArgs = execForm(ops(runtime, 'HEALTHCHECK')[0]!.args.replace(/^(?:--\S+\s+)*CMD\s+/, ''))!
  const healthcheck = async (): Promise<Run> => await runCommand(process.execPath, hcArgs.slice(1), { cwd: appDir, env: { PATH: process.env.PATH ?? '', ...runEnv(env) } })
  const up = await healthcheck()
  t.equal(up.code, 0, 'HEALTHCHECK passes while the gateway runs', { stderr: up.stderr })

  gw.child.kill('SIGTERM')
  const exit = await gw.done
  t.equal(exit.code, 0, 'SIGTERM: exit 0')
  t.equal(exit.signal, null)
  t.notMatch(exit.stderr, /\n\s+at /, 'no stack trace')
  t.notOk(exit.stdout.includes(token), 'the token never appears in the logs')

  const down = await healthcheck()
  t.equal(down.code, 1, 'HEALTHCHECK fails once the gateway is gone')
  t.comment(`container steps took ${Date.now() - startedAt} ms`)
})
