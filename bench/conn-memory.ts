/**
 * What one idle connection costs a bare `node:http` server on the running Node, layer by
 * layer: a TCP socket alone (`net`), an HTTP connection that sent nothing yet, and an HTTP
 * connection holding an open SSE response (what every idle MCP stream costs the gateway's
 * client-facing leg). No gateway code runs here: it separates what Node itself keeps from
 * what the gateway keeps (BENCHMARKS.md, "Node 24: where the idle-stream memory goes").
 *
 *   node --expose-gc --import tsx bench/conn-memory.ts [N=4000]
 *
 * The clients run in a child process so that their memory is not counted. Figures are the
 * server process's growth divided by N, after two forced GCs: RSS, the V8 heap in use,
 * glibc's main heap (`[heap]` in /proc/self/smaps: malloc, where Node's native objects
 * live) and other anonymous memory. Linux only.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net'

type Mode = 'net' | 'http-idle' | 'http-sse'
interface Sample { rss: number, heapUsed: number, malloc: number, anon: number }

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

/** KiB of resident memory by kind, from /proc/self/smaps. */
function smaps (): { malloc: number, anon: number } {
  let kind = ''
  const out = { malloc: 0, anon: 0 }
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) { kind = head[1] === '[heap]' ? 'malloc' : head[1] === '' ? 'anon' : 'other'; continue }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss !== null && (kind === 'malloc' || kind === 'anon')) out[kind] += Number(rss[1])
  }
  return out
}

function sample (): Sample {
  gc!()
  gc!()
  const m = process.memoryUsage()
  return { rss: m.rss / 1024, heapUsed: m.heapUsed / 1024, ...smaps() }
}

/** The clients: N sockets, each sending one SSE GET unless `send` is false; prints "ready". */
const CLIENT = `
const net = require('node:net')
const [port, n, send] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3] === '1']
let open = 0, started = 0
const one = () => {
  const s = net.connect(port, '127.0.0.1', () => {
    if (send) s.write('GET /sse HTTP/1.1\\r\\nhost: bench\\r\\naccept: text/event-stream\\r\\n\\r\\n')
    if (++open === n) setTimeout(() => process.stdout.write('ready\\n'), 1500)
  })
  s.on('data', () => {})
  s.on('error', (err) => { console.error(err.message); process.exit(1) })
}
const batch = () => { for (let k = 0; k < 200 && started < n; k++, started++) one(); if (started < n) setTimeout(batch, 10) }
batch()
setInterval(() => {}, 1 << 30)
`

async function measure (mode: Mode, n: number): Promise<Sample> {
  const server: Server = mode === 'net'
    ? createNetServer((s) => { s.on('data', () => {}) })
    : createServer((_req, res) => {
      if (mode === 'http-sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(': open\n\n')
      }
    })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const before = sample()
  const child = spawn(process.execPath, ['-e', CLIENT, String(port), String(n), mode === 'http-sse' ? '1' : '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => { resolve() })
      child.once('exit', (code) => { reject(new Error(`the client process exited (${String(code)}): raise ulimit -n?`)) })
    })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const after = sample()
    const per = (k: keyof Sample): number => Math.round((after[k] - before[k]) * 1024 / n)
    return { rss: per('rss'), heapUsed: per('heapUsed'), malloc: per('malloc'), anon: per('anon') }
  } finally {
    child.kill()
    server.close()
  }
}

const MODES: readonly Mode[] = ['net', 'http-idle', 'http-sse']
const [arg, modeArg] = process.argv.slice(2)
const n = Number(arg ?? 4000)
if (!Number.isInteger(n) || n < 100) throw new Error('N must be an integer ≥ 100')
if (modeArg !== undefined) {
  // One mode per process, so memory freed by one layer's connections cannot hide the next one's.
  if (!MODES.includes(modeArg as Mode)) throw new Error(`unknown mode ${modeArg}`)
  console.log(JSON.stringify(await measure(modeArg as Mode, n)))
  process.exit(0)
}
console.log(`node ${process.version}, ${n} idle connections; bytes per connection in the server process`)
console.log('| connection | RSS | V8 heap used | malloc heap (native objects) | other anonymous memory (V8 heap pages among it) |')
console.log('|---|---|---|---|---|')
for (const mode of MODES) {
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, [...process.execArgv, process.argv[1]!, String(n), mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    c.stdout.on('data', (b: Buffer) => { text += b.toString() })
    c.once('exit', (code) => { code === 0 ? resolve(text) : reject(new Error(`${mode}: exit ${String(code)}`)) })
  })
  const s = JSON.parse(out) as Sample
  console.log(`| ${mode} | ${s.rss} | ${s.heapUsed} | ${s.malloc} | ${s.anon} |`)
}
