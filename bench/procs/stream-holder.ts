/**
 * Opens N idle SSE streams (GET with Accept: text/event-stream) over raw TCP
 * sockets and holds them. A stream counts as established once its response
 * status is 200 and the upstream's first comment (": open") has arrived.
 *
 * Environment: PORT, TARGET_PATH, TOKEN, N, CONCURRENCY (openings in flight),
 * TIMEOUT_MS (to establish all), HOLD_MS (then exit on its own).
 * Prints one JSON line when every stream is established or has failed, then
 * holds the sockets until SIGTERM or HOLD_MS.
 */
import { connect, type Socket } from 'node:net'

const port = Number(process.env.PORT)
const path = process.env.TARGET_PATH ?? '/mcp'
const token = process.env.TOKEN ?? ''
const n = Number(process.env.N ?? 100)
const concurrency = Number(process.env.CONCURRENCY ?? 200)
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 60_000)
const holdMs = Number(process.env.HOLD_MS ?? 120_000)

const request = Buffer.from(
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n` +
  'Accept: text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n'
)

const sockets: Socket[] = []
let established = 0
let failed = 0
const errors: Record<string, number> = {}
const started = Date.now()

function openOne (): Promise<void> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' })
    sockets.push(sock)
    let buf = ''
    let settled = false
    const settle = (ok: boolean, why?: string): void => {
      if (settled) return
      settled = true
      if (ok) established++
      else {
        failed++
        const k = why ?? 'unknown'
        errors[k] = (errors[k] ?? 0) + 1
      }
      resolve()
    }
    sock.once('connect', () => { sock.write(request) })
    sock.on('data', (chunk: Buffer) => {
      if (settled) return
      buf += chunk.toString('latin1')
      if (!buf.startsWith('HTTP/1.1 200')) {
        if (buf.includes('\r\n')) settle(false, `status ${buf.slice(9, 12)}`)
        return
      }
      if (buf.includes(': open')) { buf = ''; settle(true) }
    })
    sock.on('error', (err: NodeJS.ErrnoException) => { settle(false, err.code ?? 'error') })
    sock.on('close', () => { settle(false, 'closed') })
  })
}

async function main (): Promise<void> {
  let next = 0
  const deadline = started + timeoutMs
  const worker = async (): Promise<void> => {
    while (next < n && Date.now() < deadline) {
      next++
      await openOne()
    }
  }
  const timeout = new Promise<void>((resolve) => { setTimeout(resolve, timeoutMs).unref() })
  await Promise.race([Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker)), timeout])
  process.stdout.write(JSON.stringify({ established, failed, pending: n - established - failed, errors, ms: Date.now() - started }) + '\n')
  setTimeout(() => { process.exit(0) }, holdMs).unref()
  // Keep the process alive while holding (the sockets alone would too, but not after they close).
  setInterval(() => {}, 60_000)
}

process.on('SIGTERM', () => {
  for (const s of sockets) s.destroy()
  process.exit(0)
})
void main()
