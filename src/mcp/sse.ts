/**
 * Legacy HTTP+SSE (protocol 2024-11-05) support: the first `endpoint` event
 * names the URL the client must POST to, as a path relative to the upstream.
 * Under a gateway prefix it must be rewritten, or the client POSTs outside the
 * route (typescript-sdk #583). Everything else streams through untouched.
 */
import { Transform, type TransformCallback } from 'node:stream'

/**
 * Rewrite an endpoint URL from the upstream's space into the gateway's. Returns
 * undefined when it is not under the upstream base (it is then left alone).
 */
export function rewriteEndpoint (data: string, upstreamOrigin: string, upstreamPath: string, routePath: string): string | undefined {
  let url: URL
  try {
    url = new URL(data, upstreamOrigin + upstreamPath + '/')
  } catch {
    return undefined
  }
  if (url.origin !== upstreamOrigin) return undefined
  const base = upstreamPath
  if (base !== '' && url.pathname !== base && !url.pathname.startsWith(base + '/')) return undefined
  // Relative output keeps the client on whatever origin it used to reach the gateway.
  return routePath + url.pathname.slice(base.length) + url.search
}

/**
 * Rewrites the data of the first SSE event if it is an `endpoint` event, then
 * passes everything through untouched. It holds back at most `maxScanBytes`
 * while waiting for the first complete event. Works on bytes: a chunk may end
 * inside a multi-byte character.
 */
export class EndpointScanner {
  #done = false
  #pending: Buffer = Buffer.alloc(0)
  readonly #rewrite: (data: string) => string | undefined
  readonly #maxScanBytes: number
  /** The rewritten endpoint, once seen (for logs and session binding). */
  endpoint: string | undefined

  constructor (rewrite: (data: string) => string | undefined, maxScanBytes: number) {
    this.#rewrite = rewrite
    this.#maxScanBytes = maxScanBytes
  }

  /** Feed a chunk; returns the bytes to emit now (possibly none). */
  write (chunk: Buffer): Buffer | undefined {
    if (this.#done) return chunk
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    const out: Buffer[] = []
    for (;;) {
      const end = eventEnd(this.#pending)
      if (end === -1) {
        if (this.#pending.length > this.#maxScanBytes) {
          this.#done = true
          out.push(this.#pending)
          this.#pending = Buffer.alloc(0)
        }
        break
      }
      const event = this.#pending.subarray(0, end)
      const rest = this.#pending.subarray(end)
      const text = event.toString('utf8')
      if (isCommentOnly(text)) {
        // Keep-alive comments before the first event: pass them on and keep looking.
        out.push(event)
        this.#pending = rest
        continue
      }
      this.#done = true
      this.#pending = Buffer.alloc(0)
      out.push(Buffer.from(this.#rewriteEvent(text), 'utf8'))
      if (rest.length > 0) out.push(rest)
      break
    }
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out)
  }

  /** The stream ended: whatever was held back. */
  end (): Buffer | undefined {
    const rest = this.#pending
    this.#pending = Buffer.alloc(0)
    return rest.length > 0 ? rest : undefined
  }

  #rewriteEvent (event: string): string {
    const lines = event.split(/\r\n|\n|\r/)
    if (!lines.some((l) => /^event: ?endpoint$/.test(l))) return event
    const eol = event.includes('\r\n') ? '\r\n' : (event.includes('\r') && !event.includes('\n')) ? '\r' : '\n'
    return lines.map((l) => {
      if (!l.startsWith('data:')) return l
      const rewritten = this.#rewrite(l.slice(5).replace(/^ /, ''))
      if (rewritten === undefined) return l
      this.endpoint = rewritten
      return `data: ${rewritten}`
    }).join(eol)
  }
}

/** {@link EndpointScanner} as a Transform stream. */
export class EndpointRewriter extends Transform {
  readonly #scanner: EndpointScanner

  constructor (rewrite: (data: string) => string | undefined, maxScanBytes: number) {
    super()
    this.#scanner = new EndpointScanner(rewrite, maxScanBytes)
  }

  /** The rewritten endpoint, once seen. */
  get endpoint (): string | undefined {
    return this.#scanner.endpoint
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = this.#scanner.write(chunk)
    cb(null, out)
  }

  override _flush (cb: TransformCallback): void {
    cb(null, this.#scanner.end())
  }
}

/** Index just past the first blank line (end of an SSE event), or -1. */
function eventEnd (buf: Buffer): number {
  for (let i = 0; i < buf.length - 1; i++) {
    const c = buf[i]
    if (c === 0x0a && buf[i + 1] === 0x0a) return i + 2
    if (c === 0x0d) {
      if (buf[i + 1] === 0x0a) {
        if (buf[i + 2] === 0x0d && buf[i + 3] === 0x0a) return i + 4
      } else if (buf[i + 1] === 0x0d) return i + 2
    }
  }
  return -1
}

function isCommentOnly (event: string): boolean {
  return event.split(/\r\n|\n|\r/).every((l) => l === '' || l.startsWith(':'))
}
