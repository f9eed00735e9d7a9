/**
 * An HTTPS upstream, as users run it: the real command line in a child process,
 * trusting the upstream's test certificate through NODE_EXTRA_CA_CERTS (the
 * gateway verifies upstream certificates and has no option to skip that).
 *
 * Every GET stream gets its own upstream connection (proxy/upstream.ts). Those
 * connections and the route's pool share one connector, so after the first TLS
 * handshake the next connections resume the session instead of doing a full
 * handshake each. Regression: each stream's client once built its own
 * connector, with its own empty session cache (and ~0.8 KB of heap per open
 * stream; BENCHMARKS.md).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { stringify } from 'yaml'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { answerJsonAfterBody, EMPTY_RESULT, freePort } from '../helpers/net.js'
import { startCli, eventually } from '../helpers/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'gw-upstream-tls-'))
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  '-keyout', join(dir, 'up.key'), '-out', join(dir, 'up.crt')], { stdio: 'ignore' })

t.test('GET streams and pooled requests to an HTTPS upstream resume one TLS session', async (t) => {
  const st = await startStaticIssuer()
  /** Per upstream request: its method, and whether its connection resumed a TLS session. */
  const seen: Array<{ method: string, resumed: boolean }> = []
  const up = createServer({ key: readFileSync(join(dir, 'up.key')), cert: readFileSync(join(dir, 'up.crt')) }, (req, res) => {
    seen.push({ method: req.method ?? '', resumed: (req.socket as TLSSocket).isSessionReused() })
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end('data: hello\n\n')
      return
    }
    answerJsonAfterBody(req, res)
  })
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { up.closeAllConnections(); up.close(); await st.close() })

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify({
    listen: { port },
    publicUrl: origin,
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: `https://127.0.0.1:${(up.address() as AddressInfo).port}/mcp`, scopes: ['mcp:tools'] }]
  }))
  const gw = startCli(['--config', file], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: join(dir, 'up.crt') } })
  t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
  t.ok(await eventually(() => gw.stdout().includes('authorization server keys loaded'), 15_000), 'the gateway is up')

  const authorization = `Bearer ${await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))}`
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${origin}/mcp`, { headers: { authorization, accept: 'text/event-stream' } })
    t.equal(r.status, 200, `GET stream ${i + 1} is answered`)
    t.equal(await r.text(), 'data: hello\n\n', `GET stream ${i + 1} carries the upstream's event`)
  }
  const post = await fetch(`${origin}/mcp`, {
    method: 'POST',
    headers: { authorization, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  })
  t.equal(post.status, 200, 'the POST is answered')
  t.equal(await post.text(), EMPTY_RESULT)

  t.same(seen, [
    { method: 'GET', resumed: false },
    { method: 'GET', resumed: true },
    { method: 'GET', resumed: true },
    { method: 'POST', resumed: true }
  ], 'one full handshake, then every new upstream connection (a stream\'s own, or the pool\'s) resumes that session')
  gw.child.kill('SIGTERM')
  t.equal((await gw.done).code, 0, 'the gateway exits cleanly')
})
