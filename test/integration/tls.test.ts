/**
 * listen.tls: HTTPS terminated by the gateway, with a certificate made for
 * this test by openssl. The client trusts exactly that certificate.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Agent, request } from 'undici'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.js'
import { createGateway } from '../../src/gateway.js'
import { createLoggers } from '../../src/observability/logger.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startStatelessUpstream } from '../helpers/upstream.js'
import { freePort } from '../helpers/net.js'
import { mcpHeaders, INITIALIZE_BODY } from '../helpers/gateway.js'

const dir = mkdtempSync(join(tmpdir(), 'gw-tls-'))
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' })

const st = await startStaticIssuer()
const up = await startStatelessUpstream({ jsonResponse: true })
const port = await freePort()
const origin = `https://127.0.0.1:${port}`
// Relative certificate paths resolve against the config file's directory.
const config = parseConfig(stringify({
  listen: { host: '127.0.0.1', port, tls: { certFile: 'tls.crt', keyFile: 'tls.key' } },
  publicUrl: origin,
  authorizationServers: [{ issuer: st.issuer }],
  routes: [{ path: '/mcp', upstream: `${up.origin}/mcp`, scopes: ['mcp:tools'] }]
}), { baseDir: dir, env: {} })
const gw = createGateway(config, { loggers: createLoggers('silent') })
const bound = await gw.listen()
await gw.authenticator.whenReady()
const dispatcher = new Agent({ connect: { ca: readFileSync(join(dir, 'tls.crt')) } })
t.teardown(async () => { await gw.close(); await dispatcher.close(); await up.close(); await st.close() })

t.test('HTTPS is terminated by the gateway', async (t) => {
  t.equal(bound.url, origin)
  const prm = await request(`${origin}/.well-known/oauth-protected-resource/mcp`, { dispatcher })
  t.equal(prm.statusCode, 200)
  t.equal((await prm.body.json() as { resource: string }).resource, `${origin}/mcp`)
  const token = await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))
  const res = await request(`${origin}/mcp`, { method: 'POST', headers: mcpHeaders(token), body: INITIALIZE_BODY, dispatcher })
  t.equal(res.statusCode, 200)
  t.match(await res.body.text(), /"protocolVersion"/)
})

t.test('an untrusting client is refused at the TLS layer', async (t) => {
  await t.rejects(request(`${origin}/healthz`), 'self-signed certificate not trusted by default')
})
