/**
 * A log destination that refuses writes does not take the gateway down.
 * Regression: with stdout on a full disk the first batched write threw
 * ENOSPC from the flush timer ("Unhandled 'error' event"), and the process
 * died within a second of starting.
 *
 * The real command line with its stdout on /dev/full (every write: ENOSPC),
 * or on a pipe whose reader has gone (EPIPE),
 * a real upstream and real tokens. The gateway must keep answering, say so
 * once on stderr (the code, never a token), and still exit 0 on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { answerJsonAfterBody, freePort } from '../helpers/net.js'
import { eventually, SRC_MAIN } from '../helpers/cli.js'

/** A gateway CLI in front of a real upstream, its stdout given by `stdout`; stderr captured. */
async function startGatewayWithStdout (t: Test, stdout: number | 'pipe'): Promise<{ child: ChildProcess, stderr: () => string, exited: Promise<number | null>, call: () => Promise<number>, token: string }> {
  const st = await startStaticIssuer()
  const up = createServer((req, res) => { answerJsonAfterBody(req, res) })
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { up.closeAllConnections(); up.close(); await st.close() })

  const dir = mkdtempSync(join(tmpdir(), 'gw-log-failure-'))
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify({
    listen: { port },
    publicUrl: origin,
    logLevel: 'info',
    authorizationServers: [{ issuer: st.issuer }],
    routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${(up.address() as AddressInfo).port}/mcp`, scopes: ['mcp:tools'] }]
  }))
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), SRC_MAIN, '--config', file], {
    cwd: dir, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', stdout, 'pipe']
  })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => { resolve(code) }))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })

  const status = async (path: string, init?: RequestInit): Promise<number> => {
    try { return (await fetch(`${origin}${path}`, init)).status } catch { return 0 }
  }
  t.ok(await eventually(async () => await status('/readyz') === 200, 20_000), 'the gateway becomes ready')
  const token = await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))
  const call = async (): Promise<number> => await status('/mcp', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  })
  return { child, stderr: () => stderr, exited, call, token }
}

/** 50 tool calls, then 2.5 s of periodic flushes (LOG_FLUSH_INTERVAL_MS is 1 s), then one more call. */
async function keepsServing (t: Test, gw: { child: ChildProcess, call: () => Promise<number> }): Promise<void> {
  const first: number[] = []
  for (let i = 0; i < 50; i++) first.push(await gw.call())
  t.same(new Set(first), new Set([200]), '50 tool calls answered while their request lines cannot be written')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(gw.child.exitCode, null, 'still running after the periodic flushes failed')
  t.equal(await gw.call(), 200, 'and still answering')
}

t.test('stdout on a full disk: the gateway keeps serving and reports it once on stderr', async (t) => {
  const full = openSync('/dev/full', 'w')
  const gw = await startGatewayWithStdout(t, full)
  closeSync(full)
  await keepsServing(t, gw)
  const reports = gw.stderr().split('\n').filter((l) => l.includes('writing logs to stdout failed'))
  t.equal(reports.length, 1, 'one report on stderr (at most one a minute)')
  t.match(reports[0], /\(ENOSPC\): the gateway keeps serving; lines are held \(up to 16 MiB\) and retried every second, then dropped \(\d+ bytes dropped so far\)/)
  t.notOk(gw.stderr().includes(gw.token), 'stderr never carries the token')
  t.notOk(/Unhandled 'error' event|unexpected failure/.test(gw.stderr()), 'no crash report')
  gw.child.kill('SIGTERM')
  t.equal(await gw.exited, 0, 'SIGTERM still exits 0 (the last flush fails quietly)')
})

t.test('stdout closed by its reader (EPIPE): the gateway keeps serving and says so once', async (t) => {
  const gw = await startGatewayWithStdout(t, 'pipe')
  // The log shipper goes away: its end of the pipe is closed, so the next write gets EPIPE.
  gw.child.stdout!.destroy()
  await keepsServing(t, gw)
  const reports = gw.stderr().split('\n').filter((l) => l.includes('stdout was closed (EPIPE)'))
  t.equal(reports.length, 1, 'one report on stderr')
  t.notOk(/Unhandled 'error' event|unexpected failure/.test(gw.stderr()), 'no crash report')
  gw.child.kill('SIGTERM')
  t.equal(await gw.exited, 0, 'SIGTERM exits 0')
})
