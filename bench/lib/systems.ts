/**
 * The systems under test, each started on 127.0.0.1 as its own process (group)
 * so that its CPU time can be read from /proc: the bare upstream, nginx,
 * HAProxy with jwt_verify, the express + SDK baseline, the optional
 * Fastify + @fastify/http-proxy + jose proxy, the gateway, and the real SDK
 * upstream. Configs are generated into the run's temp dir.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { freePort, spawnChild, waitForPort, waitUntil, WATCHDOG_PRELOAD, type Child } from './procs.js'
import { BENCH_AUDIENCE, BENCH_SCOPE } from './tokens.js'

export interface NodeRuntime {
  /** Node binary for every Node child. */
  node: string
  /** Repo root (cwd of Node children, so `--import tsx` resolves). */
  root: string
  /** Run the Node systems with `--trace-gc` (collections per window in the results; gc.ts). */
  traceGc?: boolean
  /** NODE_OPTIONS for every Node system and upstream (the harness's own are never passed on). */
  nodeOptions?: string
}

export interface Started {
  child: Child
  port: number
  origin: string
}

function nodeArgs (script: string): string[] {
  return ['--import', 'tsx', '--import', WATCHDOG_PRELOAD, script]
}

async function startNodeScript (rt: NodeRuntime, name: string, script: string, env: Record<string, string>, dir: string, ready?: (origin: string) => Promise<boolean>): Promise<Started> {
  const port = await freePort()
  const child = spawnChild(name, rt.node, nodeArgs(join(rt.root, script)), {
    cwd: rt.root,
    env: { ...process.env, ...env, NODE_OPTIONS: rt.nodeOptions ?? '', PORT: String(port) },
    logPath: join(dir, `${name}.log`),
    raiseNofile: true,
    traceGc: rt.traceGc === true
  })
  const origin = `http://127.0.0.1:${port}`
  if (ready !== undefined) await waitUntil(name, async () => await ready(origin), 30_000, child)
  else await waitForPort(port, 30_000, child, name)
  return { child, port, origin }
}

export async function startBareUpstream (rt: NodeRuntime, dir: string): Promise<Started> {
  return await startNodeScript(rt, 'upstream', 'bench/procs/upstream.ts', {}, dir)
}

export async function startSdkUpstream (rt: NodeRuntime, dir: string): Promise<Started> {
  return await startNodeScript(rt, 'sdk-upstream', 'bench/procs/sdk-upstream.ts', {}, dir)
}

export async function startExpressBaseline (rt: NodeRuntime, dir: string, o: { upstream: string, issuer: string, jwksUri: string, keepAlive: boolean }): Promise<Started> {
  return await startNodeScript(rt, o.keepAlive ? 'express-keepalive' : 'express-sdk', 'bench/procs/express-baseline.ts', {
    UPSTREAM: o.upstream,
    ISSUER: o.issuer,
    JWKS_URI: o.jwksUri,
    AUDIENCE: BENCH_AUDIENCE,
    KEEPALIVE: o.keepAlive ? '1' : '0'
  }, dir)
}

/** One of the optional authenticating Node proxies (bench/procs): the same jose check, issuer, audience and scope. */
async function startJoseProxy (rt: NodeRuntime, dir: string, name: string, script: string, o: { upstream: string, issuer: string, jwksUri: string }): Promise<Started> {
  return await startNodeScript(rt, name, script, {
    UPSTREAM: o.upstream,
    ISSUER: o.issuer,
    JWKS_URI: o.jwksUri,
    AUDIENCE: BENCH_AUDIENCE,
    SCOPE: BENCH_SCOPE
  }, dir)
}

export async function startFastifyHttpProxy (rt: NodeRuntime, dir: string, o: { upstream: string, issuer: string, jwksUri: string }): Promise<Started> {
  return await startJoseProxy(rt, dir, 'fastify-http-proxy-jose', 'bench/procs/fastify-http-proxy.ts', o)
}

export async function startNodeAnswer (rt: NodeRuntime, dir: string): Promise<Started> {
  return await startNodeScript(rt, 'node-answer', 'bench/procs/node-answer.ts', {}, dir)
}

/** The leanest Node proxy; `name` tells its instances apart (one per upstream). */
export async function startNodeUndici (rt: NodeRuntime, dir: string, o: { upstream: string, issuer: string, jwksUri: string }, name = 'node-undici-jose'): Promise<Started> {
  return await startJoseProxy(rt, dir, name, 'bench/procs/node-undici.ts', o)
}

// ---------------------------------------------------------------- gateway

/** Stream caps of the bench gateways: above the largest idle-streams N. */
const BENCH_MAX_STREAMS = 100_000

export interface GatewayRoute {
  path: string
  upstream: string
  /** Default: the bench audience. */
  resource?: string
  /** Default: the bench JWKS issuer only. */
  issuers?: string[]
  /** A per-tool policy (gateway config `policy:`): the route then inspects bodies. */
  policy?: Record<string, unknown>
}

/** How the gateway is run: compiled (dist/src/main.js) or from source through tsx. */
export type GatewayEntry = 'dist' | 'src'

export async function startGateway (rt: NodeRuntime, dir: string, o: {
  name: string
  entry: GatewayEntry
  issuer: string
  jwksUri: string
  routes: GatewayRoute[]
  logLevel: string
  /** More authorization servers (gateway config entries), e.g. an introspecting one. */
  extraIssuers?: Array<Record<string, unknown>>
  /** Environment for ${VARS} and fromEnv secrets in the config. */
  env?: Record<string, string>
  /** The gateway's `rateLimits` section (none by default). */
  rateLimits?: Record<string, unknown>
}): Promise<Started & { configPath: string }> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const config = {
    listen: { host: '127.0.0.1', port },
    publicUrl: origin,
    logLevel: o.logLevel,
    // The idle-streams figure opens up to 10k streams with one token: lift the per-caller and total caps.
    limits: { maxStreamsPerPrincipal: BENCH_MAX_STREAMS, maxStreams: BENCH_MAX_STREAMS },
    authorizationServers: [{ issuer: o.issuer, jwksUri: o.jwksUri }, ...(o.extraIssuers ?? [])],
    routes: o.routes.map((r) => ({
      path: r.path,
      upstream: r.upstream,
      resource: r.resource ?? BENCH_AUDIENCE,
      scopes: [BENCH_SCOPE],
      issuers: r.issuers ?? [o.issuer],
      ...(r.policy !== undefined ? { policy: r.policy } : {})
    })),
    ...(o.rateLimits !== undefined ? { rateLimits: o.rateLimits } : {})
  }
  const configPath = join(dir, `${o.name}.yaml`)
  writeFileSync(configPath, stringify(config))
  const args = o.entry === 'dist'
    ? ['--import', WATCHDOG_PRELOAD, join(rt.root, 'dist/src/main.js'), '--config', configPath]
    : [...nodeArgs(join(rt.root, 'src/main.ts')), '--config', configPath]
  const child = spawnChild(o.name, rt.node, args, {
    cwd: rt.root,
    env: { ...process.env, ...(o.env ?? {}), NODE_OPTIONS: rt.nodeOptions ?? '' },
    logPath: join(dir, `${o.name}.log`),
    raiseNofile: true,
    traceGc: rt.traceGc === true
  })
  await waitUntil(`${o.name} /readyz`, async () => (await fetch(`${origin}/readyz`)).status === 200, 30_000, child)
  return { child, port, origin, configPath }
}

// ---------------------------------------------------------------- nginx

export async function startNginx (bin: string, dir: string, upstreamPort: number): Promise<Started> {
  const d = join(dir, 'nginx')
  mkdirSync(join(d, 'tmp'), { recursive: true })
  const port = await freePort()
  const conf = `# generated by bench/lib/systems.ts: plain reverse proxy, upstream keepalive, 1 worker
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}/tmp/client_body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  keepalive_requests 1000000;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
  writeFileSync(join(d, 'nginx.conf'), conf)
  const child = spawnChild('nginx', bin, ['-e', join(d, 'error.log'), '-p', `${d}/`, '-c', join(d, 'nginx.conf'), '-g', 'daemon off; master_process on;'], { cwd: d, logPath: join(d, 'stderr.log'), raiseNofile: true })
  await waitForPort(port, 15_000, child, 'nginx')
  return { child, port, origin: `http://127.0.0.1:${port}` }
}

// ---------------------------------------------------------------- haproxy

/**
 * HAProxy with RS256 jwt_verify on every request (public key PEM file) plus
 * the claim checks the gateway does: alg, iss, aud, exp against date(), and
 * the route scope. `jwt: false` gives the plain proxy.
 */
export function haproxyConfig (o: { dir: string, port: number, upstreamPort: number, jwt: { pubkeyPath: string, issuer: string, audience: string, scope: string } | undefined }): string {
  const jwt = o.jwt === undefined
    ? ''
    : `  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"${o.jwt.pubkeyPath}") -m int 1 }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str "${o.jwt.issuer}" }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.aud') -m str "${o.jwt.audience}" }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny status 403 unless { var(txn.bearer),jwt_payload_query('$.scope') -m sub "${o.jwt.scope}" }
`
  return `# generated by bench/lib/systems.ts
global
  nbthread 1
  pidfile ${o.dir}/haproxy.pid
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend bench
  bind 127.0.0.1:${o.port}
${jwt}  default_backend upstream

backend upstream
  http-reuse always
  server up 127.0.0.1:${o.upstreamPort}
`
}

export async function startHaproxy (bin: string, dir: string, name: string, upstreamPort: number, jwt: { pubkeyPem: string, issuer: string } | undefined): Promise<Started> {
  const d = join(dir, name)
  mkdirSync(d, { recursive: true })
  const port = await freePort()
  let jwtOpts
  if (jwt !== undefined) {
    const pubkeyPath = join(d, 'pubkey.pem')
    writeFileSync(pubkeyPath, jwt.pubkeyPem)
    jwtOpts = { pubkeyPath, issuer: jwt.issuer, audience: BENCH_AUDIENCE, scope: BENCH_SCOPE }
  }
  const cfg = join(d, 'haproxy.cfg')
  writeFileSync(cfg, haproxyConfig({ dir: d, port, upstreamPort, jwt: jwtOpts }))
  const child = spawnChild(name, bin, ['-f', cfg, '-db'], { cwd: d, logPath: join(d, 'haproxy.log'), raiseNofile: true })
  await waitForPort(port, 15_000, child, name)
  return { child, port, origin: `http://127.0.0.1:${port}` }
}
