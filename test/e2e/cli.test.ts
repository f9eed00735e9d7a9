/**
 * The mcp-auth-gateway command line as users run it: flags, exit codes, config
 * errors without stack traces, and graceful, bounded shutdown on SIGTERM.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { parse, stringify } from 'yaml'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { freePort } from '../helpers/net.js'
import { DIST_MAIN, ROOT, SRC_MAIN, startCli, type Run, type RunningCli } from '../helpers/cli.js'

const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string }
const dir = mkdtempSync(join(tmpdir(), 'gw-cli-'))

function start (args: string[], env: Record<string, string> = {}, entry = SRC_MAIN): RunningCli {
  return startCli(args, { cwd: dir, env, entry })
}
const run = async (args: string[], env?: Record<string, string>, entry?: string): Promise<Run> => await start(args, env, entry).done

const validConfig = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  publicUrl: 'https://mcp.example.com',
  authorizationServers: [{ issuer: 'https://as.example.com' }],
  routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:3001/mcp', scopes: ['mcp:tools'] }],
  ...extra
})
writeFileSync(join(dir, 'valid.yaml'), stringify(validConfig()))
writeFileSync(join(dir, 'invalid.yaml'), stringify({
  listen: { port: 'eighty' },
  publicUrl: 'https://mcp.example.com/sub',
  authorizationServers: [{ issuer: 'http://as.example.com', algorithms: ['none'] }],
  routes: [{ path: '/mcp', upstream: 'ftp://x', scope: ['typo'] }, { path: '/mcp', upstream: 'http://127.0.0.1:1' }]
}))

t.test('--version and --help', async (t) => {
  const v = await run(['--version'])
  t.equal(v.code, 0)
  t.equal(v.stdout.trim(), pkg.version)
  const h = await run(['--help'])
  t.equal(h.code, 0)
  t.match(h.stdout, /Usage: mcp-auth-gateway \[--config <file>\] \[--check \[--print\]\]/)
  const bad = await run(['--no-such-flag'])
  t.equal(bad.code, 2, 'bad usage exits 2')
  t.match(bad.stderr, /Unknown option '--no-such-flag'/)
})

t.test('--check on a valid config exits 0; MCP_GATEWAY_CONFIG names the file', async (t) => {
  const a = await run(['--check', '--config', 'valid.yaml'])
  t.equal(a.code, 0)
  t.match(a.stdout, /valid\.yaml: configuration is valid \(1 route, 1 authorization server\)/)
  const b = await run(['--check'], { MCP_GATEWAY_CONFIG: join(dir, 'valid.yaml') })
  t.equal(b.code, 0, 'env var used when --config is absent')
  const c = await run(['--check', '--config', join(ROOT, 'gateway.example.yaml')])
  t.equal(c.code, 0, 'the shipped example config is valid')
})

t.test('an invalid config lists every problem, one line each, and no stack trace', async (t) => {
  for (const args of [['--check', '--config', 'invalid.yaml'], ['--config', 'invalid.yaml']]) {
    const r = await run(args)
    t.equal(r.code, 1, `${args.join(' ')} exits 1`)
    const problems = r.stderr.split('\n').filter((l) => l.startsWith('  '))
    t.same(problems.map((l) => l.trim()), [
      'listen.port: got a string: must be a number',
      'publicUrl: publicUrl has a path, query or fragment: it must be an origin only (paths belong to routes[].path)',
      'authorizationServers[0].issuer: plain http:// on a non-loopback host: must be https:// (http:// is accepted only on 127.0.0.0/8, ::1 or localhost)',
      'authorizationServers[0].algorithms[0]: unsupported algorithm: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256, HS384, HS512 (never "none")',
      'routes[0].upstream: not an http(s) URL: upstream must be an absolute http:// or https:// URL',
      'routes[0].scope: unknown key: allowed keys here are path, upstream, resource, scopes, issuers, policy, identityHeaders, claims, identityAssertion, upstreamAuth, allowedOrigins, timeouts',
      'routes[1].path: duplicate of routes[0].path: route paths must be unique'
    ])
    t.match(r.stderr, /^mcp-auth-gateway: invalid\.yaml: 7 configuration problems:\n/)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  }
  const missing = await run(['--check', '--config', 'nope.yaml'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope\.yaml: cannot read the config file \(ENOENT\): the file must exist and be readable/)
  const noDefault = await run([])
  t.equal(noDefault.code, 1, 'no ./gateway.yaml: exit 1')
  t.match(noDefault.stderr, /\.\/gateway\.yaml: cannot read the config file/)
})

t.test('--check --print prints the normalised config as YAML, every secret redacted', async (t) => {
  const secret = (name: string): string => `${name}-${randomBytes(24).toString('hex')}`
  const env = { GW_CLI_SHARED: secret('shared'), GW_CLI_REDIS: secret('redis'), GW_CLI_CC: secret('cc') }
  const fileSecret = secret('file')
  writeFileSync(join(dir, 'api-key.txt'), `${fileSecret}\n`, { mode: 0o600 })
  writeFileSync(join(dir, 'secrets.yaml'), stringify(validConfig({
    authorizationServers: [
      { issuer: 'https://as.example.com' },
      { issuer: 'https://hs.example.com', algorithms: ['HS256'], sharedSecret: { fromEnv: 'GW_CLI_SHARED' } }
    ],
    routes: [
      { path: '/mcp', upstream: 'http://127.0.0.1:3001/mcp', scopes: ['mcp:tools'], upstreamAuth: { type: 'header', name: 'X-Api-Key', value: { fromFile: 'api-key.txt' } } },
      { path: '/cc', upstream: 'http://127.0.0.1:3002', scopes: ['mcp:tools'], upstreamAuth: { type: 'clientCredentials', tokenEndpoint: 'https://as.example.com/token', clientId: 'gw', clientSecret: { fromEnv: 'GW_CLI_CC' } } }
    ],
    redis: { url: 'redis://127.0.0.1:6379/0', password: { fromEnv: 'GW_CLI_REDIS' } }
  })))
  const r = await run(['--check', '--print', '--config', 'secrets.yaml'], env)
  t.equal(r.code, 0, 'exit 0')
  t.equal(r.stderr, '', 'nothing on stderr')
  t.match(r.stdout, /^# secrets\.yaml: configuration is valid \(2 routes, 2 authorization servers\)\n/, 'the summary is a YAML comment')
  for (const value of [...Object.values(env), fileSecret]) {
    t.notOk(r.stdout.includes(value), `secret ${value.slice(0, 8)}… is not printed`)
  }
  const doc = parse(r.stdout) as Record<string, any>
  const cases: Array<[string, unknown, unknown]> = [
    ['authorizationServers[1].sharedSecret', doc.authorizationServers[1].sharedSecret, '<redacted: fromEnv GW_CLI_SHARED>'],
    ['routes[0].upstreamAuth.value', doc.routes[0].upstreamAuth.value, '<redacted: fromFile api-key.txt>'],
    ['routes[1].upstreamAuth.clientSecret', doc.routes[1].upstreamAuth.clientSecret, '<redacted: fromEnv GW_CLI_CC>'],
    ['redis.password', doc.redis.password, '<redacted: fromEnv GW_CLI_REDIS>'],
    ['routes[0].upstreamAuth.header (not secret)', doc.routes[0].upstreamAuth.header, 'x-api-key'],
    ['listen.port (default)', doc.listen.port, 8080],
    ['routes[0].timeouts.connectMs (default, normalised)', doc.routes[0].timeouts.connectMs, 10000],
    ['authorizationServers[0].profile (default)', doc.authorizationServers[0].profile, 'generic']
  ]
  for (const [where, got, want] of cases) t.equal(got, want, where)

  const example = await run(['--check', '--print', '--config', join(ROOT, 'gateway.example.yaml')])
  t.equal(example.code, 0, 'the shipped example prints')
  t.equal((parse(example.stdout) as { publicUrl: string }).publicUrl, 'https://mcp.example.com')
})

t.test('--print: usage error without --check; nothing printed for an invalid config', async (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [['--print', '--config', 'valid.yaml'], 2, /--print needs --check/],
    [['--print'], 2, /--print needs --check/],
    [['--check', '--print', '--config', 'invalid.yaml'], 1, /invalid\.yaml: 7 configuration problems/],
    [['--check', '--print', '--config', 'nope.yaml'], 1, /cannot read the config file/]
  ]
  for (const [args, code, stderr] of cases) {
    const r = await run(args)
    t.equal(r.code, code, `${args.join(' ')} exits ${code}`)
    t.match(r.stderr, stderr, `${args.join(' ')}: stderr says why`)
    t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`)
  }
  const h = await run(['--help'])
  t.match(h.stdout, /--print +with --check: also print the normalised config/, '--help documents --print')
})

t.test('the built bin (dist/src/main.js) runs', async (t) => {
  t.ok(existsSync(DIST_MAIN), 'dist/src/main.js exists (npm test builds before running tap)')
  const r = await run(['--check', '--config', 'valid.yaml'], {}, DIST_MAIN)
  t.equal(r.code, 0)
})

t.test('SIGTERM lets in-flight requests finish, refuses new ones, and is bounded', async (t) => {
  const st = await startStaticIssuer()
  // An upstream that answers /slow after 800 ms and keeps /stream open forever.
  const upstream = createServer((req, res) => {
    if (req.url?.startsWith('/slow') === true) setTimeout(() => { res.end('finished') }, 800)
    else { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write(': open\n\n') }
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { upstream.closeAllConnections(); upstream.close(); await st.close() })
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  writeFileSync(join(dir, 'run.yaml'), stringify({
    listen: { port },
    publicUrl: origin,
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, scopes: ['mcp:tools'] }],
    shutdownTimeoutSeconds: 2
  }))
  const gw = start(['--config', 'run.yaml'])
  const deadline = Date.now() + 15000
  while (!gw.stdout().includes('authorization server keys loaded') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const token = await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))
  const auth = { authorization: `Bearer ${token}` }

  const slow = fetch(`${origin}/mcp/slow`, { headers: auth }).then(async (r) => ({ status: r.status, body: await r.text() }))
  const stream = await fetch(`${origin}/mcp/stream`, { headers: auth })
  t.equal(stream.status, 200, 'an SSE stream is open')
  const streamEnded = stream.text().then(() => 'ended', () => 'cut')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const signalledAt = Date.now()
  gw.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const refused = await fetch(`${origin}/mcp/slow`, { headers: { ...auth, connection: 'close' } }).then((r) => r.status, () => 'refused')
  t.ok(refused === 'refused' || refused === 503, `a new request after SIGTERM is refused (${String(refused)})`)
  t.same(await slow, { status: 200, body: 'finished' }, 'the in-flight request finished')
  t.ok(['ended', 'cut'].includes(await streamEnded), 'the open stream was closed')
  const exit = await gw.done
  const took = Date.now() - signalledAt
  t.equal(exit.code, 0, 'clean exit')
  t.ok(took < 4000, `shutdown bounded by shutdownTimeoutSeconds (${took} ms)`)
  t.match(exit.stdout, /shutting down: draining in-flight requests/)
  t.notOk(exit.stdout.includes(token) || exit.stderr.includes(token), 'token never printed')
})

t.test('stdout logging is buffered but nothing is lost: startup at once, request lines within the flush interval, all at SIGTERM', async (t) => {
  const st = await startStaticIssuer()
  t.teardown(async () => { await st.close() })
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  writeFileSync(join(dir, 'logs.yaml'), stringify({
    listen: { port },
    publicUrl: origin,
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }]
  }))
  const gw = start(['--config', 'logs.yaml'], {}, DIST_MAIN)
  const waitFor = async (what: () => boolean, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms
    while (!what() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return what()
  }
  t.ok(await waitFor(() => gw.stdout().includes('gateway listening'), 15_000), 'the startup line is written at once')
  const requestLines = (): number => gw.stdout().split('\n').filter((l) => l.includes('"msg":"request"')).length
  t.equal((await fetch(`${origin}/mcp`, { method: 'POST' })).status, 401)
  // One short line is far below the buffer size: only the periodic flush can write it.
  t.ok(await waitFor(() => requestLines() === 1, 3000), 'a lone request line appears within the flush interval')
  for (let i = 0; i < 20; i++) t.equal((await fetch(`${origin}/mcp`, { method: 'POST' })).status, 401)
  gw.child.kill('SIGTERM')
  const exit = await gw.done
  t.equal(exit.code, 0)
  t.equal(exit.stdout.split('\n').filter((l) => l.includes('"msg":"request"')).length, 21, 'every request line is written by the time the process exits')
  t.ok(exit.stdout.split('\n').filter((l) => l !== '').every((l) => { try { JSON.parse(l); return true } catch { return false } }), 'every stdout line is whole JSON')
})
