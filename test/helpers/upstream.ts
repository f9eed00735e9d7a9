/**
 * Real MCP upstream servers for tests, built with @modelcontextprotocol/sdk
 * on express (Streamable HTTP stateful/stateless, legacy HTTP+SSE), plus a
 * launcher for the reference server @modelcontextprotocol/server-everything.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
// express 5 ships no type declarations and @types/express is not installed (no
// new dependencies); the import is untyped and re-typed by the facade below.
// @ts-ignore TS7016 (ts-ignore rather than ts-expect-error so adding @types later does not break the build)
import expressUntyped from 'express';
import { z } from 'zod';

import { freePort, waitForPort } from './net.js';

/** The slice of express 5 these helpers use. */
type Req = IncomingMessage & {
  body?: unknown;
  params: Record<string, string>;
  query: Record<string, unknown>;
  path: string;
};
type Res = ServerResponse & { status(code: number): Res; json(body: unknown): Res };
type Handler = (req: Req, res: Res, next: (err?: unknown) => void) => void | Promise<void>;
interface ExpressApp {
  (req: IncomingMessage, res: ServerResponse): void;
  use(handler: Handler): void;
  get(path: string, handler: Handler): void;
  post(path: string, handler: Handler): void;
  all(path: string, handler: Handler): void;
}
interface ExpressFactory {
  (): ExpressApp;
  json(opts?: { limit?: string }): Handler;
}
const express = expressUntyped as ExpressFactory;

/** One HTTP request as an upstream received it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A running SDK-built upstream. */
export interface TestUpstream {
  /** e.g. `http://127.0.0.1:<port>` */
  origin: string;
  /** Every HTTP request received, in order, recorded before any handler runs. */
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** Headers of the HTTP request being handled, for the `whoami` tool. */
const currentHeaders = new AsyncLocalStorage<IncomingHttpHeaders>();

/**
 * Builds an McpServer with the tools every test upstream exposes:
 * `echo`, `whoami` and `slow_progress`.
 */
export function buildTestMcpServer(): McpServer {
  const server = new McpServer({ name: 'test-upstream', version: '1.0.0' });

  server.registerTool(
    'echo',
    { description: 'Returns the given text', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );

  server.registerTool(
    'whoami',
    { description: 'Returns, as JSON, the HTTP request headers this server saw for this call' },
    async (extra) => {
      // Raw Node headers of the POST that carried this tools/call (exact names
      // and values as received). extra.requestInfo.headers is the fallback: the
      // SDK fills it too, but for Streamable HTTP it is rebuilt from a Fetch
      // Request, so multi-valued headers are joined.
      const headers = currentHeaders.getStore() ?? extra.requestInfo?.headers ?? {};
      return { content: [{ type: 'text', text: JSON.stringify(headers) }] };
    },
  );

  server.registerTool(
    'slow_progress',
    {
      description: 'Sends `steps` progress notifications intervalMs apart, waits intervalMs, returns "done"',
      inputSchema: { steps: z.number().int().min(0).max(1000), intervalMs: z.number().int().min(0).max(60_000) },
    },
    async ({ steps, intervalMs }, extra) => {
      const progressToken = extra._meta?.progressToken;
      // Notify, then wait: the wait after the last notification keeps it out of
      // the response's TCP chunk. The SDK client drops a progress notification
      // that it parses in the same tick as the response (its handler runs in a
      // microtask, after _onresponse has removed the progress handler).
      for (let i = 1; i <= steps; i++) {
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: i, total: steps, message: `step ${i}/${steps}` },
          });
        }
        await sleep(intervalMs, undefined, { signal: extra.signal });
      }
      return { content: [{ type: 'text', text: 'done' }] };
    },
  );

  return server;
}

function headersObject(h: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  return { ...h };
}

/**
 * Express app with request recording and the plain (non-MCP) test routes.
 * MCP routes are added by the caller.
 */
function baseApp(requests: SeenRequest[]): ExpressApp {
  const app = express();
  // Record first, before body parsing or any transport sees the request.
  app.use((req, _res, next) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: headersObject(req.headers) });
    next();
  });
  app.use(express.json({ limit: '4mb' }));
  // After body parsing: its stream callbacks would not run inside this context.
  app.use((req, _res, next) => currentHeaders.run(req.headers, () => next()));

  app.get('/ticks', async (req, res) => {
    const n = Number(req.query.n ?? 5);
    const interval = Number(req.query.interval ?? 200);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(interval);
      if (res.destroyed) return;
      res.write(`data: ${i}\n\n`);
    }
    res.end();
  });

  // Never answered; close() destroys the socket.
  app.get('/hang', () => undefined);
  app.post('/hang', () => undefined);

  app.get('/status/:code', (req, res) => {
    const code = Number(req.params.code);
    res.setHeader('mcp-session-id', 'test-session');
    res.status(code).json({ status: code });
  });

  const echoHeaders: Handler = (req, res) => {
    res.json(req.headers);
  };
  app.get('/headers', echoHeaders);
  app.post('/headers', echoHeaders);
  return app;
}

async function listen(app: ExpressApp): Promise<{ server: Server; origin: string }> {
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

/** Listen, and close every session's McpServer before the HTTP server on close(). */
async function listenWithSessions(
  app: ExpressApp,
  requests: SeenRequest[],
  sessions: Map<string, { server: McpServer }>,
): Promise<TestUpstream> {
  const { server, origin } = await listen(app);
  return {
    origin,
    requests,
    async close(): Promise<void> {
      await Promise.allSettled([...sessions.values()].map((s) => s.server.close()));
      sessions.clear();
      await closeServer(server);
    },
  };
}

async function closeServer(server: Server): Promise<void> {
  // Open SSE streams and /hang requests would keep close() waiting forever.
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function jsonRpcError(res: Res, status: number, code: number, message: string): void {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

/**
 * Streamable HTTP upstream with sessions (`mcp-session-id`): POST, GET (SSE
 * stream) and DELETE on `opts.path` (default `/mcp`). Unknown session → 404.
 */
export async function startStatefulUpstream(opts: { path?: string } = {}): Promise<TestUpstream> {
  const requests: SeenRequest[] = [];
  const app = baseApp(requests);
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: McpServer }>();

  app.all(opts.path ?? '/mcp', async (req, res) => {
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const session = sessions.get(sid);
      if (!session) {
        jsonRpcError(res, 404, -32001, 'Session not found');
        return;
      }
      await session.transport.handleRequest(req, res, req.body);
      return;
    }
    if (req.method === 'POST' && isInitializeRequest(req.body)) {
      const server = buildTestMcpServer();
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, server });
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
      return;
    }
    jsonRpcError(res, 400, -32000, 'Bad Request: No valid session ID provided');
  });

  return await listenWithSessions(app, requests, sessions);
}

/**
 * Stateless Streamable HTTP upstream: a new McpServer and transport per POST;
 * GET and DELETE get 405. `jsonResponse` makes it answer with JSON instead of SSE.
 */
export async function startStatelessUpstream(opts: { path?: string; jsonResponse?: boolean } = {}): Promise<TestUpstream> {
  const requests: SeenRequest[] = [];
  const app = baseApp(requests);

  app.all(opts.path ?? '/mcp', async (req, res) => {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      jsonRpcError(res, 405, -32000, 'Method not allowed.');
      return;
    }
    const server = buildTestMcpServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: opts.jsonResponse ?? false,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  const { server, origin } = await listen(app);
  return { origin, requests, close: () => closeServer(server) };
}

/**
 * Legacy HTTP+SSE upstream (protocol 2024-11-05): `GET {prefix}/sse` opens the
 * stream, whose `endpoint` event names `{prefix}/messages?sessionId=…`;
 * `POST {prefix}/messages?sessionId=…` carries client messages.
 */
export async function startLegacySseUpstream(opts: { prefix?: string } = {}): Promise<TestUpstream> {
  const prefix = opts.prefix ?? '';
  const requests: SeenRequest[] = [];
  const app = baseApp(requests);
  const sessions = new Map<string, { transport: SSEServerTransport; server: McpServer }>();

  app.get(`${prefix}/sse`, async (_req, res) => {
    const transport = new SSEServerTransport(`${prefix}/messages`, res);
    const server = buildTestMcpServer();
    sessions.set(transport.sessionId, { transport, server });
    res.on('close', () => {
      sessions.delete(transport.sessionId);
      void server.close();
    });
    await server.connect(transport);
  });

  app.post(`${prefix}/messages`, async (req, res) => {
    const sid = req.query.sessionId;
    const session = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (!session) {
      res.status(404).json({ error: 'unknown sessionId' });
      return;
    }
    await session.transport.handlePostMessage(req, res, req.body);
  });

  return await listenWithSessions(app, requests, sessions);
}

/** Process groups of running everything servers, killed on exit if a test forgot. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Preloaded into server-everything. (1) Forces `listen(port)` without a host
 * onto 127.0.0.1: it calls `app.listen(PORT)`, which would bind every
 * interface. (2) Exits when its parent (the test process) is gone, even if
 * that died by a signal and could not run close() or its exit hook.
 */
const LOOPBACK_PRELOAD =
  'data:text/javascript,' +
  encodeURIComponent(`
import net from 'node:net';
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const p = args[0];
  if ((typeof p === 'number' || (typeof p === 'string' && /^\\d+$/.test(p))) && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
`);

/**
 * Spawns `mcp-server-everything <mode>` (in its own process group) with
 * `PORT` set to a free port, bound to 127.0.0.1, and waits until it accepts
 * connections. MCP endpoints: `/mcp` (streamableHttp); `/sse` and
 * `/message?sessionId=` (sse). `close()` kills the whole process group.
 */
export async function startEverything(mode: 'streamableHttp' | 'sse'): Promise<{ origin: string; close(): Promise<void> }> {
  const port = await freePort();
  const bin = realpathSync(fileURLToPath(new URL('../../node_modules/.bin/mcp-server-everything', import.meta.url)));
  const child = spawn(process.execPath, ['--import', LOOPBACK_PRELOAD, bin, mode], {
    env: { ...process.env, PORT: String(port), NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so close() can kill anything it spawns too.
    detached: true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('startEverything: spawn failed');
  liveGroups.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const g of liveGroups) killGroup(g, 'SIGKILL');
    });
  }

  let output = '';
  const collect = (b: Buffer): void => {
    if (output.length < 20_000) output += b.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const close = async (): Promise<void> => {
    if (!liveGroups.has(pid)) return;
    killGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    // The leader is gone; make sure nothing else in its group survives.
    killGroup(pid, 'SIGKILL');
    liveGroups.delete(pid);
  };

  const ready = await Promise.race([
    waitForPort(port, 15_000).then(() => true),
    exited.then(() => false),
  ]).catch(async (err: unknown) => {
    await close();
    throw err;
  });
  if (!ready) {
    await close();
    throw new Error(`mcp-server-everything ${mode} exited before listening:\n${output}`);
  }
  return { origin: `http://127.0.0.1:${port}`, close };
}

/** One request body as a {@link startRecordingUpstream} received it, byte for byte. */
export interface RecordedBody {
  method: string;
  url: string;
  body: Buffer;
}

/**
 * A plain node:http upstream (not MCP) for asserting exactly what the gateway
 * forwarded: it records every request's body bytes, then answers 200 JSON with
 * `answer(body)` (default `{}`).
 */
export async function startRecordingUpstream(answer: (body: Buffer) => string = () => '{}'): Promise<{ origin: string; bodies: RecordedBody[]; close(): Promise<void> }> {
  const bodies: RecordedBody[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: async () => { await new Promise<void>((resolve) => server.close(() => resolve())); },
  };
}
