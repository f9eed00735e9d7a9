/**
 * Config of metrics, health and audit (issue 6 items 1–3): defaults, the
 * values of a full config, path clashes with routes, each other and
 * /.well-known, the audit destination rules, and the startup warnings.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseConfig, loadConfigFile } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'
import * as D from '../../src/config/defaults.js'
import { MINIMAL_CONFIG } from '../helpers/config-text.js'

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'config')
const MINIMAL = MINIMAL_CONFIG
const parse = (extra: string, baseDir?: string): ReturnType<typeof parseConfig> => parseConfig(`${MINIMAL}${extra}\n`, { env: {}, ...(baseDir === undefined ? {} : { baseDir }) })
function problems (extra: string): string[] {
  try {
    parse(extra)
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
  return []
}

t.test('defaults', async (t) => {
  const c = parse('')
  t.strictSame(c.metrics, { enabled: true, path: '/metrics', listen: undefined })
  t.strictSame(c.health, { livenessPath: '/healthz', readinessPath: '/readyz' })
  t.strictSame(c.audit, { enabled: false, destination: 'stdout', includeArguments: false })
  t.equal(D.DEFAULT_METRICS_PATH, '/metrics')
  t.equal(D.DEFAULT_LIVENESS_PATH, '/healthz')
  t.equal(D.DEFAULT_READINESS_PATH, '/readyz')
  t.ok(Object.isFrozen(c.metrics) && Object.isFrozen(c.health) && Object.isFrozen(c.audit), 'frozen')
  t.strictSame(parse('metrics: { listen: { port: 9464 } }').metrics.listen, { host: '127.0.0.1', port: 9464 }, 'metrics.listen.host defaults to loopback')
})

t.test('a full config: every key, the audit file resolved from the config file\'s directory, nothing created', async (t) => {
  const c = loadConfigFile(join(FIXTURES, 'valid-full.yaml'), {})
  t.strictSame(c.metrics, { enabled: true, path: '/internal/metrics', listen: { host: '127.0.0.1', port: 9464 } })
  t.strictSame(c.health, { livenessPath: '/live', readinessPath: '/ready' })
  t.strictSame(c.audit, { enabled: true, destination: { file: join(FIXTURES, 'audit.log') }, includeArguments: false })
  t.notOk(existsSync(join(FIXTURES, 'audit.log')), 'loading (and --check) creates no file')
})

t.test('path rules and clashes: a table of inputs and the problems they give', async (t) => {
  const rows: Array<[string, string, string[]]> = [
    ['metrics under a route', 'metrics: { path: /mcp/metrics }', ['metrics.path: under routes[0].path (/mcp): the health and metrics paths must be outside every route path']],
    ['liveness equal to a route', 'health: { livenessPath: /mcp }', ['routes[0].path: path is under /mcp: that path is reserved for health checks (health.livenessPath)']],
    ['a route under readiness', 'health: { readinessPath: /m }', []],
    ['metrics equal to readiness', 'metrics: { path: /readyz }', ['metrics.path: same path as health.readinessPath: the liveness, readiness and metrics paths must all differ']],
    ['liveness equal to readiness', 'health: { livenessPath: /probe, readinessPath: /probe }', ['health.readinessPath: same path as health.livenessPath: the liveness, readiness and metrics paths must all differ']],
    ['metrics on their own listener may share a path with the main one', 'metrics: { path: /readyz, listen: { port: 9464 } }', []],
    ['metrics off: its path is not reserved', 'metrics: { enabled: false, path: /mcp/m }', []],
    ['metrics under /.well-known', 'metrics: { path: /.well-known/metrics }', ['metrics.path: path is under /.well-known: that prefix is reserved for metadata']],
    ['readiness under /.well-known', 'health: { readinessPath: /.well-known }', ['health.readinessPath: path is under /.well-known: that prefix is reserved for metadata']],
    ['a relative metrics path', 'metrics: { path: metrics }', ['metrics.path: invalid path: must start with "/", have no trailing "/" or empty segments, and use only letters, digits and . _ ~ - (e.g. /mcp)']],
    ['a trailing slash', 'health: { livenessPath: /live/ }', ['health.livenessPath: invalid path: must start with "/", have no trailing "/" or empty segments, and use only letters, digits and . _ ~ - (e.g. /mcp)']],
    ['a dot segment', 'health: { livenessPath: /a/../b }', ['health.livenessPath: path has a "." or ".." segment: route paths must be normalised']],
    ['unknown keys', 'metrics: { port: 1 }\nhealth: { live: /x }\naudit: { file: x }', [
      'metrics.port: unknown key: allowed keys here are enabled, path, listen',
      'health.live: unknown key: allowed keys here are livenessPath, readinessPath',
      'audit.file: unknown key: allowed keys here are enabled, destination, includeArguments'
    ]],
    ['metrics.listen without a port', 'metrics: { listen: { host: 0.0.0.0 } }', ['metrics.listen.port: missing: this key is required']],
    ['metrics.listen port out of range', 'metrics: { listen: { port: 70000 } }', ['metrics.listen.port: out of range: port must be 0–65535']],
    ['metrics.listen on the main listener\'s address', 'listen: { port: 8080 }\nmetrics: { listen: { port: 8080 } }', ['metrics.listen.port: same address as listen (127.0.0.1:8080): the metrics listener needs its own port']],
    ['metrics.listen on a wildcard address and the main port', 'listen: { port: 8080 }\nmetrics: { listen: { host: 0.0.0.0, port: 8080 } }', ['metrics.listen.port: same address as listen (0.0.0.0:8080): the metrics listener needs its own port']],
    ['two port-0 listeners do not clash', 'listen: { port: 0 }\nmetrics: { listen: { port: 0 } }', []],
    ['enabled not a boolean', 'metrics: { enabled: "yes" }\naudit: { enabled: 1, includeArguments: "no" }', [
      'metrics.enabled: got a string: must be true or false',
      'audit.enabled: got a number: must be true or false',
      'audit.includeArguments: got a string: must be true or false'
    ]],
    ['destination an unknown word', 'audit: { destination: syslog }', ['audit.destination: got a string: must be stdout, stderr or a mapping { file: <path> }']],
    ['destination a list', 'audit: { destination: [stdout] }', ['audit.destination: got a list: must be stdout, stderr or a mapping { file: <path> }']],
    ['destination file not a string', 'audit: { destination: { file: 3 } }', ['audit.destination.file: got a number: must be a string']],
    ['destination file empty', 'audit: { destination: { file: "" } }', ['audit.destination.file: empty path: give the path of the audit log file']],
    ['destination mapping with another key', 'audit: { destination: { path: /x } }', ['audit.destination.file: missing: this key is required', 'audit.destination.path: unknown key: allowed keys here are file']]
  ]
  for (const [name, extra, want] of rows) t.strictSame(problems(extra), want, name)
})

t.test('a route path under a probe path: refused, then allowed once the probe moves', async (t) => {
  const routes = (p: string, extra = ''): string => `publicUrl: https://gw.example.com\nauthorizationServers: [{ issuer: https://as.example.com }]\nroutes: [{ path: ${p}, upstream: "http://127.0.0.1:1", scopes: [a] }]\n${extra}`
  const problemsOf = (text: string): string[] => {
    try {
      parseConfig(text, { env: {} })
      return []
    } catch (err) {
      return [...(err as ConfigError).problems]
    }
  }
  t.strictSame(problemsOf(routes('/healthz/x')), ['routes[0].path: path is under /healthz: that path is reserved for health checks (health.livenessPath)'])
  t.strictSame(problemsOf(routes('/readyz')), ['routes[0].path: path is under /readyz: that path is reserved for health checks (health.readinessPath)'])
  t.strictSame(problemsOf(routes('/metrics')), ['routes[0].path: path is under /metrics: that path is reserved for metrics (metrics.path)'])
  t.strictSame(problemsOf(routes('/healthz/x', 'health: { livenessPath: /live }')), [], 'free once the probe has another path')
  t.strictSame(problemsOf(routes('/metrics', 'metrics: { listen: { port: 9464 } }')), [], 'free when metrics are on their own listener')
})

t.test('audit.destination.file: checked for writing when audit is on, resolved from the config file\'s directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-audit-config-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  t.strictSame(parse('audit: { enabled: true, destination: { file: audit.log } }', dir).audit.destination, { file: join(dir, 'audit.log') })
  t.notOk(existsSync(join(dir, 'audit.log')), 'not created by loading')
  t.strictSame(parse('audit: { destination: { file: /var/log/mcp/audit.log } }', dir).audit.destination, { file: '/var/log/mcp/audit.log' }, 'an absolute path is kept')
  const refused = (extra: string): string[] => {
    try {
      parse(extra, dir)
      return []
    } catch (err) {
      return [...(err as ConfigError).problems]
    }
  }
  t.strictSame(refused('audit: { enabled: true, destination: { file: missing/audit.log } }'),
    [`audit.destination.file: cannot write ${join(dir, 'missing/audit.log')} (ENOENT): the file must be writable, or its directory must exist and be writable`], 'the directory must exist')
  t.strictSame(refused(`audit: { enabled: true, destination: { file: ${dir} } }`),
    [`audit.destination.file: cannot write ${dir} (EISDIR): the file must be writable, or its directory must exist and be writable`], 'a directory is not a file')
  t.strictSame(refused('audit: { enabled: false, destination: { file: missing/audit.log } }'), [], 'not checked while audit is off')
})

t.test('warnings', async (t) => {
  const metricsWarning = 'metrics are served without authentication at /metrics on the main listener, which is not loopback (listen.host 0.0.0.0): set metrics.listen to serve them on a private address'
  const rows: Array<[string, string, string[]]> = [
    ['loopback listener: metrics on it are fine', '', []],
    ['a public listener serving metrics', 'listen: { host: 0.0.0.0 }', [metricsWarning]],
    ['the same with another metrics path', 'listen: { host: 0.0.0.0 }\nmetrics: { path: /m }', [metricsWarning.replace('at /metrics', 'at /m')]],
    ['a public listener, metrics on their own', 'listen: { host: 0.0.0.0 }\nmetrics: { listen: { port: 9464 } }', []],
    ['a public listener, metrics off', 'listen: { host: 0.0.0.0 }\nmetrics: { enabled: false }', []],
    ['audit arguments', 'audit: { enabled: true, includeArguments: true }', ['audit.includeArguments is true: tool and prompt arguments, which may hold personal data or secrets, are written to the audit log']],
    ['audit arguments while audit is off', 'audit: { includeArguments: true }', []]
  ]
  // (MINIMAL's https publicUrl adds the listen.tls warning on a public listener: not this test's subject.)
  const ours = (w: string): boolean => w.startsWith('metrics') || w.startsWith('audit')
  for (const [name, extra, want] of rows) t.strictSame(parse(extra).warnings.filter(ours), want, name)
})
