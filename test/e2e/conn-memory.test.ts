/**
 * bench/conn-memory.ts, run as a user runs it: what one idle connection costs a bare
 * node:http server on the running Node (BENCHMARKS.md, "Node 24: where the idle-stream memory goes"). Real
 * sockets, a real server; the figures themselves are benchmarks, so this only checks that
 * the probe runs, reports every layer, and measures something real.
 */
import t from 'tap'
import { ROOT, runCommand, type Run } from '../helpers/cli.js'

async function probe (...args: string[]): Promise<Run> {
  return await runCommand(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/conn-memory.ts', ...args], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' } })
}

t.test('reports bytes per connection for each layer', async (t) => {
  const r = await probe('1000')
  t.equal(r.code, 0, 'exits 0', { stderr: r.stderr.slice(-2000) })
  t.match(r.stdout, new RegExp(`^node ${process.version.replace(/\./g, '\\.')}, 1000 idle connections`))
  const rows = new Map<string, number[]>()
  for (const line of r.stdout.split('\n')) {
    const m = /^\| (net|http-idle|http-sse) \| (-?\d+) \| (-?\d+) \| (-?\d+) \| (-?\d+) \|$/.exec(line)
    if (m !== null) rows.set(m[1]!, m.slice(2).map(Number))
  }
  t.same([...rows.keys()], ['net', 'http-idle', 'http-sse'], 'one row per layer, in order')
  // An open SSE response holds a request, a response and the HTTP connection's state on the
  // V8 heap; a bare TCP socket holds far less. A probe that measured nothing would fail here.
  const heap = (k: string): number => rows.get(k)?.[1] ?? Number.NaN
  t.ok(heap('http-sse') > heap('net') + 1000, `V8 heap per SSE connection (${heap('http-sse')} B) exceeds a bare socket's (${heap('net')} B) by over 1 KB`)
})

t.test('refuses a bad N with a clear error', async (t) => {
  const r = await probe('ten')
  t.not(r.code, 0, 'exits non-zero')
  t.match(r.stderr, /N must be an integer ≥ 100/)
})
