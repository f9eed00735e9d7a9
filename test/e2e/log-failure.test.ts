/**
 * A log destination that refuses writes does not take the gateway down.
 * Regression: with stdout on a full disk the first batched write threw
 * ENOSPC from the flush timer ("Unhandled 'error' event"), and the process
 * died within a second of starting.
 *
 * The real command line with its stdout on /dev/full (every write: ENOSPC),
 * a real upstream and real tokens. The gateway must keep answering, say so
 * once on stderr (the code, never a token), and still exit 0 on SIGTERM.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { stringify } from 'yaml'
import { startStaticIssuer } from '../helpers/static-issuer.js'
import { answerJsonAfterBody, freePort } from '../helpers/net.js'
import { eventually, SRC_MAIN } from '../helpers/cli.js'

t.test('stdout on a full disk: the gateway keeps serving and reports it once on stderr', async (t) => {
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
  const full = openSync('/dev/full', 'w')
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), SRC_MAIN, '--config', file], {
    cwd: dir, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', full, 'pipe']
  })
  closeSync(full)
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => { resolve(code) }))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })

  const status = async (path: string, init?: RequestInit): Promise<number> => {
    try { return (await fetch(`${origin}${path}`, init)).status } catch { return 0 }
  }
  t.ok(await eventually(async () => await status('/readyz') === 200, 20_000), 'the gateway becomes ready with stdout refusing every write')

  const token = await st.sign(st.claims({ aud: `${origin}/mcp`, scope: 'mcp:tools' }))
  const call = async (): Promise<number> => await status('/mcp', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  })
  const first: number[] = []
  for (let i = 0; i < 50; i++) first.push(await call())
  t.same(new Set(first), new Set([200]), '50 tool calls answered while their request lines cannot be written')
  // The batch is written at least every second (LOG_FLUSH_INTERVAL_MS): let several fail.
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(child.exitCode, null, 'still running after the periodic flushes failed')
  t.equal(await call(), 200, 'and still answering')

  const reports = stderr.split('\n').filter((l) => l.includes('writing logs to stdout failed'))
  t.equal(reports.length, 1, 'one report on stderr (at most one a minute)')
  t.match(reports[0], /\(ENOSPC\): the gateway keeps serving; lines are held \(up to 16 MiB\) and retried every second, then dropped \(\d+ bytes dropped so far\)/)
  t.notOk(stderr.includes(token), 'stderr never carries the token')
  t.notOk(/Unhandled 'error' event|unexpected failure/.test(stderr), 'no crash report')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM still exits 0 (the last flush fails quietly)')
})
