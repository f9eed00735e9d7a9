/**
 * The separate metrics listener (`metrics.listen`): a plain node:http server
 * that answers GET/HEAD on the metrics path with the Prometheus text format
 * and 404 on anything else. No Fastify, no authentication, no rate limits:
 * keep it on a private address.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { safePath } from './logger.js'

export interface MetricsSource {
  readonly contentType: string
  scrape: () => Promise<string>
}

export interface MetricsServer {
  /** Listen; resolves with the bound address (port 0 picks a free one). */
  listen: () => Promise<{ host: string, port: number, url: string }>
  /** Stop listening and close every connection. */
  close: () => Promise<void>
}

const NOT_FOUND = JSON.stringify({ error: 'not_found', error_description: 'No route matches this path' })
const NOT_ALLOWED = JSON.stringify({ error: 'method_not_allowed', error_description: 'Only GET and HEAD are allowed here' })
const FAILED = JSON.stringify({ error: 'internal_error', error_description: 'The metrics could not be collected' })

/**
 * @param path the metrics path, read per request (a reload may change it)
 * @param onError told when collecting fails (the client gets a 500 without details)
 */
export function createMetricsServer (opts: { host: string, port: number, path: () => string, source: MetricsSource, onError?: (err: unknown) => void }): MetricsServer {
  const json = (res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra })
    res.end(body)
  }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (safePath(req.url ?? '') !== opts.path()) {
      json(res, 404, NOT_FOUND)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      json(res, 405, NOT_ALLOWED, { allow: 'GET, HEAD' })
      return
    }
    opts.source.scrape().then((text) => {
      res.writeHead(200, { 'content-type': opts.source.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
      res.end(req.method === 'HEAD' ? undefined : text)
    }, (err: unknown) => {
      opts.onError?.(err)
      json(res, 500, FAILED)
    })
  })
  return {
    listen: async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
      })
      const addr = server.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port
      return { host: opts.host, port, url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}` }
    },
    close: async () => {
      if (!server.listening) return
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      await closed
    }
  }
}
