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
