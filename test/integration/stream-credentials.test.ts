/**
 * A response that stays open as a stream does not keep the caller's token in
 * the gateway's memory: once the upstream answers with SSE, the request's
 * Authorization (and Proxy-Authorization) values are dropped from Node's
 * request object (proxy/headers.ts forgetCredentials). The stream goes on,
 * and the request line still names the caller.
 *
 * Real gateway, real upstream (node:http holding SSE streams open); the
 * gateway's own IncomingMessage is read through its server's 'request' event.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { startGateway } from '../helpers/gateway.js'
import { eventually, readAsItArrives } from '../helpers/cli.js'
import { answerJsonAfterBody, EMPTY_RESULT } from '../helpers/net.js'

const st = await startStaticIssuer()
const open = new Set<ServerResponse>()
const up = createServer((req, res) => {
  if (req.url?.endsWith('/json') === true) {
    answerJsonAfterBody(req, res)
    return
  }
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('data: first\n\n')
    open.add(res)
    res.on('close', () => open.delete(res))
  })
})
await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
const upOrigin = `http://127.0.0.1:${(up.address() as AddressInfo).port}`
const gw = await startGateway(() => ({
  authorizationServers: [{ issuer: st.issuer }],
  routes: [{ path: '/mcp', upstream: `${upOrigin}/mcp`, scopes: ['mcp:tools'] }]
}))
t.teardown(async () => { await gw.close(); up.closeAllConnections(); up.close(); await st.close() })

/** The gateway's own request objects, newest last. */
const seen: IncomingMessage[] = []
gw.gateway.app.server.prependListener('request', (req: IncomingMessage) => { seen.push(req) })

const token = await st.sign(st.claims({ sub: 'alice', aud: `${gw.url}/mcp`, scope: 'mcp:tools' }))
const credentialValues = (req: IncomingMessage): string[] => {
  const out: string[] = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (/^(proxy-)?authorization$/i.test(req.rawHeaders[i]!)) out.push(req.rawHeaders[i + 1]!)
  return out
}

const cases: Array<{ name: string, method: 'GET' | 'POST', path: string, streams: boolean }> = [
  { name: 'a GET stream', method: 'GET', path: '/mcp', streams: true },
  { name: 'a POST answered with SSE', method: 'POST', path: '/mcp', streams: true },
  { name: 'a POST answered with JSON', method: 'POST', path: '/mcp/json', streams: false }
]

for (const c of cases) {
  t.test(`${c.name}: ${c.streams ? 'the token is dropped once the stream starts' : 'nothing to hold: the exchange ends'}`, async (t) => {
    const before = seen.length
    const ac = new AbortController()
    const res = await fetch(`${gw.url}${c.path}`, {
      method: c.method,
      signal: ac.signal,
      headers: {
        authorization: `Bearer ${token}`,
        'proxy-authorization': 'Basic c2VjcmV0OnNlY3JldA==',
        accept: 'application/json, text/event-stream',
        ...(c.method === 'POST' ? { 'content-type': 'application/json' } : {})
      },
      ...(c.method === 'POST' ? { body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}' } : {})
    })
    t.equal(res.status, 200, 'answered')
    t.equal(seen.length, before + 1, 'the gateway saw the request')
    const req = seen[seen.length - 1]!
    if (!c.streams) {
      t.equal(await res.text(), EMPTY_RESULT, 'the JSON answer passes')
      return
    }
    const reading = readAsItArrives(res.body!)
    t.ok(await eventually(() => reading.text().includes('data: first'), 3000), 'the first event arrives')
    t.same(credentialValues(req), ['', ''], 'rawHeaders keep the names, with empty values')
    t.equal(req.headers.authorization, undefined, 'no Authorization in headers')
    t.equal(req.headers['proxy-authorization'], undefined, 'no Proxy-Authorization in headers')
    t.equal(req.headers.accept, 'application/json, text/event-stream', 'other headers are kept')
    t.notOk(JSON.stringify(req.rawHeaders).includes(token), 'the token is nowhere in the request object')
    for (const s of open) s.write('data: second\n\n')
    t.ok(await eventually(() => reading.text().includes('data: second'), 3000), 'the stream goes on')
    ac.abort()
    await reading.done
    t.ok(await eventually(() => gw.requestLogs().some((l) => l.subject === 'alice' && l.method === c.method && l.outcome === 'client_closed'), 3000),
      'the request line still names the caller')
  })
}
