/**
 * The real MCP conformance server suite (@modelcontextprotocol/conformance),
 * run twice against @modelcontextprotocol/server-everything (streamableHttp):
 * once directly, once through the gateway with a real access token from the
 * real oidc-provider AS. The gateway must be transparent: every check has to
 * come out with the same status both ways (many fail directly too, because
 * server-everything lacks fixtures the suite expects; that is fine, only the
 * comparison matters). The one exception is what the gateway adds on purpose:
 * the Origin check (issue 5), so the dns-rebinding-protection checks must
 * succeed through the gateway whatever they do directly.
 *
 * The suite needs Node >= 22 (node24Path) and has no header option: the token
 * goes in through a preload (fixtures/auth-preload.mjs) that covers fetch,
 * undici's global dispatcher and node:http(s). The gateway's request log
 * proves it: authenticated requests, and not a single one without a token.
 *
 * The comparison is printed as TAP comments and written as markdown to
 * .cache/conformance-comparison.md.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { startAuthServer } from '../helpers/as.js'
import { startGateway } from '../helpers/gateway.js'
import { node24Path } from '../helpers/node24.js'
import { startEverything } from '../helpers/upstream.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const CONFORMANCE = join(REPO, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')
const PRELOAD = fileURLToPath(new URL('./fixtures/auth-preload.mjs', import.meta.url))
const REPORT = join(REPO, '.cache/conformance-comparison.md')
/** One suite run takes a few seconds; this only bounds a hang. */
const SUITE_TIMEOUT_MS = 120_000

// Generous: the first run may have to download Node 24 (.ci/run pre-installs it).
t.setTimeout(300_000)

interface SuiteRun {
  /** "scenario/checkId" → status (SUCCESS, FAILURE, WARNING, ...). */
  checks: Record<string, string>
  /** Scenarios in the order the suite ran them. */
  scenarios: string[]
  /** Scenario count announced by the suite ("Running active suite (N scenarios)"). */
  announced: number | undefined
  exitCode: number | null
  ms: number
  output: string
}

/** `server-<scenario>-<ISO timestamp with - for : and .>` */
const RESULT_DIR_RE = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/

async function runSuite (node: string, url: string, outDir: string, env: Record<string, string>): Promise<SuiteRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` }
  // tap/tsx loaders and coverage must not leak into the Node 24 child.
  delete childEnv.NODE_OPTIONS
  delete childEnv.NODE_V8_COVERAGE
  Object.assign(childEnv, env)

  const started = Date.now()
  let output = ''
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(node, [CONFORMANCE, 'server', '--url', url, '-o', outDir], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    const collect = (b: Buffer): void => { if (output.length < 200_000) output += b.toString() }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    const timer = setTimeout(() => { child.kill('SIGKILL') }, SUITE_TIMEOUT_MS)
    child.once('error', (err) => { clearTimeout(timer); reject(err) })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (signal !== null) reject(new Error(`conformance suite killed by ${signal} (timeout ${SUITE_TIMEOUT_MS} ms?):\n${output.slice(-4000)}`))
      else resolve(code)
    })
  })
  const ms = Date.now() - started

  const checks: Record<string, string> = {}
  const entries = await readdir(outDir, { withFileTypes: true })
  // Order scenarios as the suite ran them: by the timestamp that ends each directory name.
  const stamp = (name: string): string => name.slice(-24)
  const byTime = entries.filter((e) => e.isDirectory()).map((e) => e.name)
    .sort((a, b) => stamp(a).localeCompare(stamp(b)) || a.localeCompare(b))
    .map((name) => ({ name, m: RESULT_DIR_RE.exec(name) }))
  const scenarios: string[] = []
  for (const { name, m } of byTime) {
    if (m === null) throw new Error(`unexpected result directory name ${name} in ${outDir}`)
    const scenario = m[1]!
    if (scenarios.includes(scenario)) throw new Error(`scenario ${scenario} has two result directories in ${outDir}`)
    scenarios.push(scenario)
    const list = JSON.parse(await readFile(join(outDir, name, 'checks.json'), 'utf8')) as Array<{ id: string, status: string }>
    const seen = new Map<string, number>()
    for (const c of list) {
      // Same id twice in one scenario: keep both, numbered in order.
      const n = (seen.get(c.id) ?? 0) + 1
      seen.set(c.id, n)
      checks[`${scenario}/${c.id}${n > 1 ? `#${n}` : ''}`] = c.status
    }
  }
  const announced = /Running \w+ suite \((\d+) scenarios\)/.exec(output)?.[1]
  return { checks, scenarios, announced: announced !== undefined ? Number(announced) : undefined, exitCode, ms, output }
}

// Each teardown is registered as soon as its resource exists, so a failing start still cleans up.
const tmp = await mkdtemp(join(tmpdir(), 'mcp-conformance-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const everything = await startEverything('streamableHttp')
t.teardown(() => everything.close())
const as = await startAuthServer()
t.teardown(() => as.close())
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: as.issuer }],
  routes: [{ path: '/mcp', upstream: `${everything.origin}/mcp`, scopes: ['mcp:tools'] }]
}))
t.teardown(() => gw.close())

const node = await node24Path()
as.registerResource({ url: `${gw.url}/mcp`, scope: 'mcp:tools' })
const token = await as.clientCredentialsToken({ resource: `${gw.url}/mcp`, scope: 'mcp:tools' })
const statsFile = join(tmp, 'preload-stats.json')
const pkgVersion = async (name: string): Promise<string> =>
  (JSON.parse(await readFile(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
const versions = {
  conformance: await pkgVersion('@modelcontextprotocol/conformance'),
  everything: await pkgVersion('@modelcontextprotocol/server-everything'),
  node: (await promisify(execFile)(node, ['--version'])).stdout.trim()
}

// Every HTTP request the gateway's server receives, seen before Fastify: unlike the
// request log (written on response completion), this includes requests the client
// aborted first (the SDK client cancels its standalone GET /mcp stream on close).
const rawRequests: Array<{ method: string, url: string, bearer: boolean }> = []
gw.gateway.app.server.on('request', (req: IncomingMessage) => {
  rawRequests.push({ method: req.method ?? '', url: req.url ?? '', bearer: req.headers.authorization === `Bearer ${token}` })
})

const direct = await runSuite(node, `${everything.origin}/mcp`, join(tmp, 'direct'), {})
const viaGateway = await runSuite(node, `${gw.url}/mcp`, join(tmp, 'gateway'), {
  NODE_OPTIONS: `--import ${pathToFileURL(PRELOAD).href}`,
  CONFORMANCE_BEARER_TOKEN: token,
  CONFORMANCE_AUTH_ORIGIN: gw.url,
  CONFORMANCE_AUTH_STATS: statsFile
})
const preloadStats = JSON.parse(await readFile(statsFile, 'utf8').catch(() => '{}')) as Record<string, { seen: number, added: number }>

// Request outcomes at the gateway (MCP route only; no metadata/health requests are expected, but keep them apart).
const mcpLogs = gw.requestLogs().filter((r) => r.route !== null && r.route !== undefined)
const outcomes: Record<string, number> = {}
for (const r of mcpLogs) {
  const k = `${String(r.outcome)} ${String(r.status)}`
  outcomes[k] = (outcomes[k] ?? 0) + 1
}

// ---- comparison table (printed and written before asserting, so a failure still shows it)
const allScenarios = [...direct.scenarios, ...viaGateway.scenarios.filter((s) => !direct.scenarios.includes(s))]
const allKeys = [...new Set([...Object.keys(direct.checks), ...Object.keys(viaGateway.checks)])]
const shortStatus = (s: string | undefined): string => s === undefined ? '-' : s === 'SUCCESS' ? 'ok' : s === 'FAILURE' ? 'FAIL' : s
const rows = allScenarios.map((scenario) => {
  const keys = allKeys.filter((k) => k.startsWith(`${scenario}/`))
  const d = keys.map((k) => shortStatus(direct.checks[k])).join(',')
  const g = keys.map((k) => shortStatus(viaGateway.checks[k])).join(',')
  return { scenario, keys, d, g, same: keys.every((k) => direct.checks[k] === viaGateway.checks[k]) }
})
const width = Math.max(...rows.map((r) => r.scenario.length), 8)
const dWidth = Math.max(...rows.map((r) => r.d.length), 6)
const count = (run: SuiteRun, status: string): number => Object.values(run.checks).filter((s) => s === status).length
const summary = (run: SuiteRun): string =>
  `${run.scenarios.length} scenarios, ${Object.keys(run.checks).length} checks, ${count(run, 'SUCCESS')} SUCCESS, ${count(run, 'FAILURE')} FAILURE, exit ${String(run.exitCode)}, ${(run.ms / 1000).toFixed(1)} s`

t.comment(`@modelcontextprotocol/conformance ${versions.conformance} on Node ${versions.node}, server-everything ${versions.everything}`)
t.comment(`${'scenario'.padEnd(width)}  ${'direct'.padEnd(dWidth)}  gateway`)
for (const r of rows) t.comment(`${r.scenario.padEnd(width)}  ${r.d.padEnd(dWidth)}  ${r.g}${r.same ? '' : '   <-- DIFFERS'}`)
t.comment(`direct:  ${summary(direct)}`)
t.comment(`gateway: ${summary(viaGateway)}`)
t.comment(`gateway: ${rawRequests.length} HTTP requests received, ${rawRequests.filter((r) => r.bearer).length} with the token; ${mcpLogs.length} request log lines, outcomes ${JSON.stringify(outcomes)}`)
t.comment(`preload injections: ${JSON.stringify(preloadStats)}`)

const md = [
  '# MCP conformance suite: direct vs. through the gateway',
  '',
  `Suite: @modelcontextprotocol/conformance ${versions.conformance} \`server\` (active suite) on Node ${versions.node}; ` +
    `server: @modelcontextprotocol/server-everything ${versions.everything} (streamableHttp).`,
  'Gateway run: route `/mcp` with scope `mcp:tools`, client_credentials JWT from oidc-provider, injected by test/e2e/fixtures/auth-preload.mjs.',
  '',
  `- Direct: ${summary(direct)}`,
  `- Gateway: ${summary(viaGateway)}`,
  `- Identical check for check: ${rows.every((r) => r.same) && allKeys.length > 0 ? 'yes' : 'NO'}`,
  `- Gateway: ${rawRequests.length} HTTP requests received, ${rawRequests.filter((r) => r.bearer).length} carrying the token; ` +
    `${mcpLogs.length} request log lines (client-aborted requests get none), outcome status → count: ${Object.entries(outcomes).map(([k, v]) => `${k} → ${v}`).join(', ')}`,
  `- Preload (requests seen / header added per HTTP path): ${Object.entries(preloadStats).map(([k, v]) => `${k} ${v.seen}/${v.added}`).join(', ')}`,
  '',
  '| Scenario | Check | Direct | Gateway | Same |',
  '|---|---|---|---|---|',
  ...rows.flatMap((r) => r.keys.map((k) =>
    `| ${r.scenario} | ${k.slice(r.scenario.length + 1)} | ${direct.checks[k] ?? '-'} | ${viaGateway.checks[k] ?? '-'} | ${direct.checks[k] === viaGateway.checks[k] ? 'yes' : '**NO**'} |`)),
  ''
].join('\n')
await mkdir(dirname(REPORT), { recursive: true })
await writeFile(REPORT, md)

// ---- assertions
t.test('the direct run is not vacuous', async (t) => {
  t.equal(direct.announced, direct.scenarios.length, 'one result directory per announced scenario')
  t.ok(Object.keys(direct.checks).length > 20, `direct run has > 20 checks (${Object.keys(direct.checks).length})`)
  t.ok(count(direct, 'SUCCESS') >= 1, 'direct run has at least one SUCCESS')
})

t.test('the gateway run authenticated every request', async (t) => {
  t.ok(preloadStats.fetch !== undefined, 'the preload was active in the suite process')
  t.ok(rawRequests.length > 0, `the gateway received requests (${rawRequests.length})`)
  t.same(rawRequests.filter((r) => !r.bearer).map((r) => `${r.method} ${r.url}`), [], 'every request the gateway received carried the token')
  t.ok(mcpLogs.length <= rawRequests.length, 'no request log line without a received request')
  t.ok(mcpLogs.some((r) => r.outcome === 'ok'), 'authenticated requests reached the upstream (outcome ok)')
  const noToken = mcpLogs.filter((r) => r.outcome === 'no_token')
  t.same(noToken.map((r) => `${String(r.method)} ${String(r.path)}`), [], 'no request arrived without a token')
  // The dns-rebinding-protection scenario sends a foreign Origin on purpose: that 403 is the gateway's Origin check.
  const rejected = mcpLogs.filter((r) => (r.status === 401 || r.status === 403) && r.outcome !== 'forbidden_origin')
  t.same(rejected.map((r) => `${String(r.method)} ${String(r.path)} ${String(r.status)} ${String(r.outcome)}`), [], 'no request was rejected by the gateway, except for its Origin')
  t.ok(mcpLogs.filter((r) => r.outcome === 'forbidden_origin').length >= 1, 'the rebinding scenario\'s foreign Origin was refused (403 forbidden_origin)')
})

t.test('through the gateway, every check has the same status as directly', async (t) => {
  t.equal(viaGateway.announced, direct.announced, 'same number of scenarios announced')
  t.same(viaGateway.scenarios, direct.scenarios, 'same scenarios, same order')
  const isRebinding = (k: string): boolean => k.startsWith('dns-rebinding-protection/')
  const without = (c: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(c).filter(([k]) => !isRebinding(k)))
  t.same(without(viaGateway.checks), without(direct.checks), 'scenario/checkId → status identical (outside dns-rebinding-protection)')
  const rebinding = Object.entries(viaGateway.checks).filter(([k]) => isRebinding(k))
  t.ok(rebinding.length >= 1, 'the dns-rebinding-protection scenario ran through the gateway')
  t.same(rebinding.filter(([, v]) => v !== 'SUCCESS'), [], 'through the gateway every DNS-rebinding check succeeds (the Origin check)')
  t.equal(viaGateway.exitCode, direct.exitCode, 'same suite exit code')
})
