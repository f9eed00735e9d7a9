/**
 * Runs the mcp-auth-gateway command line as a child process (src through tsx,
 * or the built dist), capturing its output, for the CLI and reload tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
export const SRC_MAIN = join(ROOT, 'src/main.ts')
export const DIST_MAIN = join(ROOT, 'dist/src/main.js')

export interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

export interface RunningCli { child: ChildProcess, done: Promise<Run>, stdout: () => string }

/** Start the CLI in `cwd` with only PATH plus `env` in its environment. */
export function startCli (args: string[], opts: { cwd: string, env?: Record<string, string>, entry?: string }): RunningCli {
  const entry = opts.entry ?? SRC_MAIN
  // tsx is resolved from this repo, not from the child's cwd (a temp dir).
  const nodeArgs = entry.endsWith('.ts') ? ['--import', import.meta.resolve('tsx'), entry] : [entry]
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: opts.cwd, env: { PATH: process.env.PATH ?? '', ...(opts.env ?? {}) }, stdio: ['ignore', 'pipe', 'pipe'] })
  return capture(child)
}

/** Start any command with its output captured (e.g. the CLI behind a wrapper that sets up its environment). */
export function startCommand (cmd: string, args: string[], opts: { cwd: string, env?: NodeJS.ProcessEnv }): RunningCli {
  return capture(spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** Run any command to its end; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function runCommand (cmd: string, args: string[], opts: { cwd: string, env?: NodeJS.ProcessEnv }): Promise<Run> {
  return await startCommand(cmd, args, opts).done
}

function capture (child: ChildProcess): RunningCli {
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }) }))
  return { child, done, stdout: () => stdout }
}

/** Poll `what` every 25 ms until it holds or `ms` pass; its last answer. */
export async function eventually (what: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 25))) if (await what()) return true
  return await what()
}

/** The JSON log lines of a CLI's output. */
export function logLines (out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** How many log lines carry `msg`. */
export function countLines (out: string, msg: string): number {
  return logLines(out).filter((l) => l.msg === msg).length
}

/** A response body read as it arrives: what came so far, whether it ended, and a promise of the end. */
export interface StreamReading { text: () => string, ended: () => boolean, done: Promise<void> }

/** Read a streaming (SSE) response body in the background until it ends or is cut. */
export function readAsItArrives (body: ReadableStream<Uint8Array>): StreamReading {
  let received = ''
  let ended = false
  const reader = body.getReader()
  const done = (async () => {
    const dec = new TextDecoder()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        received += dec.decode(value, { stream: true })
      }
    } catch { /* cut */ }
    ended = true
  })()
  return { text: () => received, ended: () => ended, done }
}
