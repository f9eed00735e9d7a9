/**
 * Optional system `node-undici-jose`: the leanest authenticating Node proxy
 * we know how to write, as a floor for what any Node gateway can cost (the
 * issue's "node:http server + undici Pool + jose + cache" row). One
 * `node:http` server, no framework, no logging; the bearer JWT checked with
 * jose (createRemoteJWKSet, jwtVerify with issuer, audience, RS256) and
 * verified tokens cached in a Map keyed by the token until their exp; the
 * body read whole (it is small) and forwarded with one undici `Pool.dispatch`
 * whose handler writes straight into the response. Hop-by-hop headers are
 * dropped both ways and the Authorization header is not forwarded, so it does
 * the same protocol work as the gateway minus everything else (identity
 * headers, path and origin checks, limits, logs). A GET gets an undici Client
 * of its own, as the gateway's GET streams do, so the bench can hold idle SSE
 * streams through it too (the per-stream memory floor).
 *
 * Environment: PORT, UPSTREAM (origin), ISSUER, JWKS_URI, AUDIENCE, SCOPE.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Client, Pool, type Dispatcher } from 'undici'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { requiredEnv } from './env.js'

const env = requiredEnv
const issuer = env('ISSUER')
const audience = env('AUDIENCE')
const scope = env('SCOPE')
const jwks = createRemoteJWKSet(new URL(env('JWKS_URI')))
const upstream = env('UPSTREAM')
const pool = new Pool(upstream, { connections: 128, pipelining: 1 })

/** token → exp in ms; at most MAX_CACHE entries (the oldest goes first). */
const cache = new Map<string, number>()
const MAX_CACHE = 10_000
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'authorization'])

function fail (res: ServerResponse, status: number, error: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'www-authenticate': `Bearer error="${error}"` })
  res.end(JSON.stringify({ error }))
}

class Handler implements Dispatcher.DispatchHandler {
  constructor (readonly res: ServerResponse) {}
  onConnect (): void {}
  onHeaders (status: number, raw: Buffer[]): boolean {
    const out: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase()
      if (!HOP.has(name)) out.push(name, raw[i + 1]!.toString('latin1'))
    }
    this.res.writeHead(status, out)
    return true
  }

  onData (chunk: Buffer): boolean { return this.res.write(chunk) }
  onComplete (): void { this.res.end() }
  onError (): void {
    if (!this.res.headersSent) fail(this.res, 502, 'bad_gateway')
    else this.res.destroy()
  }
}

function forward (req: IncomingMessage, res: ServerResponse, body: Buffer | undefined): void {
  const raw = req.rawHeaders
  const headers: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!)
  }
  const opts: Dispatcher.DispatchOptions = { path: req.url!, method: req.method as Dispatcher.HttpMethod, headers, body }
  if (req.method === 'GET') {
    // A GET may be a long-lived SSE stream: it gets a connection of its own, closed with it
    // (as the gateway does), so open streams never queue requests behind them in the pool.
    const client = new Client(upstream)
    res.once('close', () => { void client.destroy() })
    client.dispatch(opts, new Handler(res) as unknown as Dispatcher.DispatchHandler)
    return
  }
  pool.dispatch(opts, new Handler(res) as unknown as Dispatcher.DispatchHandler)
}

function withBody (req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' || req.method === 'HEAD') {
    forward(req, res, undefined)
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => { forward(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)) })
}

const server = createServer({ keepAlive: true }, (req, res) => {
  const h = req.headers.authorization
  if (h === undefined || !h.startsWith('Bearer ')) {
    fail(res, 401, 'invalid_request')
    return
  }
  const token = h.slice(7)
  const exp = cache.get(token)
  if (exp !== undefined && exp > Date.now()) {
    withBody(req, res)
    return
  }
  jwtVerify(token, jwks, { issuer, audience, algorithms: ['RS256'] }).then(({ payload }) => {
    if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes(scope)) {
      fail(res, 403, 'insufficient_scope')
      return
    }
    if (typeof payload.exp === 'number') {
      if (cache.size >= MAX_CACHE) cache.delete(cache.keys().next().value!)
      cache.set(token, payload.exp * 1000)
    }
    withBody(req, res)
  }, () => { fail(res, 401, 'invalid_token') })
})
server.listen(Number(env('PORT')), '127.0.0.1')
process.on('SIGTERM', () => { process.exit(0) })
