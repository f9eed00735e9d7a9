/**
 * A real redis-server for tests: Debian's /usr/bin/redis-server (or
 * REDIS_SERVER_PATH), started on a free loopback port in its own temp dir,
 * with persistence off. `kill` and `restart` exercise outages: the restarted
 * server listens on the same port, empty (nothing was saved).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './net.js'

export const REDIS_SERVER_PATH = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server'

export interface TestRedis {
  readonly port: number
  /** `redis://127.0.0.1:<port>` (no credentials: give the password through the config). */
  readonly url: string
  /** Whether the server is running now. */
  readonly running: boolean
  /** SIGKILL: an abrupt outage (connections reset, nothing flushed). */
  kill: () => Promise<void>
  /** Start again on the same port (empty). */
  restart: () => Promise<void>
  /** Stop for good and remove the temp dir. */
  close: () => Promise<void>
}

const live = new Set<ChildProcess>()
let exitHook = false

/** Start redis-server; `password` sets `requirepass`. */
export async function startRedis (opts: { password?: string } = {}): Promise<TestRedis> {
  if (!existsSync(REDIS_SERVER_PATH)) {
    throw new Error(`redis-server not found at ${REDIS_SERVER_PATH}: install the Debian package redis-server (.ci/run does), or set REDIS_SERVER_PATH`)
  }
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => { for (const c of live) c.kill('SIGKILL') })
  }
  const dir = mkdtempSync(join(tmpdir(), 'mcp-gw-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined
  let output = ''

  const start = async (): Promise<void> => {
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning',
      ...(opts.password !== undefined ? ['--requirepass', opts.password] : [])
    ]
    const c = spawn(REDIS_SERVER_PATH, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    live.add(c)
    const collect = (b: Buffer): void => { if (output.length < 20_000) output += b.toString() }
    c.stdout!.on('data', collect)
    c.stderr!.on('data', collect)
    const exited = new Promise<boolean>((resolve) => c.once('exit', () => { live.delete(c); resolve(false) }))
    const ready = await Promise.race([waitForPort(port, 10_000).then(() => true), exited])
    if (!ready) throw new Error(`redis-server exited before listening on ${port}:\n${output}`)
  }

  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise<void>((resolve) => c.once('exit', () => { resolve() }))
    c.kill(signal)
    await gone
    live.delete(c)
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running () { return child !== undefined && child.exitCode === null && child.signalCode === null },
    kill: async () => { await stop('SIGKILL') },
    restart: async () => {
      await stop('SIGKILL')
      await start()
    },
    close: async () => {
      await stop('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
