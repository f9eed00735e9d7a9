import { createConnection, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago.
 *
 * Only for processes whose port must be chosen up front (a child process
 * configured through `PORT`); in-process servers should listen on port 0
 * instead, which cannot race.
 */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no TCP address'));
        return;
      }
      srv.close((err) => (err ? reject(err) : resolve(addr.port)));
    });
  });
}

/** Resolves once a TCP connection to host:port succeeds once. */
async function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const sock = createConnection({ port, host });
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.setTimeout(500, () => done(false));
  });
}

/**
 * Polls until something accepts TCP connections on `host:port`
 * (127.0.0.1 by default), or rejects after `timeoutMs`.
 */
export async function waitForPort(port: number, timeoutMs = 10_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await tryConnect(port, host)) return;
    if (Date.now() >= deadline) {
      throw new Error(`waitForPort: nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}

/** A raw HTTP answer: status, headers, body text. */
export interface RawResponse { status: number, headers: import('node:http').IncomingHttpHeaders, body: string }

/**
 * One request with node:http, so repeated headers go out as separate lines and
 * the path is sent exactly as written (fetch would normalise the URL first).
 */
export async function rawRequest (origin: string, method: string, path: string, headers: Record<string, string | string[]>, body?: string): Promise<RawResponse> {
  const { request } = await import('node:http')
  const url = new URL(origin)
  return await new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The JSON-RPC result the small hand-written upstreams of the e2e tests answer with. */
export const EMPTY_RESULT = '{"jsonrpc":"2.0","id":1,"result":{}}';

/** For a node:http(s) handler: read the request body to its end, then answer 200 with `body` as JSON. */
export function answerJsonAfterBody(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body = EMPTY_RESULT): void {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
}
