/**
 * The programmatic API (src/index.ts, the package's "." export): loadConfig and
 * parseConfig report every problem, and createGateway returns a Fastify
 * instance that serves the gateway's routes, can be embedded (own routes),
 * listens where told, lets a real token through to a real SDK upstream, and
 * closes with a bounded drain.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { stringify } from 'yaml'
import * as api from '../../src/index.js'
import { ConfigError, createGateway, loadConfig, parseConfig, type GatewayConfig } from '../../src/index.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { freePort } from '../helpers/net.js'
import { INITIALIZE_BODY, mcpHeaders } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { Redis } from 'ioredis'

const FIXTURES = resolve(import.meta.dirname, '../fixtures/config')

/** A log destination that keeps every line, so tests can read them and stdout stays clean. */
function sink (): { stream: Writable, lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(l)
      cb()
    }
  })
  return { stream, lines }
}

t.test('the module exports the documented API and nothing of the internals', async (t) => {
  t.same(Object.keys(api).sort(), [
    'AuditOpenError', 'ConfigError', 'GatewayError', 'InvalidRequestError', 'InvalidTokenError', 'TemporarilyUnavailableError',
    'createGateway', 'loadConfig', 'parseConfig'
  ])
})

t.test('loadConfig on a fixture + createGateway: /healthz 200, metadata, unauthenticated POST 401 with the challenge', async (t) => {
  const config: GatewayConfig = loadConfig(join(FIXTURES, 'valid-minimal.yaml'), {})
  t.equal(config.publicUrl, 'https://mcp.example.com')
  const logs = sink()
  const app = createGateway(config, { logDestination: logs.stream })
  // The fixture's issuer (as.example.com) is never reachable: discovery starts on ready and
  // keeps failing in the background, which none of these requests needs.
  t.teardown(async () => { await app.close() })

  const health = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })

  const prm = await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource/mcp' })
  t.equal(prm.statusCode, 200)
  t.match(prm.json(), { resource: 'https://mcp.example.com/mcp', authorization_servers: ['https://as.example.com'] })

  const unauth = await app.inject({ method: 'POST', url: '/mcp', headers: mcpHeaders(), payload: INITIALIZE_BODY })
  t.equal(unauth.statusCode, 401)
  t.equal(unauth.headers['www-authenticate'], 'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"')

  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready: the issuer has not been reached')
  t.same(ready.json().pendingIssuers, ['https://as.example.com'])
})

t.test('loadConfig on an invalid file throws one ConfigError listing every problem', async (t) => {
  for (const name of ['upstreams', 'missing-required']) {
    const expected = readFileSync(join(FIXTURES, `${name}.expected.txt`), 'utf8').split('\n').filter((l) => l !== '')
    t.ok(expected.length >= 2, `${name}: the fixture has several problems`)
    const err = (() => {
      try {
        loadConfig(join(FIXTURES, `${name}.yaml`), {})
      } catch (e) {
        return e
      }
      return undefined
    })()
    t.ok(err instanceof ConfigError, `${name}: a ConfigError`)
    if (!(err instanceof ConfigError)) continue
    t.same(err.problems, expected, `${name}: every problem, in order`)
    t.equal(err.message, `invalid configuration (${expected.length} problems):\n${expected.map((p) => `  ${p}`).join('\n')}`, `${name}: the message lists them, one per line`)
  }
  t.throws(() => loadConfig(join(FIXTURES, 'no-such-file.yaml')), {
    name: 'ConfigError',
    problems: [`${join(FIXTURES, 'no-such-file.yaml')}: cannot read the config file (ENOENT): the file must exist and be readable`]
  })
})

t.test('parseConfig reads ${NAME} from the env it is given, and reports what is unset', async (t) => {
  const text = 'publicUrl: ${PUBLIC}\nauthorizationServers:\n  - issuer: https://as.example.com\nroutes:\n  - path: /mcp\n    upstream: http://127.0.0.1:3001\n'
  t.equal(parseConfig(text, { env: { PUBLIC: 'https://gw.example.com' } }).publicUrl, 'https://gw.example.com')
  t.throws(() => parseConfig(text, { env: {} }), { name: 'ConfigError', problems: [/^publicUrl: .*PUBLIC/] })
})

t.test('embedded and listening: own routes, a real token to a real upstream, bounded close with an open stream', async (t) => {
  const st = await startStaticIssuer()
  const upstream = await startStatelessUpstream()
  // An upstream stream that never ends: close() must cut it after shutdownTimeoutSeconds.
  const streamer = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write(': open\n\n') })
  await new Promise<void>((resolve) => streamer.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { streamer.closeAllConnections(); streamer.close(); await upstream.close(); await st.close() })

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const dir = mkdtempSync(join(tmpdir(), 'gw-api-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'gateway.yaml'), stringify({
    listen: { host: '127.0.0.1', port },
    publicUrl: origin,
    authorizationServers: [{ issuer: st.issuer }],
    routes: [
      { path: '/mcp', upstream: `${upstream.origin}/mcp`, scopes: ['mcp:tools'] },
      { path: '/events', upstream: `http://127.0.0.1:${(streamer.address() as AddressInfo).port}`, scopes: ['mcp:tools'] }
    ],
    shutdownTimeoutSeconds: 1,
    metrics: { listen: { host: '127.0.0.1', port: 0 } },
    audit: { enabled: true, destination: { file: 'audit.log' } }
  }))
  const config = loadConfig(join(dir, 'gateway.yaml'), {})
  const logs = sink()
  const app = createGateway(config, { logDestination: logs.stream })
  app.get('/embedder/hello', async () => ({ hello: 'world' }))
  await app.listen({ host: config.listen.host, port: config.listen.port })
  const metricsLine = logs.lines.map((l) => JSON.parse(l) as { msg: string, url?: string }).find((l) => l.msg === 'metrics listening')
  t.match(metricsLine?.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the separate metrics listener was bound when the app became ready')
  const metricsUrl = `${metricsLine?.url ?? 'http://127.0.0.1:1'}/metrics`

  const deadline = Date.now() + 10_000
  while ((await fetch(`${origin}/readyz`)).status !== 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal((await fetch(`${origin}/readyz`)).status, 200, 'ready once the issuer keys are loaded (onReady started discovery)')

  const own = await fetch(`${origin}/embedder/hello`)
  t.equal(own.status, 200, "the embedder's own route is served")
  t.same(await own.json(), { hello: 'world' })

  const token = await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))
  const init = await fetch(`${origin}/mcp`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY })
  t.equal(init.status, 200)
  t.match(await init.text(), /"serverInfo"/, 'the SDK upstream answered initialize')
  t.equal(upstream.requests.length, 1)
  t.equal(upstream.requests[0]?.headers.authorization, undefined, 'the token is not forwarded')

  const scrape = await fetch(metricsUrl)
  t.equal(scrape.status, 200, 'metrics on their own listener')
  t.match(await scrape.text(), /requests_total\{[^}]*route="\/mcp"[^}]*status="200"/, 'the MCP request was counted')
  t.equal((await fetch(`${origin}/metrics`)).status, 404, 'and not on the main listener')

  const streamToken = await st.sign(st.claims({ aud: `${origin}/events`, scope: 'mcp:tools' }))
  const stream = await fetch(`${origin}/events/stream`, { headers: { authorization: `Bearer ${streamToken}`, accept: 'text/event-stream' } })
  t.equal(stream.status, 200, 'a stream is open')
  const streamEnded = stream.text().then(() => 'ended', () => 'cut')

  const startedAt = Date.now()
  await app.close()
  const tookMs = Date.now() - startedAt
  t.ok(tookMs >= 900 && tookMs < 5000, `close() waited for the open stream about shutdownTimeoutSeconds (1 s), then cut it (${tookMs} ms)`)
  t.ok(['ended', 'cut'].includes(await streamEnded), 'the stream was closed')
  await t.rejects(fetch(`${origin}/healthz`), 'nothing listens after close()')
  await t.rejects(fetch(metricsUrl), 'the metrics listener is closed too')
  const audit = readFileSync(join(dir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(audit, [{ audit: true, route: '/mcp', method: 'initialize' }], 'the audit file (relative to the config file) has the initialize line, flushed by close()')

  t.ok(logs.lines.some((l) => l.includes('"msg":"request"')), 'request lines went to logDestination')
  t.notOk(logs.lines.some((l) => l.includes(token) || l.includes(streamToken)), 'no token in any log line')
})

t.test('with Redis: the gateway connects when ready and quits on close()', async (t) => {
  const redis = await startRedis()
  const probe = new Redis(redis.url, { lazyConnect: true })
  await probe.connect()
  t.teardown(async () => { probe.disconnect(); await redis.close() })
  const clients = async (): Promise<number> => (await probe.client('LIST') as string).split('\n').filter((l) => l.trim() !== '').length

  const config = parseConfig(stringify({
    publicUrl: 'https://mcp.example.com',
    authorizationServers: [{ issuer: 'https://as.example.com' }],
    routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:3001' }],
    sessions: { store: 'redis' },
    redis: { url: redis.url, keyPrefix: 'public-api-test:', connectTimeoutSeconds: 1 }
  }), { env: {} })
  const logs = sink()
  const app = createGateway(config, { logDestination: logs.stream })
  t.equal(await clients(), 1, 'not connected before ready (only the probe)')
  await app.ready()
  const deadline = Date.now() + 10_000
  while (!logs.lines.some((l) => l.includes('redis connected')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(await clients(), 2, 'connected once ready')
  await app.close()
  t.equal(await clients(), 1, 'the connection is closed by close()')
})
