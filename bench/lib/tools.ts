/**
 * The external programs the bench drives: nginx, haproxy and wrk from Debian,
 * autocannon from npm as a fallback load generator. When something is missing
 * and the harness runs as root, it installs it with apt-get; a system whose
 * program is still missing is skipped with a reason, never silently.
 */
import { execFileSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { sh } from './procs.js'

export type ToolName = 'nginx' | 'haproxy' | 'wrk'

export interface Tools {
  paths: Partial<Record<ToolName | 'autocannon', string>>
  versions: Partial<Record<ToolName | 'autocannon', string>>
  /** Why a tool is unavailable. */
  missing: Partial<Record<ToolName | 'autocannon', string>>
  /** What the harness did (installs), for the report. */
  notes: string[]
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin']

export function findBinary (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SBIN]
  for (const d of dirs) {
    if (d === '') continue
    const p = join(d, name)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch { /* next */ }
  }
  return undefined
}

function version (tool: ToolName, path: string): string {
  const out = sh(path, ['-v'])
  const first = out.split('\n')[0] ?? ''
  if (tool === 'nginx') return first.replace(/^nginx version:\s*/, '')
  if (tool === 'haproxy') return first.replace(/^HAProxy version\s*/, 'HAProxy ').replace(/\s+-\s+https?:\/\/\S+$/, '')
  return first.replace(/\s+Copyright.*$/, '')
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0

/**
 * Finds the tools `needed`; as root, installs the missing ones with apt-get
 * (`apt-get update && apt-get install -y --no-install-recommends ...`).
 */
export function ensureTools (needed: readonly ToolName[], o: { install: boolean }, log: (line: string) => void): Tools {
  const tools: Tools = { paths: {}, versions: {}, missing: {}, notes: [] }
  const lookup = (): ToolName[] => {
    const absent: ToolName[] = []
    for (const t of needed) {
      const p = findBinary(t)
      if (p !== undefined) tools.paths[t] = p; else absent.push(t)
    }
    return absent
  }
  let absent = lookup()
  if (absent.length > 0) {
    if (o.install && isRoot() && findBinary('apt-get') !== undefined) {
      log(`installing ${absent.join(', ')} with apt-get (running as root)`)
      try {
        const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
        execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 300_000 })
        execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...absent], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 600_000 })
        tools.notes.push(`installed with apt-get: ${absent.join(', ')}`)
      } catch (err) {
        tools.notes.push(`apt-get install ${absent.join(' ')} failed: ${(err as Error).message.split('\n')[0] ?? ''}`)
      }
      absent = lookup()
    }
    for (const t of absent) {
      tools.missing[t] = !o.install
        ? `${t} is not installed (automatic install disabled by --no-install)`
        : isRoot()
        ? `${t} is not installed and apt-get could not install it`
        : `${t} is not installed (run as root to have the bench install it, or: apt-get install -y --no-install-recommends ${t})`
    }
  }
  for (const t of needed) {
    const p = tools.paths[t]
    if (p !== undefined) tools.versions[t] = version(t, p)
  }
  return tools
}

/**
 * The autocannon fallback: only when wrk is unavailable. Installed into
 * `.cache/autocannon` (outside node_modules, like the Node 24 binary) on demand.
 */
export function ensureAutocannon (root: string, tools: Tools, log: (line: string) => void): string | undefined {
  const bin = join(root, '.cache/autocannon/node_modules/.bin/autocannon')
  if (!existsSync(bin)) {
    log('wrk is unavailable: installing autocannon into .cache/autocannon as the fallback load generator')
    try {
      execFileSync('npm', ['install', '--prefix', join(root, '.cache/autocannon'), '--no-save', '--no-audit', '--no-fund', '--loglevel=error', 'autocannon@8'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 })
      tools.notes.push('wrk unavailable: autocannon installed into .cache/autocannon')
    } catch (err) {
      tools.missing.autocannon = `npm install autocannon failed: ${(err as Error).message.split('\n')[0] ?? ''}`
      return undefined
    }
  }
  if (!existsSync(bin)) {
    tools.missing.autocannon = 'autocannon binary not found after install'
    return undefined
  }
  tools.paths.autocannon = bin
  tools.versions.autocannon = `autocannon ${sh(bin, ['--version']).split('\n')[0] ?? ''}`
  return bin
}
