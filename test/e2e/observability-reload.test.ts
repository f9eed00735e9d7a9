/**
 * Metrics and the audit log across SIGHUP reloads, in the runtime main.ts
 * runs (in process, with the real static issuer and a plain upstream):
 * counters keep counting through a reload; the separate metrics listener and
 * the audit destination are restart-only (a reload changing them is refused
 * with a clear line); a reload reopens the audit file, so logrotate works;
 * close() (SIGTERM) closes the metrics listener.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { stringify } from 'yaml'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { eventually } from '../helpers/cli.js'
import { scrape } from '../helpers/prometheus.js'
import { loadConfigFile } from '../../src/config/load.js'
import { createLoggers } from '../../src/observability/logger.js'
import { createRuntime } from '../../src/runtime.js'

t.test('reloads: counters continue, metrics.listen and the audit destination need a restart, the audit file is reopened', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-obs-reload-'))
  const st = await startStaticIssuer()
  const up = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"jsonrpc":"2.0","id":1,"result":{}}') })
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    up.close()
    await st.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const upstream = `http://127.0.0.1:${(up.address() as AddressInfo).port}`
  const file = join(dir, 'gateway.yaml')
  const auditFile = join(dir, 'audit.log')
  const base = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: 'http://127.0.0.1:1',
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream, scopes: ['mcp:tools'] }],
    metrics: { listen: { host: '127.0.0.1', port: 0 } },
    audit: { enabled: true, destination: { file: 'audit.log' } },
    ...over
  })
  writeFileSync(file, stringify(base()))
  let logs = ''
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { logs += chunk.toString(); cb() } })
  const rt = createRuntime(loadConfigFile(file), { load: () => loadConfigFile(file), source: file, loggers: createLoggers('info', sink) })
  const { port } = await rt.listen()
  let closed = false
  t.teardown(async () => { if (!closed) await rt.close() })
  await rt.whenReady()
  const origin = `http://127.0.0.1:${port}`
  const metricsLine = logs.split('\n').find((l) => l.includes('"msg":"metrics listening"'))
  t.ok(metricsLine, 'the metrics listener is announced')
  const metricsUrl = `${(JSON.parse(metricsLine!) as { url: string }).url}/metrics`
  t.equal((await fetch(`${origin}/metrics`)).status, 404, 'not on the main listener')

  const token = await st.sign(st.claims({ aud: 'http://127.0.0.1:1/mcp', scope: 'mcp:tools' }))
  const call = async (): Promise<number> => (await fetch(`${origin}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' })).status
  const okCount = async (): Promise<number> => (await scrape(metricsUrl)).sum('mcp_gateway_requests_total', { route: '/mcp', status: '200', outcome: 'ok' })
  for (let i = 0; i < 3; i++) t.equal(await call(), 200)
  t.equal(await okCount(), 3)
  t.ok(await eventually(() => existsSync(auditFile) && readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').length === 3, 3000), 'three audit lines')

  // A reload that changes a route (and includeArguments, which applies): counters carry on.
  writeFileSync(file, stringify(base({ routes: [{ path: '/mcp', upstream, scopes: ['mcp:tools'], timeouts: { connectSeconds: 3 } }], audit: { enabled: true, destination: { file: 'audit.log' }, includeArguments: true } })))
  t.equal(await rt.reload(), true, 'applied')
  t.equal(await call(), 200)
  t.equal(await okCount(), 4, 'the counter kept its value across the reload')

  // Restart-only settings: refused, with the setting named.
  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['metrics.listen port', { metrics: { listen: { host: '127.0.0.1', port: 1 } } }, /config reload rejected: metrics\.listen cannot change without a restart/],
    ['metrics off', { metrics: { enabled: false } }, /config reload rejected: metrics\.listen cannot change without a restart/],
    ['audit file', { audit: { enabled: true, destination: { file: 'other.log' } } }, /config reload rejected: audit\.destination cannot change without a restart/],
    ['audit to stdout', { audit: { enabled: true } }, /config reload rejected: audit\.destination cannot change without a restart/],
    ['audit off', { audit: { enabled: false } }, /config reload rejected: audit\.enabled cannot change without a restart/]
  ]
  for (const [name, over, line] of refused) {
    writeFileSync(file, stringify(base(over)))
    logs = ''
    t.equal(await rt.reload(), false, `${name}: refused`)
    t.match(logs, line, `${name}: the reason is logged`)
  }
  t.equal(await call(), 200, 'still serving')
  t.equal(await okCount(), 5, 'metrics still on their listener')

  // logrotate: move the file away, then SIGHUP: new lines go to a new file at the configured path.
  // Audit lines are written asynchronously: rotate once the earlier ones are on disk (regression: the
  // rename could land before the last line was flushed, and that line then went to the new file).
  await eventually(() => readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').length >= 5, 3000)
  renameSync(auditFile, `${auditFile}.1`)
  writeFileSync(file, stringify(base()))
  t.equal(await rt.reload(), true)
  t.equal(await call(), 200)
  t.ok(await eventually(() => existsSync(auditFile) && readFileSync(auditFile, 'utf8').includes('"audit":true'), 3000), 'a new audit file after the reopen')
  const rotated = readFileSync(`${auditFile}.1`, 'utf8').split('\n').filter((l) => l !== '').length
  t.ok(rotated >= 5, `the rotated file kept the earlier lines (${rotated})`)

  closed = true
  await rt.close()
  await t.rejects(fetch(metricsUrl), 'the metrics listener is closed with the runtime')
})
