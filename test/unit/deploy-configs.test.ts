/**
 * deploy/ holds real configuration: every gateway config in it is loaded with
 * the gateway's own loader (parseConfig), and the manifests around each config
 * are checked for the facts that make the deployment safe and working:
 *
 * - deploy/kubernetes: the ConfigMap's gateway.yaml; the Service exposes only
 *   the gateway port; probes on /healthz and /readyz; non-root, read-only root
 *   fs, no capabilities; the NetworkPolicy admits the gateway port from anywhere
 *   and the metrics port only from the monitoring namespace; the metrics have a
 *   listener of their own (container port "metrics", prometheus.io annotations)
 *   and no startup warning; the grace period covers the gateway's drain; the
 *   config path is the one the CLI reads (MCP_GATEWAY_CONFIG); every { fromEnv }
 *   the config names is provided.
 * - deploy/helm/mcp-auth-gateway, rendered with scripts/render-helm.ts (no helm
 *   binary needed) from its default values in sidecar and standalone mode, plus
 *   renderings with a Secret and an Ingress, with a ServiceMonitor, and with
 *   metrics off: the same checks.
 * - deploy/compose/{drupal,keycloak}: both gateway.yaml files (metrics on
 *   loopback, unpublished), the compose wiring, the Keycloak realm export
 *   (audience mapper, mcp:tools scope).
 * - scripts/render-helm.ts itself: what it renders, and that everything it does
 *   not understand is an error rather than silently wrong output.
 *
 * Secrets: each { fromEnv: NAME } gets a placeholder value here, but only after
 * the test has checked that the deployment really provides NAME to the gateway.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

import t, { type Test } from 'tap'
import { parse, parseAllDocuments } from 'yaml'

import { parseConfig, type Env } from '../../src/config/load.js'
// The sizing rule the gateway's startup warning uses (docs/configuration.md, limits.maxStreams).
import { memoryNeeded } from '../../src/config/memory.js'
import type { GatewayConfig } from '../../src/config/types.js'
import { ConfigError } from '../../src/errors.js'
import { renderChart, renderTemplates, TemplateError } from '../../scripts/render-helm.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DEPLOY = join(ROOT, 'deploy')
const CHART = join(DEPLOY, 'helm', 'mcp-auth-gateway')
const IMAGE = 'ghcr.io/mcp-auth-gateway/mcp-auth-gateway:0.1.0'
/** The namespace every deploy/ NetworkPolicy admits to the metrics port (Prometheus'). */
const MONITORING_NAMESPACE = 'monitoring'

type Obj = Record<string, any>

/** The config path the image's CLI reads (Dockerfile ENV MCP_GATEWAY_CONFIG). */
const IMAGE_CONFIG_PATH = (() => {
  const m = /MCP_GATEWAY_CONFIG=(\S+)/.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
  if (m === null) throw new Error('Dockerfile: no MCP_GATEWAY_CONFIG in ENV')
  return m[1]!
})()

// ---------------------------------------------------------------------------
// helpers

const MIB = 1024 * 1024

/** A Kubernetes memory quantity in bytes; only the forms deploy/ uses (Ki, Mi, Gi, plain). */
function memoryBytes (q: unknown): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(String(q))
  if (m === null) throw new Error(`not a memory quantity this test reads: ${String(q)}`)
  const unit = m[2] === undefined ? 1 : { Ki: 1024, Mi: MIB, Gi: 1024 * MIB }[m[2] as 'Ki' | 'Mi' | 'Gi']
  return Number(m[1]) * unit
}

/** Every YAML document of a text; a syntax error or duplicate key fails. */
function yamlDocs (text: string, label: string): Obj[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true })
  if (!Array.isArray(docs)) return []
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${label}: ${d.errors.map((e) => e.message).join('; ')}`)
  }
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null)
}

function walk (dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })
}

/** Names the config reads from the environment: { fromEnv } and ${NAME}; also every { fromFile }. */
function secretRefs (value: unknown, out = { env: new Set<string>(), files: new Set<string>() }): { env: Set<string>, files: Set<string> } {
  if (typeof value === 'string') {
    for (const m of value.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) out.env.add(m[1]!)
  } else if (Array.isArray(value)) {
    for (const v of value) secretRefs(v, out)
  } else if (value !== null && typeof value === 'object') {
    const o = value as Obj
    if (typeof o.fromEnv === 'string') out.env.add(o.fromEnv)
    if (typeof o.fromFile === 'string') out.files.add(o.fromFile)
    for (const v of Object.values(o)) secretRefs(v, out)
  }
  return out
}

/** Load a config text with the gateway's loader; the provided names get placeholder secrets (64 bytes). */
function load (text: string, provided: Iterable<string>, label: string): GatewayConfig {
  const env: Record<string, string> = {}
  for (const name of provided) env[name] = 'x'.repeat(64)
  try {
    return parseConfig(text, { env: env as Env, baseDir: DEPLOY })
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`${label}: the gateway refuses this config:\n  ${err.problems.join('\n  ')}`)
    throw err
  }
}

function byKind (docs: Obj[], kind: string): Obj[] {
  return docs.filter((d) => d.kind === kind)
}

function one (docs: Obj[], kind: string, label: string): Obj {
  const list = byKind(docs, kind)
  if (list.length !== 1) throw new Error(`${label}: expected exactly one ${kind}, found ${list.length}`)
  return list[0]!
}

function labelsMatch (selector: Obj | undefined, labels: Obj | undefined): boolean {
  if (selector === undefined || labels === undefined || Object.keys(selector).length === 0) return false
  return Object.entries(selector).every(([k, v]) => labels[k] === v)
}

/** A container port given by number or name, as the container's port number. */
function resolvePort (port: unknown, container: Obj): number | undefined {
  if (typeof port === 'number') return port
  return (container.ports as Obj[] | undefined)?.find((p) => p.name === port)?.containerPort
}

// ---------------------------------------------------------------------------
// Kubernetes: one set of checks for the plain manifests and every Helm rendering

interface PodExpectations {
  /** sidecar: an MCP server container on loopback; standalone: the gateway alone. */
  readonly mode: 'sidecar' | 'standalone'
  /** Whether the gateway serves metrics (helm metrics.enabled). */
  readonly metrics: boolean
  /** The namespace the manifests are applied to (a ServiceMonitor must look there). */
  readonly namespace?: string
}

/** Metrics on the main listener of a non-loopback gateway are public: the loader warns, and no deploy/ config may. */
function noMetricsWarning (t: Test, config: GatewayConfig, label: string): void {
  t.same(config.warnings.filter((w) => /metrics/i.test(w)), [], `${label}: no startup warning about metrics`)
}

/** The Service in front of the gateway: the one that is not headless (a headless one only serves a ServiceMonitor). */
function mainService (docs: Obj[], label: string): Obj {
  const list = byKind(docs, 'Service').filter((s) => s.spec?.clusterIP !== 'None')
  if (list.length !== 1) throw new Error(`${label}: expected exactly one Service with a cluster IP, found ${list.length}`)
  return list[0]!
}

/**
 * The checks every Kubernetes deployment of the gateway must pass. Returns the
 * loaded gateway config for extra checks by the caller.
 */
function checkKubernetes (t: Test, docs: Obj[], label: string, expect: PodExpectations): GatewayConfig {
  const deployment = one(docs, 'Deployment', label)
  const service = mainService(docs, label)
  const netpol = one(docs, 'NetworkPolicy', label)
  const configMaps = byKind(docs, 'ConfigMap')
  const secrets = byKind(docs, 'Secret')
  const pod = deployment.spec.template.spec as Obj
  const podLabels = deployment.spec.template.metadata.labels as Obj
  const containers = pod.containers as Obj[]
  const gateway = containers.find((c) => c.image === IMAGE || String(c.image).startsWith('ghcr.io/mcp-auth-gateway/mcp-auth-gateway:'))
  if (gateway === undefined) throw new Error(`${label}: no container runs the gateway image`)
  t.equal(gateway.image, IMAGE, `${label}: the gateway image`)
  t.ok(labelsMatch(deployment.spec.selector.matchLabels, podLabels), `${label}: the Deployment selects its own pods`)

  // The config: mounted from the ConfigMap at the path MCP_GATEWAY_CONFIG names.
  const envList = (gateway.env ?? []) as Obj[]
  const configPath = envList.find((e) => e.name === 'MCP_GATEWAY_CONFIG')?.value as string | undefined
  t.equal(configPath, IMAGE_CONFIG_PATH, `${label}: MCP_GATEWAY_CONFIG is the path the image's CLI reads`)
  const dir = dirname(configPath ?? '')
  const file = (configPath ?? '').slice(dir.length + 1)
  const mount = (gateway.volumeMounts as Obj[]).find((m) => m.mountPath === dir)
  t.ok(mount, `${label}: a volume is mounted at ${dir}`)
  t.equal(mount?.readOnly, true, `${label}: the config volume is read-only`)
  const volume = (pod.volumes as Obj[]).find((v) => v.name === mount?.name)
  const cm = configMaps.find((c) => c.metadata.name === volume?.configMap?.name)
  if (cm === undefined) throw new Error(`${label}: the config volume is not one of the ConfigMaps`)
  const items = volume?.configMap?.items as Obj[] | undefined
  const key = items === undefined ? file : items.find((i) => i.path === file)?.key
  const text = cm.data?.[key] as string | undefined
  if (typeof text !== 'string') throw new Error(`${label}: ConfigMap ${String(cm.metadata.name)} has no ${String(key)} for ${file}`)

  // Every secret the config names is in the gateway container's environment.
  const refs = secretRefs(parse(text))
  t.same([...refs.files], [], `${label}: no { fromFile } (this test provides environment secrets only)`)
  const fromSecrets = new Map<string, Obj>() // env name → Secret doc, or {} when external
  for (const e of envList) {
    const ref = e.valueFrom?.secretKeyRef as Obj | undefined
    if (ref === undefined) continue
    const secret = secrets.find((s) => s.metadata.name === ref.name)
    t.ok(secret, `${label}: env ${String(e.name)} refers to a Secret of the deployment (${String(ref.name)})`)
    t.ok(secret !== undefined && Object.hasOwn(secret.stringData ?? secret.data ?? {}, ref.key), `${label}: Secret ${String(ref.name)} has key ${String(ref.key)}`)
    fromSecrets.set(e.name, secret ?? {})
  }
  for (const src of (gateway.envFrom ?? []) as Obj[]) {
    const secret = secrets.find((s) => s.metadata.name === src.secretRef?.name)
    t.ok(secret, `${label}: envFrom names a Secret of the deployment (${String(src.secretRef?.name)})`)
    for (const k of Object.keys(secret?.stringData ?? secret?.data ?? {})) fromSecrets.set(k, secret!)
  }
  const plain = new Set(envList.filter((e) => typeof e.value === 'string').map((e) => e.name as string))
  for (const name of refs.env) {
    t.ok(fromSecrets.has(name) || plain.has(name), `${label}: the config reads ${name}; the gateway container is given it`)
  }
  for (const s of secrets) {
    for (const [k, v] of Object.entries(s.stringData ?? {})) {
      t.match(String(v), /^(REPLACE|placeholder)/i, `${label}: Secret ${String(s.metadata.name)}.${k} holds a placeholder, never a real value`)
    }
  }
  const config = load(text, refs.env, `${label} gateway.yaml`)

  // Ports: the gateway listens on its container port "http" (plus "metrics" when metrics are on);
  // the Service exposes the "http" port alone.
  const gatewayPorts = (gateway.ports ?? []) as Obj[]
  const metrics = config.metrics
  t.same(gatewayPorts.map((p) => p.name), metrics.enabled ? ['http', 'metrics'] : ['http'],
    `${label}: the gateway container declares its port${metrics.enabled ? ' and the metrics port' : ' alone (metrics are off)'}`)
  const port = gatewayPorts.find((p) => p.name === 'http')?.containerPort as number
  t.equal(config.listen.port, port, `${label}: listen.port is the container port`)
  t.equal(config.listen.host, '0.0.0.0', `${label}: the gateway listens on the pod IP`)
  t.equal(service.spec.ports.length, 1, `${label}: the Service exposes exactly one port`)
  t.equal(resolvePort(service.spec.ports[0].targetPort, gateway), port, `${label}: the Service's one port targets the gateway`)
  t.ok(labelsMatch(service.spec.selector, podLabels), `${label}: the Service selects the pod`)

  // Metrics: never on the public port. On: a listener of their own on the pod IP, declared as
  // the container port "metrics" and announced by the prometheus.io annotations, in no Service
  // but a headless one for a ServiceMonitor. Off: none of that.
  noMetricsWarning(t, config, label)
  t.equal(metrics.enabled, expect.metrics, `${label}: metrics are ${expect.metrics ? 'on' : 'off'}`)
  const metricsPort = metrics.enabled ? metrics.listen?.port : undefined
  const annotations = (deployment.spec.template.metadata.annotations ?? {}) as Obj
  if (metrics.enabled) {
    t.ok(metrics.listen !== undefined, `${label}: metrics have a listener of their own (metrics.listen), not the gateway port`)
    t.equal(metrics.listen?.host, '0.0.0.0', `${label}: the metrics listen on the pod IP, where Prometheus scrapes`)
    t.equal(resolvePort('metrics', gateway), metricsPort, `${label}: the metrics containerPort is metrics.listen.port`)
    t.same([annotations['prometheus.io/scrape'], annotations['prometheus.io/port'], annotations['prometheus.io/path']], ['true', String(metricsPort), metrics.path],
      `${label}: prometheus.io annotations name the metrics port and path`)
  } else {
    t.same(Object.keys(annotations).filter((k) => k.startsWith('prometheus.io/')), [], `${label}: no prometheus.io annotations`)
  }
  const headless = byKind(docs, 'Service').filter((s) => s.spec?.clusterIP === 'None')
  const monitors = byKind(docs, 'ServiceMonitor')
  t.equal(headless.length, monitors.length, `${label}: a headless metrics Service exactly when there is a ServiceMonitor`)
  for (const hs of headless) {
    t.ok(labelsMatch(hs.spec.selector, podLabels), `${label}: the metrics Service selects the pods`)
    t.equal(hs.spec.ports?.length, 1, `${label}: the metrics Service has one port`)
    t.equal(resolvePort(hs.spec.ports?.[0]?.targetPort, gateway), metricsPort, `${label}: it targets the metrics port`)
  }
  for (const sm of monitors) {
    const selected = byKind(docs, 'Service').filter((s) => labelsMatch(sm.spec.selector?.matchLabels, s.metadata.labels)).map((s) => s.metadata.name as string)
    t.same(selected, headless.map((s) => s.metadata.name as string), `${label}: the ServiceMonitor selects the metrics Service, not the gateway's`)
    t.same((sm.spec.endpoints as Obj[]).map((e) => [e.port, e.path]), [[headless[0]?.spec.ports?.[0]?.name, metrics.path]], `${label}: it scrapes the metrics port by name, on the metrics path`)
    t.same(sm.spec.namespaceSelector, { matchNames: [expect.namespace] }, `${label}: in the release's namespace`)
  }

  // Probes: the gateway's health paths (configurable as health.livenessPath / readinessPath; /healthz and /readyz by default).
  const health = (config as { health?: { livenessPath?: string, readinessPath?: string } }).health
  t.equal(gateway.livenessProbe?.httpGet?.path, health?.livenessPath ?? '/healthz', `${label}: liveness probe on the gateway's liveness path`)
  t.equal(gateway.readinessProbe?.httpGet?.path, health?.readinessPath ?? '/readyz', `${label}: readiness probe on the gateway's readiness path`)
  t.equal(gateway.livenessProbe?.httpGet?.path, '/healthz', `${label}: liveness probe on /healthz`)
  t.equal(gateway.readinessProbe?.httpGet?.path, '/readyz', `${label}: readiness probe on /readyz`)
  t.equal(resolvePort(gateway.livenessProbe?.httpGet?.port, gateway), port, `${label}: liveness probe on the gateway port`)
  t.equal(resolvePort(gateway.readinessProbe?.httpGet?.port, gateway), port, `${label}: readiness probe on the gateway port`)

  // Security context: non-root, read-only root fs, no capabilities, for every container.
  t.equal(pod.securityContext?.runAsNonRoot, true, `${label}: pod runAsNonRoot`)
  t.ok(typeof pod.securityContext?.runAsUser === 'number' && pod.securityContext.runAsUser !== 0, `${label}: pod runs as a non-zero uid`)
  t.equal(pod.automountServiceAccountToken, false, `${label}: no service account token in the pod`)
  for (const c of containers) {
    const sc = c.securityContext as Obj | undefined
    t.equal(sc?.readOnlyRootFilesystem, true, `${label}: ${String(c.name)} has a read-only root fs`)
    t.equal(sc?.allowPrivilegeEscalation, false, `${label}: ${String(c.name)} cannot escalate privileges`)
    t.ok((sc?.capabilities?.drop as string[] | undefined)?.includes('ALL'), `${label}: ${String(c.name)} drops ALL capabilities`)
    t.not(sc?.runAsUser, 0, `${label}: ${String(c.name)} does not run as root`)
    t.ok(c.resources?.requests?.memory !== undefined && c.resources?.limits?.memory !== undefined, `${label}: ${String(c.name)} has memory requests and limits`)
  }

  // Memory: the gateway's limit fits its own stream cap, so that limits.maxStreams refuses a
  // stream (503) before the OOM killer ends every stream at once. Regression: the manifests
  // gave the gateway 256Mi while the default cap of 10,000 idle streams takes ~340 MB on the
  // image's Node 24 (BENCHMARKS.md, "Node 24").
  const limit = memoryBytes(gateway.resources?.limits?.memory)
  const need = memoryNeeded(config.limits.maxStreams)
  t.ok(limit >= need, `${label}: the gateway's memory limit (${String(gateway.resources?.limits?.memory)}) fits limits.maxStreams (${config.limits.maxStreams}): needs ~${Math.ceil(need / MIB)} MiB`)

  // Shutdown: the grace period covers the preStop sleep plus the gateway's drain.
  const preStop = gateway.lifecycle?.preStop?.exec?.command as string[] | undefined
  const gatewaySleep = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0
  const drain = config.shutdownTimeoutMs / 1000
  t.ok(pod.terminationGracePeriodSeconds > gatewaySleep + drain,
    `${label}: terminationGracePeriodSeconds (${String(pod.terminationGracePeriodSeconds)}) > preStop sleep (${gatewaySleep}) + shutdownTimeoutSeconds (${drain})`)

  // NetworkPolicy: ingress to this pod on the gateway port from anywhere, and on the metrics
  // port (when on) only from the monitoring namespace; nothing else.
  t.ok(labelsMatch(netpol.spec.podSelector?.matchLabels, podLabels), `${label}: the NetworkPolicy selects the pod`)
  t.ok((netpol.spec.policyTypes as string[]).includes('Ingress'), `${label}: the NetworkPolicy restricts ingress`)
  const rules = (netpol.spec.ingress ?? []) as Obj[]
  t.ok(rules.length > 0, `${label}: the NetworkPolicy has an ingress rule`)
  const gatewayRules: Obj[] = []
  const metricsRules: Obj[] = []
  for (const r of rules) {
    const ports = ((r.ports ?? []) as Obj[]).map((p) => resolvePort(p.port, gateway))
    t.ok(ports.length > 0, `${label}: every ingress rule names its ports (none would allow all)`)
    if (ports.length > 0 && ports.every((p) => p === port)) gatewayRules.push(r)
    else if (ports.length > 0 && metricsPort !== undefined && ports.every((p) => p === metricsPort)) metricsRules.push(r)
    // With metrics off, a rule for the metrics port lands here too.
    else t.fail(`${label}: an ingress rule allows ports ${ports.join(', ')}: only the gateway port, or the metrics port (when on) in a rule of its own`)
  }
  t.equal(gatewayRules.length, 1, `${label}: one ingress rule opens the gateway port`)
  t.same(gatewayRules[0]?.from ?? [], [], `${label}: the gateway port is open to any source (the ingress controller)`)
  if (metrics.enabled) t.equal(metricsRules.length, 1, `${label}: one ingress rule opens the metrics port`)
  for (const r of metricsRules) {
    t.same(r.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': MONITORING_NAMESPACE } } }],
      `${label}: the metrics port only from the ${MONITORING_NAMESPACE} namespace`)
  }

  // The upstream.
  const route = config.routes[0]!
  const mcpServer = containers.find((c) => c !== gateway)
  if (expect.mode === 'sidecar') {
    t.equal(containers.length, 2, `${label}: the gateway and the MCP server share the pod`)
    t.equal(new URL(route.upstreamOrigin).hostname, '127.0.0.1', `${label}: the gateway proxies over the pod's loopback`)
    t.same(mcpServer?.ports ?? [], [], `${label}: the MCP server container exposes no port`)
    const env = new Map(((mcpServer?.env ?? []) as Obj[]).map((e) => [e.name, e.value]))
    t.equal(env.get('HOST'), '127.0.0.1', `${label}: the MCP server is told to listen on loopback`)
    t.equal(env.get('PORT'), new URL(route.upstreamOrigin).port, `${label}: the MCP server's port is the upstream's`)
    // The MCP server outlives the gateway's drain.
    const serverSleep = Number(mcpServer?.lifecycle?.preStop?.sleep?.seconds ?? 0)
    t.ok(serverSleep >= gatewaySleep + drain, `${label}: the MCP server's preStop (${serverSleep}s) lasts through the gateway's drain (${gatewaySleep + drain}s)`)
    t.ok(pod.terminationGracePeriodSeconds > serverSleep, `${label}: the grace period covers the MCP server's preStop`)
  } else {
    t.equal(containers.length, 1, `${label}: standalone runs the gateway alone`)
  }
  return config
}

// ---------------------------------------------------------------------------

t.test('every YAML and JSON file in deploy/ parses (Helm templates are rendered below)', async (t) => {
  const files = walk(DEPLOY).filter((f) => !f.includes(join('helm', 'mcp-auth-gateway', 'templates')))
  const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f))
  t.ok(yamlFiles.length >= 12, `found ${yamlFiles.length} YAML files`)
  for (const f of yamlFiles) {
    t.doesNotThrow(() => yamlDocs(readFileSync(f, 'utf8'), relative(ROOT, f)), relative(ROOT, f))
  }
  for (const f of files.filter((f) => f.endsWith('.json'))) {
    t.doesNotThrow(() => JSON.parse(readFileSync(f, 'utf8')), relative(ROOT, f))
  }
  // A duplicate key would be silently merged by some tools: it is an error here.
  t.throws(() => yamlDocs('a: 1\na: 2\n', 'dup'), /dup/, 'the parser used here refuses duplicate keys')
})

t.test('deploy/kubernetes: the sidecar manifests', async (t) => {
  const dir = join(DEPLOY, 'kubernetes')
  const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Obj
  const manifests = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()
  t.same([...kustomization.resources].sort(), manifests, 'kustomization.yaml lists every manifest')
  const docs = manifests.flatMap((f) => yamlDocs(readFileSync(join(dir, f), 'utf8'), `kubernetes/${f}`))
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Secret', 'Service'], 'one of each kind')
  const config = checkKubernetes(t, docs, 'kubernetes', { mode: 'sidecar', metrics: true })
  t.equal(config.routes[0]!.upstreamAuth.type, 'header', 'the MCP server gets its own key, never the client token')
  // The PodMonitor README.md offers for the Prometheus Operator scrapes this pod's metrics port.
  const readme = readFileSync(join(dir, 'README.md'), 'utf8')
  const blocks = [...readme.matchAll(/^( *)```yaml\n([\s\S]*?)^\1```/gm)].map((m) => m[2]!.replace(new RegExp(`^${m[1]!}`, 'gm'), ''))
  const podMonitor = blocks.map((b) => parse(b) as Obj).find((d) => d?.kind === 'PodMonitor')
  t.ok(podMonitor, 'README.md shows a PodMonitor')
  const deployment = one(docs, 'Deployment', 'kubernetes')
  const gatewayContainer = (deployment.spec.template.spec.containers as Obj[]).find((c) => c.name === 'gateway')!
  t.ok(labelsMatch(podMonitor?.spec?.selector?.matchLabels, deployment.spec.template.metadata.labels), 'the PodMonitor selects the pod')
  const endpoint = podMonitor?.spec?.podMetricsEndpoints?.[0] as Obj | undefined
  t.equal(resolvePort(endpoint?.port, gatewayContainer), config.metrics.listen?.port, 'the PodMonitor scrapes the metrics port (by its name)')
  t.equal(endpoint?.path, config.metrics.path, 'on the metrics path')
  t.match(readme, new RegExp(`kubernetes\\.io/metadata\\.name: ${MONITORING_NAMESPACE}`), 'README.md says where the monitoring namespace is set')
  // The MCP server container checks the same Secret key the gateway sends.
  const pod = one(docs, 'Deployment', 'kubernetes').spec.template.spec as Obj
  const keyOf = (c: Obj | undefined): string[] => ((c?.env ?? []) as Obj[]).filter((e) => e.valueFrom?.secretKeyRef !== undefined).map((e) => `${String(e.valueFrom.secretKeyRef.name)}/${String(e.valueFrom.secretKeyRef.key)}`)
  const [gw, server] = [pod.containers.find((c: Obj) => c.name === 'gateway'), pod.containers.find((c: Obj) => c.name !== 'gateway')]
  t.same(keyOf(server), keyOf(gw), 'the MCP server and the gateway read the same Secret key')
})

t.test('deploy/helm: the chart rendered from its default values', async (t) => {
  const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Obj
  t.equal(defaults.mode, 'sidecar', 'the default mode is sidecar')

  t.equal(defaults.metrics.enabled, true, 'metrics are on by default')
  t.equal(defaults.metrics.monitoringNamespace, MONITORING_NAMESPACE, `the NetworkPolicy admits metrics from ${MONITORING_NAMESPACE} by default`)
  t.equal(defaults.metrics.serviceMonitor.enabled, false, 'no ServiceMonitor by default (it needs the Prometheus Operator\'s CRDs)')

  const kinds = ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service']
  const cases: Array<{ name: string, values: Obj, mode: 'sidecar' | 'standalone', metrics: boolean, kinds: string[] }> = [
    { name: 'sidecar (defaults)', values: {}, mode: 'sidecar', metrics: true, kinds },
    { name: 'standalone (defaults)', values: { mode: 'standalone' }, mode: 'standalone', metrics: true, kinds },
    {
      name: 'sidecar with a Secret and an Ingress',
      values: {
        secretEnv: { UPSTREAM_API_KEY: 'placeholder-key' },
        route: { upstreamAuth: { type: 'header', name: 'X-Api-Key', value: { fromEnv: 'UPSTREAM_API_KEY' } } },
        ingress: { enabled: true, className: 'nginx', tls: [{ secretName: 'mcp-tls', hosts: ['mcp.example.com'] }] }
      },
      mode: 'sidecar',
      metrics: true,
      kinds: ['ConfigMap', 'Deployment', 'Ingress', 'NetworkPolicy', 'Secret', 'Service']
    },
    { name: 'sidecar with a ServiceMonitor', values: { metrics: { serviceMonitor: { enabled: true } } }, mode: 'sidecar', metrics: true, kinds: [...kinds, 'Service', 'ServiceMonitor'].sort() },
    {
      name: 'standalone with a ServiceMonitor and an Ingress',
      values: { mode: 'standalone', metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kps' } } }, ingress: { enabled: true } },
      mode: 'standalone',
      metrics: true,
      kinds: [...kinds, 'Ingress', 'Service', 'ServiceMonitor'].sort()
    },
    { name: 'sidecar with metrics off', values: { metrics: { enabled: false } }, mode: 'sidecar', metrics: false, kinds },
    { name: 'standalone with metrics off', values: { mode: 'standalone', metrics: { enabled: false } }, mode: 'standalone', metrics: false, kinds }
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const rendered = renderChart(CHART, { values: c.values, releaseName: 'mcp', namespace: 'apps' })
      const docs = [...rendered.files].flatMap(([f, text]) => yamlDocs(text, `helm ${c.name} ${f}`))
      t.same(docs.map((d) => d.kind).sort(), c.kinds, 'the rendered kinds')
      const config = checkKubernetes(t, docs, `helm ${c.name}`, { mode: c.mode, metrics: c.metrics, namespace: 'apps' })
      if (c.metrics) {
        t.same(config.metrics.listen, { host: '0.0.0.0', port: defaults.metrics.port }, 'metrics.listen is 0.0.0.0:metrics.port')
        t.equal(config.metrics.path, defaults.metrics.path, 'metrics.path is the chart\'s')
      } else {
        // Exactly `metrics: { enabled: false }`: nothing else the chart could leave behind.
        const cm = one(docs, 'ConfigMap', c.name)
        t.same((parse(cm.data['gateway.yaml'] as string) as Obj).metrics, { enabled: false }, 'gateway.yaml says metrics: { enabled: false }')
      }
      t.equal(config.publicUrl, defaults.gateway.publicUrl, 'the gateway values end up in gateway.yaml')
      t.same(config.routes[0]!.scopes, defaults.route.scopes, 'the route values end up in gateway.yaml')
      if (c.mode === 'standalone') {
        t.equal(config.routes[0]!.upstreamOrigin + config.routes[0]!.upstreamPath, defaults.upstreamUrl, 'standalone proxies to upstreamUrl')
      } else {
        t.equal(config.routes[0]!.upstreamOrigin, `http://127.0.0.1:${String(defaults.mcpServer.port)}`, 'sidecar proxies to mcpServer.port on loopback')
      }
      const ingress = byKind(docs, 'Ingress')[0]
      if (ingress !== undefined) {
        const backend = ingress.spec.rules[0].http.paths[0].backend.service
        const service = mainService(docs, c.name)
        t.equal(backend.name, service.metadata.name, 'the Ingress routes to the Service')
        t.equal(backend.port.name, service.spec.ports[0].name, 'on its one port')
        t.equal(`https://${String(ingress.spec.rules[0].host)}`, config.publicUrl, 'the Ingress host is publicUrl')
      }
      const deployment = one(docs, 'Deployment', c.name)
      t.match(deployment.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/, 'pods roll when the config changes')
    })
  }

  await t.test('a change of config changes the checksum annotation', async (t) => {
    const sum = (values: Obj): string => (yamlDocs(renderChart(CHART, { values }).files.get('deployment.yaml')!, 'deployment')[0]!).spec.template.metadata.annotations['checksum/config']
    t.not(sum({ gateway: { logLevel: 'debug' } }), sum({}))
  })

  await t.test('the probes follow gateway.health when it sets other paths', async (t) => {
    const probes = (values: Obj): string[] => {
      const c = (yamlDocs(renderChart(CHART, { values }).files.get('deployment.yaml')!, 'deployment')[0]!).spec.template.spec.containers[0]
      return [c.livenessProbe.httpGet.path, c.readinessProbe.httpGet.path]
    }
    t.same(probes({ gateway: { health: { livenessPath: '/live', readinessPath: '/ready' } } }), ['/live', '/ready'])
    t.same(probes({ gateway: { health: { livenessPath: '/live' } } }), ['/live', '/readyz'])
    t.same(probes({}), ['/healthz', '/readyz'])
  })

  await t.test('mistakes fail loudly', async (t) => {
    t.throws(() => renderChart(CHART, { values: { mode: 'both' } }), { name: 'TemplateError', message: /mode must be sidecar or standalone/ })
    t.throws(() => renderChart(CHART, { values: { mode: 'standalone', upstreamUrl: '' } }), { name: 'TemplateError', message: /upstreamUrl is required when mode is standalone/ })
    // `gateway` must not hold routes: the gateway refuses the duplicate key rather than picking one.
    const text = renderChart(CHART, { values: { gateway: { routes: [] } } }).files.get('configmap.yaml')!
    const cm = yamlDocs(text, 'configmap')[0]!
    t.throws(() => parseConfig(cm.data['gateway.yaml'] as string, { env: {} }), ConfigError)
    // Nor metrics: the chart writes them from metrics.*.
    const gatewayYaml = (values: Obj): string => (yamlDocs(renderChart(CHART, { values }).files.get('configmap.yaml')!, 'configmap')[0]!).data['gateway.yaml'] as string
    t.throws(() => parseConfig(gatewayYaml({ gateway: { metrics: { enabled: false } } }), { env: {} }), ConfigError, 'gateway.metrics clashes with the chart\'s metrics')
    const problems = (values: Obj): readonly string[] => {
      try {
        parseConfig(gatewayYaml(values), { env: {} })
        return []
      } catch (err) {
        if (err instanceof ConfigError) return err.problems
        throw err
      }
    }
    t.ok(problems({ metrics: { port: 8080 } }).some((p) => p.startsWith('metrics.listen.port: same address as listen')), 'metrics.port equal to gatewayPort is refused by the gateway')
    t.throws(() => renderChart(CHART, { values: { metrics: { enabled: false, serviceMonitor: { enabled: true } } } }), { name: 'TemplateError', message: /metrics\.serviceMonitor\.enabled needs metrics\.enabled/ })
    t.throws(() => renderChart(CHART, { values: { metrics: { monitoringNamespace: '' } } }), { name: 'TemplateError', message: /metrics\.monitoringNamespace is required/ })
  })

  // Only when a helm binary happens to be installed (none is packaged in Debian): same output.
  let helm: string | undefined
  try {
    helm = execFileSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' }).trim() || undefined
  } catch { helm = undefined }
  await t.test('scripts/render-helm.ts renders what helm renders', { skip: helm === undefined ? 'no helm binary on PATH' : false }, async (t) => {
    for (const set of [[], ['--set', 'mode=standalone']]) {
      const theirs = execFileSync(helm!, ['template', 'mcp', CHART, ...set], { encoding: 'utf8' })
      const ours = renderChart(CHART, { releaseName: 'mcp', values: set.length === 0 ? {} : { mode: 'standalone' } }).manifest
      const norm = (s: string): Obj[] => yamlDocs(s, 'helm').sort((a, b) => `${String(a.kind)}`.localeCompare(`${String(b.kind)}`))
      t.same(norm(ours), norm(theirs), `helm template ${set.join(' ')}`)
    }
  })
})

/** The gateway service of a compose file and the service whose network namespace it shares. */
function composeGateway (t: Test, compose: Obj, label: string): { gateway: Obj, owner: Obj } {
  const gateway = compose.services.gateway as Obj
  t.equal(gateway.image, IMAGE, `${label}: the gateway image`)
  t.equal(gateway.build, '../../..', `${label}: built from the repository's Dockerfile when not pulled`)
  t.ok((gateway.volumes as string[]).includes(`./gateway.yaml:${IMAGE_CONFIG_PATH}:ro`), `${label}: gateway.yaml is mounted read-only at the path the image's CLI reads`)
  t.equal(gateway.read_only, true, `${label}: read-only root fs`)
  t.same(gateway.cap_drop, ['ALL'], `${label}: no capabilities`)
  const m = /^service:(.+)$/.exec(String(gateway.network_mode))
  t.ok(m, `${label}: the gateway shares a service's network namespace (loopback to it, like a pod)`)
  const owner = compose.services[m?.[1] ?? ''] as Obj
  t.ok(owner, `${label}: that service exists`)
  return { gateway, owner }
}

function composeChecks (t: Test, name: 'drupal' | 'keycloak'): { compose: Obj, config: GatewayConfig, gateway: Obj, owner: Obj } {
  const dir = join(DEPLOY, 'compose', name)
  const label = `compose/${name}`
  const compose = yamlDocs(readFileSync(join(dir, 'docker-compose.yml'), 'utf8'), label)[0]!
  const { gateway, owner } = composeGateway(t, compose, label)
  const text = readFileSync(join(dir, 'gateway.yaml'), 'utf8')
  const refs = secretRefs(parse(text))
  t.same([...refs.files], [], `${label}: no { fromFile }`)
  const provided = new Set(Object.keys((gateway.environment ?? {}) as Obj))
  for (const n of refs.env) t.ok(provided.has(n), `${label}: the config reads ${n}; the gateway service is given it`)
  const config = load(text, refs.env, `${label}/gateway.yaml`)
  t.ok((owner.ports as string[]).some((p) => p.endsWith(`:${config.listen.port}`)), `${label}: the gateway's port ${config.listen.port} is published`)
  // Metrics: a loopback listener of their own, inside the shared network namespace only.
  noMetricsWarning(t, config, label)
  const metrics = config.metrics.listen
  t.ok(config.metrics.enabled && metrics !== undefined, `${label}: metrics have a listener of their own (metrics.listen)`)
  t.equal(metrics?.host, '127.0.0.1', `${label}: the metrics listen on loopback`)
  t.notOk((owner.ports as string[]).some((p) => p.endsWith(`:${String(metrics?.port)}`)), `${label}: the metrics port is not published`)
  const readme = readFileSync(join(dir, 'README.md'), 'utf8')
  t.match(readme, new RegExp(`docker compose exec \\S+ .*http://127\\.0\\.0\\.1:${String(metrics?.port)}${config.metrics.path}`), `${label}: README.md shows how to read the metrics (docker compose exec)`)
  t.ok((owner.ports as string[]).every((p) => p.startsWith('127.0.0.1:')), `${label}: published on loopback only`)
  t.equal(new URL(config.routes[0]!.upstreamOrigin).hostname, '127.0.0.1', `${label}: the upstream is reached over loopback`)
  t.equal(config.listen.host, '0.0.0.0', `${label}: the gateway listens for the published port`)
  return { compose, config, gateway, owner }
}

t.test('deploy/compose/drupal: Drupal MCP module behind the gateway, simple_oauth as the AS', async (t) => {
  const { compose, config, owner } = composeChecks(t, 'drupal')
  t.ok(config.authorizationServers.length > 0, 'has an authorization server')
  for (const as of config.authorizationServers) {
    t.equal(as.profile, 'drupal', `${as.issuer} uses profile: drupal`)
    t.ok(as.allowedClientIds !== undefined && as.allowedClientIds.length > 0, 'tokens are bound to the MCP consumer (simple_oauth puts the client id in aud)')
    t.ok(as.jwksUri?.startsWith('http://127.0.0.1/'), 'keys come from Drupal over loopback')
    t.match(as.jwksUri, /\/oauth\/jwks$/, 'simple_oauth\'s JWKS path')
  }
  t.equal(config.routes[0]!.upstreamPath, '/mcp/post', 'the MCP module\'s JSON-RPC endpoint')
  t.equal(config.routes[0]!.upstreamAuth.type, 'header', 'the gateway authenticates itself to the MCP module')
  t.match(String(owner.image), /^drupal:/, 'the official drupal image')
  const dbImages = Object.values(compose.services as Obj).map((s: Obj) => String(s.image))
  t.ok(dbImages.some((i) => /^(mariadb|postgres|mysql):/.test(i)), 'an official database image')
  // The raw file says profile: drupal too (not only the normalised default).
  const raw = parse(readFileSync(join(DEPLOY, 'compose', 'drupal', 'gateway.yaml'), 'utf8')) as Obj
  t.ok((raw.authorizationServers as Obj[]).every((a) => a.profile === 'drupal'), 'gateway.yaml sets profile: drupal explicitly')
})

t.test('deploy/compose/keycloak: Keycloak realm, gateway, server-everything', async (t) => {
  const { compose, config, owner } = composeChecks(t, 'keycloak')
  const dir = join(DEPLOY, 'compose', 'keycloak')
  const kc = owner
  t.match(String(kc.image), /^quay\.io\/keycloak\/keycloak:/, 'the Keycloak image')
  t.ok((kc.command as string[]).includes('start-dev') && (kc.command as string[]).includes('--import-realm'), 'start-dev --import-realm')
  const mount = (kc.volumes as string[]).find((v) => v.includes('/opt/keycloak/data/import/'))
  t.ok(mount, 'the realm export is mounted into the import directory')
  const realmFile = join(dir, mount!.split(':')[0]!)
  const realm = JSON.parse(readFileSync(realmFile, 'utf8')) as Obj

  const as = config.authorizationServers[0]!
  t.equal(as.profile, 'keycloak', 'profile: keycloak')
  t.equal(as.issuer, `${String(kc.environment.KC_HOSTNAME)}/realms/${String(realm.realm)}`, 'the issuer is KC_HOSTNAME/realms/<realm>, as in the tokens')
  t.equal(realm.realm, 'mcp', 'realm mcp')

  const route = config.routes[0]!
  const scopes = realm.clientScopes as Obj[]
  const mcpScope = scopes.find((s) => s.name === 'mcp:tools')
  t.ok(mcpScope, 'a client scope mcp:tools')
  t.ok(route.scopes.includes('mcp:tools'), 'the route requires mcp:tools')
  const audience = (mcpScope?.protocolMappers as Obj[] | undefined)?.find((m) => m.protocolMapper === 'oidc-audience-mapper')
  t.ok(audience, 'mcp:tools has an audience mapper')
  t.equal(audience?.config['included.custom.audience'], route.resource, 'the audience mapper puts the route\'s resource (the MCP URL) in aud')
  t.equal(audience?.config['access.token.claim'], 'true', 'into access tokens')
  t.not(audience?.config['included.custom.audience'], 'account', 'never the realm-wide "account" audience')
  // A realm export with clientScopes replaces Keycloak's built-in scopes: sub must still be mapped.
  const basic = scopes.find((s) => s.name === 'basic')
  t.ok((basic?.protocolMappers as Obj[] | undefined)?.some((m) => m.protocolMapper === 'oidc-sub-mapper'), 'the basic scope maps sub (Keycloak 25+ takes sub from it)')
  for (const s of realm.defaultDefaultClientScopes as string[]) t.ok(scopes.some((x) => x.name === s), `default scope ${s} is defined`)

  const client = (realm.clients as Obj[]).find((c) => c.publicClient === true && c.standardFlowEnabled === true)
  t.ok(client, 'a public client with the authorization code flow')
  t.equal(client?.attributes?.['pkce.code.challenge.method'], 'S256', 'PKCE S256 is required')
  t.equal(client?.implicitFlowEnabled, false, 'no implicit flow')
  t.equal(client?.directAccessGrantsEnabled, false, 'no password grant on the MCP clients\' client')
  t.ok([...(client?.optionalClientScopes ?? []), ...(client?.defaultClientScopes ?? [])].includes('mcp:tools'), 'it may request mcp:tools')
  t.ok((client?.redirectUris as string[]).includes('http://localhost:6274/oauth/callback'), 'the MCP Inspector\'s redirect URI')
  t.ok(config.routes[0]!.allowedOrigins.includes('http://localhost:6274'), 'the Inspector\'s origin may call the gateway')
  const user = (realm.users as Obj[])[0]
  t.ok(user?.enabled === true && (user.credentials as Obj[]).some((c) => c.type === 'password'), 'a test user with a password')

  // server-everything over Streamable HTTP on the upstream's port.
  const everything = compose.services.everything as Obj
  t.equal(everything.network_mode, `service:${Object.keys(compose.services).find((k) => compose.services[k] === kc)!}`, 'the MCP server shares the same network namespace')
  t.ok((everything.command as string[]).some((a) => a.startsWith('@modelcontextprotocol/server-everything')), 'runs @modelcontextprotocol/server-everything')
  t.equal((everything.command as string[]).at(-1), 'streamableHttp', 'over Streamable HTTP')
  t.equal(everything.environment.PORT, new URL(route.upstreamOrigin).port, 'on the upstream\'s port')
  t.equal(route.upstreamPath, '/mcp', 'at /mcp')
  // The way it is started matches the package: the streamableHttp transport, PORT, /mcp.
  const pkgDir = join(ROOT, 'node_modules', '@modelcontextprotocol', 'server-everything')
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Obj
  t.ok((everything.command as string[]).includes(`@modelcontextprotocol/server-everything@${String(pkg.version)}`), `pinned to the version the tests use (${String(pkg.version)})`)
  const transport = readFileSync(join(pkgDir, 'dist', 'transports', 'streamableHttp.js'), 'utf8')
  t.match(transport, /process\.env\.PORT/, 'the package reads PORT')
  t.match(transport, /app\.post\("\/mcp"/, 'and serves /mcp')
})

t.test('deploy/README.md indexes every piece', async (t) => {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8')
  for (const p of ['kubernetes/', 'helm/mcp-auth-gateway/', 'compose/drupal/', 'compose/keycloak/', 'test/unit/deploy-configs.test.ts', 'scripts/render-helm.ts']) {
    t.ok(readme.includes(p), `mentions ${p}`)
  }
  for (const d of ['compose/drupal', 'compose/keycloak']) t.ok(existsSync(join(DEPLOY, d, 'README.md')), `${d}/README.md exists`)
})

// ---------------------------------------------------------------------------
// scripts/render-helm.ts on its own

t.test('render-helm: the supported subset renders like Go templates', async (t) => {
  const ctx = {
    Values: { a: 1, s: 'x y', empty: '', list: ['b', 'a'], map: { z: 1, a: { b: [1, 2] } }, on: true, off: false },
    Release: { Name: 'rel' },
    Chart: { Name: 'chart', Version: '1.2.3' }
  }
  const render = (src: string, helpers = ''): string =>
    renderTemplates(new Map([['_h.tpl', helpers], ['t.yaml', src]]), ctx).get('t.yaml') ?? ''
  const rows: Array<[string, string, string, string?]> = [
    ['field', 'v: {{ .Values.a }}', 'v: 1\n'],
    ['root field inside with', '{{ with .Values.map }}{{ $.Release.Name }}{{ end }}', 'rel\n'],
    ['trim markers', 'a:\n  {{- " b" }}\n  {{- " c" -}}\n  d', 'a: b cd\n'],
    ['comment', 'a{{/* gone */}}b', 'ab\n'],
    ['if true', '{{ if .Values.on }}yes{{ else }}no{{ end }}', 'yes\n'],
    ['if false', '{{ if .Values.off }}yes{{ else }}no{{ end }}', 'no\n'],
    ['if empty string', '{{ if .Values.empty }}yes{{ else }}no{{ end }}', 'no\n'],
    ['if missing', '{{ if .Values.nothing }}yes{{ else }}no{{ end }}', 'no\n'],
    ['else if', '{{ if .Values.off }}1{{ else if eq .Values.s "x y" }}2{{ else }}3{{ end }}', '2\n'],
    ['with sets the dot', '{{ with .Values.map.a }}{{ toYaml .b }}{{ end }}', '- 1\n- 2\n'],
    ['with else', '{{ with .Values.empty }}x{{ else }}none{{ end }}', 'none\n'],
    ['toYaml sorts keys and does not indent lists', '{{ toYaml .Values.map }}', 'a:\n  b:\n  - 1\n  - 2\nz: 1\n'],
    ['nindent', 'k:{{ toYaml .Values.list | nindent 2 }}', 'k:\n  - b\n  - a\n'],
    ['indent', '{{ "a\\nb" | indent 3 }}', '   a\n   b\n'],
    ['quote', '{{ .Values.s | quote }} {{ .Values.a | quote }}', '"x y" "1"\n'],
    ['default', '{{ default "d" .Values.empty }} {{ default "d" .Values.s }}', 'd x y\n'],
    ['printf trunc trimSuffix', '{{ printf "%s-%s-" .Release.Name .Chart.Name | trunc 11 | trimSuffix "-" }}', 'rel-chart\n'],
    ['include with a context', 'v: {{ include "n" .Values.map | quote }}', 'v: "z=1"\n', '{{- define "n" -}}\nz={{ .z }}\n{{- end -}}'],
    ['and / or / not', '{{ if and .Values.on (not .Values.off) }}{{ or .Values.empty "z" }}{{ end }}', 'z\n'],
    ['sha256sum', '{{ "abc" | sha256sum }}', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n']
  ]
  for (const [name, src, want, helpers] of rows) t.equal(render(src, helpers), want, name)
  t.equal(renderTemplates(new Map([['blank.yaml', '{{ if .Values.off }}kind: X{{ end }}\n']]), ctx).has('blank.yaml'), false, 'a template that renders only white space is left out')
})

t.test('render-helm: anything outside the subset is an error, never silently wrong output', async (t) => {
  const ctx = { Values: { map: { a: 1 }, list: [1], s: 'x', n: 1 }, Release: { Name: 'r' }, Chart: { Name: 'c' } }
  const rows: Array<[string, string, RegExp]> = [
    ['range', '{{ range .Values.list }}{{ . }}{{ end }}', /unsupported keyword "range"/],
    ['template', '{{ template "x" . }}', /unsupported keyword "template"/],
    ['unknown function', '{{ lower .Values.s }}', /unsupported function or keyword "lower"/],
    ['unknown function in a pipe', '{{ .Values.s | upper }}', /unsupported function or keyword "upper"/],
    ['toJson', '{{ toJson .Values.map }}', /unsupported function or keyword "toJson"/],
    ['variables', '{{ $x := .Values.s }}', /variables|assignment/],
    ['variable use', '{{ $x }}', /variables/],
    ['printing a missing value', 'v: {{ .Values.nothing }}', /renders a missing value/],
    ['reading through a missing map', '{{ .Values.nothing.deeper }}', /cannot read \.Values\.nothing\.deeper/],
    ['reading a field of a string', '{{ .Values.s.x }}', /is not a map/],
    ['printing a map', '{{ .Values.map }}', /use toYaml/],
    ['printing a list', '{{ .Values.list }}', /use toYaml/],
    ['unclosed if', '{{ if .Values.s }}x', /not closed with "end"/],
    ['stray end', 'x{{ end }}', /"end" without an open/],
    ['stray else', '{{ else }}', /"else" without an open/],
    ['newline in a string', '{{ "a\nb" }}', /unterminated string/],
    ['unclosed action', '{{ .Values.s', /unclosed action/],
    ['field of a parenthesised value', '{{ (.Values.map).a }}', /parenthesised/],
    ['unknown include', '{{ include "nope" . }}', /no template named "nope"/],
    ['wrong arity', '{{ quote }}', /quote takes 1 argument/],
    ['comparing different types', '{{ if eq .Values.n "1" }}x{{ end }}', /incompatible types/],
    ['printf verb', '{{ printf "%q" .Values.s }}', /printf supports only/],
    ['nindent of a map', '{{ .Values.map | nindent 2 }}', /nindent needs a string/],
    ['quote of a missing value', '{{ .Values.nothing | quote }}', /quote of a missing value/],
    ['else with', '{{ if .Values.s }}a{{ else with .Values.s }}b{{ end }}', /unsupported: "else" followed by/],
    ['bad escape', '{{ "\\x41" }}', /unsupported escape/],
    ['required', '{{ required "need s2" .Values.s2 }}', /need s2/],
    ['fail', '{{ fail "stop here" }}', /stop here/]
  ]
  for (const [name, src, err] of rows) {
    t.throws(() => renderTemplates(new Map([['t.yaml', src]]), ctx), { name: 'TemplateError', message: err }, name)
  }
  t.ok(new TemplateError('x') instanceof Error)
})

t.test('render-helm: the command line prints the manifests, and exits 1 with the reason on a template error', async (t) => {
  const run = (...args: string[]): { code: number, out: string, err: string } => {
    try {
      const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'render-helm.ts'), CHART, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      return { code: 0, out, err: '' }
    } catch (e) {
      const x = e as { status: number, stdout: string, stderr: string }
      return { code: x.status, out: x.stdout, err: x.stderr }
    }
  }
  const ok = run('--set', 'mode=standalone', '--release', 'cli')
  t.equal(ok.code, 0, 'exit 0')
  const docs = yamlDocs(ok.out, 'cli output')
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service'], 'every manifest, as one stream')
  t.match(ok.out, /^---\n# Source: mcp-auth-gateway\/templates\/configmap\.yaml\n/, 'each document names its template, like helm template')
  t.equal(one(docs, 'Deployment', 'cli').metadata.name, 'cli-mcp-auth-gateway', '--release names the release')
  t.equal(one(docs, 'Deployment', 'cli').spec.template.spec.containers.length, 1, '--set applies (standalone: no sidecar)')
  const bad = run('--set', 'mode=both')
  t.equal(bad.code, 1, 'exit 1 on a template error')
  t.match(bad.err, /render-helm: .*mode must be sidecar or standalone/, 'with the reason')
  t.equal(bad.out, '', 'and no partial output')
})
