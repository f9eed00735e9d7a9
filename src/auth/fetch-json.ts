/**
 * Bounded JSON fetch for authorization-server metadata: a timeout, a size cap,
 * no redirects (a redirect could move key material to another host), and
 * errors that never carry a response body.
 */
import { request } from 'undici'

export class FetchJsonError extends Error {
  /** HTTP status when the server answered; undefined for network errors. */
  readonly status: number | undefined
  constructor (message: string, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'FetchJsonError'
    this.status = status
  }
}

export async function fetchJson (url: string, opts: { timeoutMs: number, maxBytes: number }): Promise<unknown> {
  let res
  try {
    res = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      signal: AbortSignal.timeout(opts.timeoutMs)
    })
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).name
    throw new FetchJsonError(`request failed (${code})`, undefined, err)
  }
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new FetchJsonError(`unexpected HTTP status ${res.statusCode}`, res.statusCode)
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > opts.maxBytes) {
        res.body.destroy()
        throw new FetchJsonError(`response larger than ${opts.maxBytes} bytes`, res.statusCode)
      }
      chunks.push(chunk as Buffer)
    }
  } catch (err) {
    if (err instanceof FetchJsonError) throw err
    throw new FetchJsonError(`reading the response failed (${(err as { code?: string }).code ?? 'error'})`, res.statusCode, err)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err) {
    throw new FetchJsonError('response is not valid JSON', res.statusCode, err)
  }
}
