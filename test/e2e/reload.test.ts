/**
 * SIGHUP re-reads the config, as users run it (the real command line in a child process):
 * a valid new config applies to new requests while an open SSE stream keeps flowing;
 * an invalid one (or one changing listen.port) is refused with its problems logged and
 * the process keeps serving the last good config; SIGTERM still exits 0.
 */
import { execFileSync } from 'node:child_process'
import { connect } from 'node:tls'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { stringify } from 'yaml'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startLegacySseUpstream } from '../helpers/upstream.js'
import { freePort } from '../helpers/net.js'
import { startCli, type RunningCli, eventually, logLines, countLines, readAsItArrives } from '../helpers/cli.js'
import { loadConfigFile } from '../../src/config/load.js'
import { createLoggers } from '../../src/observability/logger.js'
import { createRuntime } from '../../src/runtime.js'

const dir = mkdtempSync(join(tmpdir(), 'gw-reload-'))

const start = (args: string[]): RunningCli => startCli(args, { cwd: dir })


t.test('SIGHUP applies a valid config without dropping an open stream and refuses an invalid one', async (t) => {
  const st = await startStaticIssuer()
  // Upstream 1 holds /mcp/stream open and writes an event to every open stream on /mcp/push?m=...
  const streams = new Set<ServerResponse>()
  const up1 = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/mcp/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(': open\n\n')
      streams.add(res)
      res.on('close', () => streams.delete(res))
    } else if (url.pathname === '/mcp/push') {
      for (const s of streams) s.write(`data: ${url.searchParams.get('m') ?? ''}\n\n`)
      res.end(`pushed to ${streams.size}`)
    } else res.end('upstream one')
  })
  const up2 = createServer((_req, res) => { res.end('upstream two') })
  for (const s of [up1, up2]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of [up1, up2]) { s.closeAllConnections(); s.close() }
    await st.close()
  })
  const upstream = (s: typeof up1): string => `http://127.0.0.1:${(s.address() as AddressInfo).port}`

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const file = join(dir, 'gateway.yaml')
  const base = { listen: { port }, publicUrl: origin, authorizationServers: [{ issuer: st.issuer }], shutdownTimeoutSeconds: 2 }
  // Config A: /mcp needs mcp:tools. Config B: /mcp needs mcp:admin, and /v2 is new.
  const configA = { ...base, routes: [{ path: '/mcp', upstream: `${upstream(up1)}/mcp`, scopes: ['mcp:tools'] }] }
  const configB = {
    ...base,
    routes: [
      { path: '/mcp', upstream: `${upstream(up1)}/mcp`, scopes: ['mcp:admin'] },
      { path: '/v2', upstream: upstream(up2), scopes: ['mcp:tools'] }
    ]
  }
  writeFileSync(file, stringify(configA))
  const gw = start(['--config', file])
  t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
  t.ok(await eventually(() => gw.stdout().includes('authorization server keys loaded'), 15_000), 'gateway A is up')

  const token = async (aud: string, scope: string): Promise<string> => await st.sign(st.claims({ aud: `${origin}${aud}`, scope }))
  const mcpTools = { authorization: `Bearer ${await token('/mcp', 'mcp:tools')}` }
  const mcpAdmin = { authorization: `Bearer ${await token('/mcp', 'mcp:admin')}` }
  const v2Tools = { authorization: `Bearer ${await token('/v2', 'mcp:tools')}` }
  const get = async (path: string, headers: Record<string, string>): Promise<{ status: number, body: string }> => {
    const r = await fetch(`${origin}${path}`, { headers })
    return { status: r.status, body: await r.text() }
  }

  t.same(await get('/mcp/x', mcpTools), { status: 200, body: 'upstream one' }, 'A: mcp:tools reaches /mcp')
  t.equal((await get('/v2/x', v2Tools)).status, 404, 'A: /v2 does not exist')

  // An SSE stream through A, read as it arrives.
  const stream = await fetch(`${origin}/mcp/stream`, { headers: mcpTools })
  t.equal(stream.status, 200, 'the SSE stream is open')
  const reading = readAsItArrives(stream.body!)
  t.same(await get('/mcp/push?m=before', mcpTools), { status: 200, body: 'pushed to 1' })
  t.ok(await eventually(() => reading.text().includes('data: before'), 3000), 'the stream receives events')

  // Reload to B.
  writeFileSync(file, stringify(configB))
  gw.child.kill('SIGHUP')
  t.ok(await eventually(() => countLines(gw.stdout(), 'config reloaded') === 1, 15_000), 'the reload is logged')
  const reloaded = logLines(gw.stdout()).find((l) => l.msg === 'config reloaded')!
  t.same(reloaded.routes, ['/mcp', '/v2'])
  t.equal(reloaded.draining, 1, 'the open stream is left to drain on the old config')
  const insufficient = await get('/mcp/x', mcpTools)
  t.equal(insufficient.status, 403, 'B: the new scope rule applies to new requests (mcp:tools is no longer enough)')
  t.same(await get('/mcp/x', mcpAdmin), { status: 200, body: 'upstream one' }, 'B: mcp:admin reaches /mcp')
  t.same(await get('/v2/x', v2Tools), { status: 200, body: 'upstream two' }, 'B: the new route answers')
  // The stream opened under A is still open and still flowing (B's requests never touched it).
  t.same(await get('/mcp/push?m=after-reload', mcpAdmin), { status: 200, body: 'pushed to 1' })
  t.ok(await eventually(() => reading.text().includes('data: after-reload'), 3000), 'the open stream still receives events after the reload')
  t.notOk(reading.ended(), 'the open stream was not dropped')

  // An invalid config: every problem logged at error level, B keeps serving.
  writeFileSync(file, stringify({
    ...base,
    authorizationServers: [{ issuer: 'http://as.example.com', algorithms: ['none'] }],
    routes: [{ path: '/mcp', upstream: 'ftp://x', scope: ['typo'] }, { path: '/mcp', upstream: 'http://127.0.0.1:1' }]
  }))
  gw.child.kill('SIGHUP')
  t.ok(await eventually(() => countLines(gw.stdout(), 'config reload rejected: the file is invalid; the current config keeps serving') === 1, 10_000), 'the rejection is logged')
  t.ok(await eventually(() => countLines(gw.stdout(), 'config problem') === 5, 3000), 'one line per problem')
  const problems = logLines(gw.stdout()).filter((l) => l.msg === 'config problem')
  t.ok(problems.every((l) => l.level === 50), 'problems are logged at error level')
  t.same(problems.map((l) => l.problem), [
    'authorizationServers[0].issuer: plain http:// on a non-loopback host: must be https:// (http:// is accepted only on 127.0.0.0/8, ::1 or localhost)',
    'authorizationServers[0].algorithms[0]: unsupported algorithm: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256, HS384, HS512 (never "none")',
    'routes[0].upstream: not an http(s) URL: upstream must be an absolute http:// or https:// URL',
    'routes[0].scope: unknown key: allowed keys here are path, upstream, resource, scopes, issuers, policy, identityHeaders, claims, identityAssertion, upstreamAuth, allowedOrigins, timeouts',
    'routes[1].path: duplicate of routes[0].path: route paths must be unique'
  ])
  t.equal(gw.child.exitCode, null, 'the process keeps running')
  t.same(await get('/v2/x', v2Tools), { status: 200, body: 'upstream two' }, 'B still serves after the invalid reload')
  t.equal((await get('/mcp/x', mcpTools)).status, 403, 'B\'s scope rule still applies')

  // A change that needs a restart (listen.port) is refused; B keeps serving.
  writeFileSync(file, stringify({ ...configB, listen: { port: port + 1 } }))
  gw.child.kill('SIGHUP')
  t.ok(await eventually(() => gw.stdout().includes('config reload rejected: listen.port cannot change without a restart'), 10_000), 'a listen.port change is refused with a clear line')
  t.same(await get('/v2/x', v2Tools), { status: 200, body: 'upstream two' }, 'B still serves after the refused reload')
  t.equal(countLines(gw.stdout(), 'config reloaded'), 1, 'no further reload was applied')

  // When its last stream ends, the old config's app is closed (its discovery, Redis and stores with it).
  t.equal(countLines(gw.stdout(), 'previous config drained and closed'), 0, 'the old config is still draining while its stream is open')
  for (const s of streams) s.end()
  await reading.done
  t.ok(reading.ended(), 'the stream ended when the upstream ended it')
  t.ok(await eventually(() => countLines(gw.stdout(), 'previous config drained and closed') === 1, 3000), 'the old config is closed once drained')

  gw.child.kill('SIGTERM')
  const exit = await gw.done
  t.equal(exit.code, 0, 'SIGTERM exits 0')
  for (const h of [mcpTools, mcpAdmin, v2Tools]) t.notOk(exit.stdout.includes(h.authorization.slice(7)), 'no token in the log')
})

t.test('with listen.tls, a reload serves a rotated certificate to new connections', async (t) => {
  // In process (the runtime main.ts runs) so the test can read the certificate each connection presents.
  const tdir = mkdtempSync(join(tmpdir(), 'gw-reload-tls-'))
  const cert = (name: string): void => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(tdir, `${name}.key`), '-out', join(tdir, `${name}.crt`)], { stdio: 'ignore' })
  }
  cert('first')
  cert('second')
  const st = await startStaticIssuer()
  t.teardown(async () => { await st.close() })
  const file = join(tdir, 'gateway.yaml')
  const write = (name: string): void => {
    writeFileSync(file, stringify({
      listen: { host: '127.0.0.1', port: 0, tls: { certFile: `${name}.crt`, keyFile: `${name}.key` } },
      publicUrl: 'https://127.0.0.1',
      authorizationServers: [{ issuer: st.issuer }],
      routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }]
    }))
  }
  write('first')
  let logs = ''
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { logs += chunk.toString(); cb() } })
  const rt = createRuntime(loadConfigFile(file), { load: () => loadConfigFile(file), source: file, loggers: createLoggers('info', sink) })
  const { port } = await rt.listen()
  t.teardown(async () => { await rt.close() })
  const presented = async (): Promise<string> => await new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(sock.getPeerCertificate().subject.CN as string)
      sock.end()
    })
    sock.on('error', reject)
  })
  t.equal(await presented(), 'first')
  write('second')
  t.equal(await rt.reload(), true, 'the reload is applied')
  t.equal(await presented(), 'second', 'new connections get the new certificate')
  // Dropping TLS needs a restart: refused, the certificate stays.
  writeFileSync(file, stringify({
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: 'https://127.0.0.1',
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }]
  }))
  t.equal(await rt.reload(), false, 'turning TLS off is refused')
  t.match(logs, /config reload rejected: listen\.tls cannot change without a restart/)
  t.equal(await presented(), 'second')
})

t.test('a legacy HTTP+SSE session opened before a reload keeps working after it (memory session bindings are kept)', async (t) => {
  const st = await startStaticIssuer()
  const legacy = await startLegacySseUpstream()
  t.teardown(async () => { await legacy.close(); await st.close() })
  const ldir = mkdtempSync(join(tmpdir(), 'gw-reload-legacy-'))
  const file = join(ldir, 'gateway.yaml')
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const write = (extra: Array<Record<string, unknown>>): void => {
    writeFileSync(file, stringify({
      listen: { port },
      publicUrl: origin,
      authorizationServers: [{ issuer: st.issuer }],
      routes: [{ path: '/legacy', upstream: legacy.origin, scopes: ['mcp:tools'] }, ...extra]
    }))
  }
  write([])
  const rt = createRuntime(loadConfigFile(file), { load: () => loadConfigFile(file), source: file, loggers: createLoggers('silent') })
  await rt.listen()
  await rt.whenReady()
  let closed = false
  t.teardown(async () => { if (!closed) await rt.close() })
  const aliceToken = await st.sign(st.claims({ sub: 'alice', aud: `${origin}/legacy`, scope: 'mcp:tools' }))
  const bobToken = await st.sign(st.claims({ sub: 'bob', aud: `${origin}/legacy`, scope: 'mcp:tools' }))
  const auth = { Authorization: `Bearer ${aliceToken}` }
  const transport = new SSEClientTransport(new URL(`${origin}/legacy/sse`), {
    requestInit: { headers: auth },
    eventSourceInit: { fetch: async (url, init) => await fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth } }) }
  })
  const client = new Client({ name: 'reload-test', version: '1.0.0' })
  await client.connect(transport)
  t.teardown(async () => { await client.close() })
  const sid = [...legacy.requests].reverse().find((r) => r.method === 'POST')?.url.split('sessionId=')[1]
  t.ok(sid, 'the client posted to its session endpoint')

  write([{ path: '/other', upstream: legacy.origin, scopes: ['mcp:tools'] }])
  t.equal(await rt.reload(), true, 'the reload is applied')
  // The POSTs now go to the new config's app; the stream is still carried by the old one.
  const r = await client.callTool({ name: 'echo', arguments: { text: 'after reload' } })
  t.match(JSON.stringify(r.content), /after reload/, 'the session\'s messages are still admitted after the reload')
  // Still bound to alice: the binding was kept, not re-learned.
  const bob = await fetch(`${origin}/legacy/messages?sessionId=${sid!}`, { method: 'POST', headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' }, body: '{}' })
  t.equal(bob.status, 404, 'another identity is still refused the session after the reload')
  await client.close()
  closed = true
  await rt.close()
})
