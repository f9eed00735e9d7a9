/**
 * Normalisation of the operations settings: metrics, health probe paths and
 * the audit log. Called by load.ts: the path clash checks run on the raw
 * document (reported with schema problems), the rest once the schema passed.
 */
import { accessSync, constants, statSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import type { RawConfig } from './schema.js'
import { isLoopbackHost } from './schema.js'
import type { AuditConfig, HealthConfig, MetricsConfig } from './types.js'
import * as D from './defaults.js'

function get (root: unknown, path: readonly string[]): unknown {
  let cur = root
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[p]
  }
  return cur
}

/** A configured path, its default when absent, undefined when not a string (the schema reports that). */
function pathAt (raw: unknown, path: readonly string[], fallback: string): string | undefined {
  const v = get(raw, path)
  if (v === undefined) return fallback
  return typeof v === 'string' ? v : undefined
}

/** Wildcard addresses: a port taken on one of them is taken on every address. */
const ANY_HOST = new Set(['0.0.0.0', '::', '[::]'])

/**
 * The gateway's own paths (probes; metrics when served on the main listener)
 * must not be a route path, lie under one (the route's `{path}/*` would
 * shadow it) or have a route under them, and must differ from each other.
 */
export function observabilityPathClashes (raw: unknown): string[] {
  const problems: string[] = []
  const reserved: Array<{ where: string, path: string, what: string }> = []
  const add = (where: string, path: string | undefined, what: string): void => { if (path !== undefined) reserved.push({ where, path, what }) }
  add('health.livenessPath', pathAt(raw, ['health', 'livenessPath'], D.DEFAULT_LIVENESS_PATH), 'health checks')
  add('health.readinessPath', pathAt(raw, ['health', 'readinessPath'], D.DEFAULT_READINESS_PATH), 'health checks')
  // On its own listener the metrics path cannot clash with anything on the main one.
  if (get(raw, ['metrics', 'enabled']) !== false && get(raw, ['metrics', 'listen']) === undefined) {
    add('metrics.path', pathAt(raw, ['metrics', 'path'], D.DEFAULT_METRICS_PATH), 'metrics')
  }
  for (let b = 1; b < reserved.length; b++) {
    for (let a = 0; a < b; a++) {
      if (reserved[a]!.path === reserved[b]!.path) problems.push(`${reserved[b]!.where}: same path as ${reserved[a]!.where}: the liveness, readiness and metrics paths must all differ`)
    }
  }
  const routes = get(raw, ['routes'])
  if (!Array.isArray(routes)) return problems
  routes.forEach((r, i) => {
    const p = get(r, ['path'])
    if (typeof p !== 'string') return
    for (const x of reserved) {
      if (p === x.path || p.startsWith(x.path + '/')) {
        problems.push(`routes[${i}].path: path is under ${x.path}: that path is reserved for ${x.what} (${x.where})`)
      } else if (x.path.startsWith(p + '/')) {
        problems.push(`${x.where}: under routes[${i}].path (${p}): the health and metrics paths must be outside every route path`)
      }
    }
  })
  return problems
}

export interface ObservabilitySettings {
  readonly metrics: MetricsConfig
  readonly health: HealthConfig
  readonly audit: AuditConfig
}

/** metrics, health and audit with defaults applied; the audit file is resolved and checked for writing (no file is created). */
export function normaliseObservability (raw: RawConfig, ctx: { baseDir: string, listenHost: string, listenPort: number, warnings: string[], problems: string[] }): ObservabilitySettings {
  const { warnings, problems } = ctx
  const m = raw.metrics
  const listen = m?.listen === undefined ? undefined : Object.freeze({ host: m.listen.host ?? D.DEFAULT_METRICS_LISTEN_HOST, port: m.listen.port })
  const metrics: MetricsConfig = Object.freeze({
    enabled: m?.enabled ?? D.DEFAULT_METRICS_ENABLED,
    path: m?.path ?? D.DEFAULT_METRICS_PATH,
    listen
  })
  if (metrics.enabled && listen === undefined && !isLoopbackHost(ctx.listenHost)) {
    warnings.push(`metrics are served without authentication at ${metrics.path} on the main listener, which is not loopback (listen.host ${ctx.listenHost}): set metrics.listen to serve them on a private address`)
  }
  if (metrics.enabled && listen !== undefined && listen.port !== 0 && listen.port === ctx.listenPort &&
    (listen.host === ctx.listenHost || ANY_HOST.has(listen.host) || ANY_HOST.has(ctx.listenHost))) {
    problems.push(`metrics.listen.port: same address as listen (${listen.host}:${listen.port}): the metrics listener needs its own port`)
  }

  const health: HealthConfig = Object.freeze({
    livenessPath: raw.health?.livenessPath ?? D.DEFAULT_LIVENESS_PATH,
    readinessPath: raw.health?.readinessPath ?? D.DEFAULT_READINESS_PATH
  })

  const a = raw.audit
  const enabled = a?.enabled ?? D.DEFAULT_AUDIT_ENABLED
  const dest = a?.destination ?? D.DEFAULT_AUDIT_DESTINATION
  let destination: AuditConfig['destination'] = dest
  if (typeof dest === 'object') {
    const file = isAbsolute(dest.file) ? dest.file : resolve(ctx.baseDir, dest.file)
    destination = Object.freeze({ file })
    if (enabled) {
      const problem = unwritable(file)
      if (problem !== undefined) problems.push(`audit.destination.file: cannot write ${file} (${problem}): the file must be writable, or its directory must exist and be writable`)
    }
  }
  const includeArguments = a?.includeArguments ?? D.DEFAULT_AUDIT_INCLUDE_ARGUMENTS
  if (enabled && includeArguments) {
    warnings.push('audit.includeArguments is true: tool and prompt arguments, which may hold personal data or secrets, are written to the audit log')
  }
  return { metrics, health, audit: Object.freeze({ enabled, destination, includeArguments }) }
}

/** Why the file cannot be appended to (an error code), or undefined. Checked without creating anything (`--check` has no side effects). */
function unwritable (file: string): string | undefined {
  try {
    if (statSync(file).isDirectory()) return 'EISDIR'
    accessSync(file, constants.W_OK)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    if (code !== 'ENOENT') return code
  }
  try {
    accessSync(dirname(file), constants.W_OK)
    return undefined
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error'
  }
}
