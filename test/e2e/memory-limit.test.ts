/**
 * The startup warning when limits.maxStreams does not fit the process's memory limit, with
 * the real CLI inside a real memory cgroup (what a container limit is). BENCHMARKS.md: at a
 * 256 MiB limit the kernel killed the gateway at ~6,500 idle streams, every stream lost,
 * before the default cap of 10,000 refused one.
 *
 * Needs a writable cgroup-v1 memory hierarchy (root on a v1 host, as here); skipped with the
 * reason otherwise. test/unit/memory-sizing.test.ts covers the rule itself everywhere.
 */
import { accessSync, constants, mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { eventually, logLines, SRC_MAIN, startCommand } from '../helpers/cli.js'
import { freePort } from '../helpers/net.js'
import { startStaticIssuer } from '../helpers/static-issuer.js'

const V1 = '/sys/fs/cgroup/memory'
const skip = ((): string | false => {
  try {
    accessSync(join(V1, 'memory.limit_in_bytes'), constants.W_OK)
    return false
  } catch {
    return `no writable cgroup-v1 memory hierarchy at ${V1}`
  }
})()

const MIB = 1024 * 1024
const dir = mkdtempSync(join(tmpdir(), 'gw-memory-limit-'))

/** Start the CLI inside a new memory cgroup limited to `mib`; resolve with its output once it is listening. */
let started = 0
async function startIn (t: Test, mib: number, config: Record<string, unknown>): Promise<string> {
  const cg = join(V1, `mcp-gw-test-${process.pid}-${++started}`)
  mkdirSync(cg)
  writeFileSync(join(cg, 'memory.limit_in_bytes'), String(mib * MIB))
  const file = join(dir, `gateway-${started}.yaml`)
  writeFileSync(file, stringify(config))
  // The shell joins the cgroup, then becomes the gateway: the gateway starts inside it.
  const gw = startCommand('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, process.execPath, '--import', import.meta.resolve('tsx'), SRC_MAIN, '--config', file], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' }
  })
  const child = gw.child
  t.teardown(async () => {
    child.kill('SIGKILL')
    await gw.done
    rmdirSync(cg)
  })
  t.ok(await eventually(() => logLines(gw.stdout()).some((l) => l.msg === 'gateway listening') || child.exitCode !== null, 20_000), 'the gateway started')
  t.equal(child.exitCode, null, 'and is running', { output: gw.stdout().slice(-2000) })
  return gw.stdout()
}

t.test('a limit too small for limits.maxStreams is a startup warning; a large enough one is not', { skip }, async (t) => {
  const st = await startStaticIssuer()
  t.teardown(async () => { await st.close() })
  const config = async (extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
    const port = await freePort()
    return {
      listen: { host: '127.0.0.1', port },
      publicUrl: `http://127.0.0.1:${port}`,
      authorizationServers: [{ issuer: st.issuer }],
      routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }],
      ...extra
    }
  }
  const warnings = (out: string): string[] => logLines(out).filter((l) => l.msg === 'risky configuration').map((l) => String(l.warning))
  const memoryWarning = (out: string): string | undefined => warnings(out).find((w) => w.startsWith('limits.maxStreams'))

  const small = await startIn(t, 256, await config())
  t.match(memoryWarning(small), /^limits\.maxStreams \(10000\) needs about 425 MiB .*memory limit \(256 MiB\): the kernel would kill the gateway, ending every stream, before the cap refuses one; lower limits\.maxStreams to about 2800 or raise the memory limit$/,
    'the default cap in 256 MiB: warned, with the cap that fits')

  const fits = await startIn(t, 256, await config({ limits: { maxStreams: 2800 } }))
  t.equal(memoryWarning(fits), undefined, 'the suggested cap in 256 MiB: no warning')

  const large = await startIn(t, 512, await config())
  t.equal(memoryWarning(large), undefined, 'the default cap in 512 MiB (deploy/): no warning')
})
