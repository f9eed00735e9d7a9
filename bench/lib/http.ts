/** Small HTTP client helpers for preflight checks and single-request latencies. */
import { Agent, request } from 'node:http'

export interface TimedResponse { status: number, body: string, ms: number }

/** One request, timed from before the socket is asked for to the end of the body. */
export async function timedRequest (url: string, o: { method?: string, headers?: Record<string, string>, body?: string, agent?: Agent, timeoutMs?: number } = {}): Promise<TimedResponse> {
  return await new Promise<TimedResponse>((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const req = request(url, { method: o.method ?? 'POST', headers: o.headers, agent: o.agent ?? false, timeout: o.timeoutMs ?? 15_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - t0) / 1e6 })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`timeout after ${o.timeoutMs ?? 15_000} ms: ${url}`)) })
    req.on('error', reject)
    req.end(o.body)
  })
}

export function keepAliveAgent (maxSockets = 256): Agent {
  return new Agent({ keepAlive: true, maxSockets })
}
