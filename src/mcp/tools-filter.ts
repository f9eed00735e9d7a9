/**
 * Filtered `tools/list`: removes from `result.tools` every tool the caller may
 * not call, in JSON responses (whole body, bounded) and in SSE streams (per
 * event: only the `data` of a JSON-RPC response to a remembered tools/list id
 * is rewritten; every other event passes on as soon as it is complete). Knows
 * nothing of policies: the caller passes an `allowed(name)` predicate.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { MAX_TOOLS_LIST_RESPONSE_BYTES } from '../config/defaults.js'

export { MAX_TOOLS_LIST_RESPONSE_BYTES }

/** Thrown when a response cannot be filtered (an SSE event over the cap): it must not reach the client. */
export class ToolsListFilterError extends Error {
  override readonly name = 'ToolsListFilterError'
  readonly code = 'ERR_TOOLS_LIST_UNFILTERABLE'
}

/** Ids of the tools/list requests being answered; undefined: any response carrying `result.tools`. */
export type ToolsListIds = ReadonlySet<string | number> | undefined

/**
 * Filter one parsed JSON-RPC message in place. Only responses (no `method`)
 * whose id is in `ids` (any id when undefined) and whose `result.tools` is an
 * array are touched; a tool without a string name is removed (it cannot be
 * authorised). Returns whether anything was removed.
 */
export function filterToolsListMessage (msg: unknown, ids: ToolsListIds, allowed: (name: string) => boolean): boolean {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return false
  const m = msg as Record<string, unknown>
  if (m.method !== undefined) return false
  if (ids !== undefined && !ids.has(m.id as string | number)) return false
  const result = m.result
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return false
  const tools = (result as Record<string, unknown>).tools
  if (!Array.isArray(tools)) return false
  const kept = tools.filter((t: unknown) => t !== null && typeof t === 'object' && typeof (t as { name?: unknown }).name === 'string' && allowed((t as { name: string }).name))
  if (kept.length === tools.length) return false
  ;(result as Record<string, unknown>).tools = kept
  return true
}

/** A message or a batch of them (JSON-RPC 2.0 §6). */
function filterValue (value: unknown, ids: ToolsListIds, allowed: (name: string) => boolean): boolean {
  if (!Array.isArray(value)) return filterToolsListMessage(value, ids, allowed)
  let changed = false
  for (const v of value) if (filterToolsListMessage(v, ids, allowed)) changed = true
  return changed
}

/**
 * Filter a whole `application/json` response body. Returns the same buffer
 * when nothing was removed (bytes untouched), a re-serialised one otherwise,
 * and undefined when the body is not JSON: it cannot be shown to be free of
 * tools the caller may not see, so the caller answers 502 instead.
 */
export function filterToolsListJson (body: Buffer, ids: ToolsListIds, allowed: (name: string) => boolean): Buffer | undefined {
  if (body.length === 0) return body
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  return filterValue(value, ids, allowed) ? Buffer.from(JSON.stringify(value), 'utf8') : body
}

const LF = 0x0a
const CR = 0x0d
const EMPTY = Buffer.alloc(0)
const LINE_RE = /\r\n|\r|\n/

/**
 * SSE side of the filter, fed chunk by chunk (WHATWG HTML §9.2.6 event stream
 * parsing: lines end in CRLF, LF or CR; a blank line ends an event; `data`
 * lines join with LF). Each event is held only until its blank line, then
 * sent on: untouched unless its data is a response to be filtered, which is
 * re-serialised into one `data:` line in place of the old ones (other fields
 * and comments keep their place). Works on bytes: a chunk may split a line,
 * a CRLF or a multi-byte character anywhere.
 */
export class ToolsListSseFilter {
  #pending: Buffer = EMPTY
  /** The last byte scanned was a CR that ended an event: an LF right after it is that blank line's CRLF tail. */
  #afterBlankCR = false
  /** Where scanning resumes in #pending. */
  #scan = 0
  /** Start of the current line in #pending. */
  #lineStart = 0
  /** No event seen yet: a UTF-8 BOM may open the stream (stripped by clients). */
  #first = true
  readonly #ids: ToolsListIds
  readonly #allowed: (name: string) => boolean
  readonly #maxEventBytes: number

  constructor (ids: ToolsListIds, allowed: (name: string) => boolean, maxEventBytes = MAX_TOOLS_LIST_RESPONSE_BYTES) {
    this.#ids = ids
    this.#allowed = allowed
    this.#maxEventBytes = maxEventBytes
  }

  /**
   * Feed a chunk; returns the bytes to send now (possibly none).
   * @throws ToolsListFilterError when an unfinished event exceeds the cap
   */
  write (chunk: Buffer): Buffer | undefined {
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    let out: Buffer[] | undefined
    let eventStart = 0
    let lineStart = this.#lineStart
    let i = this.#scan
    if (this.#afterBlankCR && buf.length > 0) {
      this.#afterBlankCR = false
      // The LF completing the CRLF of the blank line already sent: it belongs to that event.
      if (buf[0] === LF) {
        out = [buf.subarray(0, 1)]
        eventStart = lineStart = i = 1
      }
    }
    while (i < buf.length) {
      const c = buf[i]
      if (c !== LF && c !== CR) {
        i++
        continue
      }
      let next: number
      if (c === LF) next = i + 1
      else if (i + 1 < buf.length) next = buf[i + 1] === LF ? i + 2 : i + 1
      else if (lineStart === i) {
        // A blank line's CR last in the chunk: the event is complete whatever follows.
        next = i + 1
        this.#afterBlankCR = true
      } else break // a content line's CR last: CRLF or CR decides whether a blank line follows; wait
      if (lineStart === i) {
        // A blank line: the event [eventStart, next) is complete.
        (out ??= []).push(this.#event(buf.subarray(eventStart, next)))
        eventStart = next
      }
      lineStart = next
      i = next
    }
    this.#pending = eventStart === buf.length ? EMPTY : buf.subarray(eventStart)
    this.#scan = i - eventStart
    this.#lineStart = lineStart - eventStart
    if (this.#pending.length > this.#maxEventBytes) {
      this.#pending = EMPTY
      throw new ToolsListFilterError('An SSE event is too large to filter')
    }
    if (out === undefined) return undefined
    return out.length === 1 ? out[0] : Buffer.concat(out)
  }

  /** The stream ended: an unfinished event is still filtered (some parsers dispatch it), then sent. */
  end (): Buffer | undefined {
    const rest = this.#pending
    this.#pending = EMPTY
    this.#scan = 0
    this.#lineStart = 0
    this.#afterBlankCR = false
    return rest.length === 0 ? undefined : this.#event(rest)
  }

  #event (bytes: Buffer): Buffer {
    let text = bytes.toString('utf8')
    let bom = ''
    if (this.#first) {
      this.#first = false
      if (text.charCodeAt(0) === 0xfeff) {
        bom = '\ufeff'
        text = text.slice(1)
      }
    }
    // The line ends after the last field (its own and the blank line's, however split) are kept as sent.
    let end = text.length
    while (end > 0 && (text.charCodeAt(end - 1) === LF || text.charCodeAt(end - 1) === CR)) end--
    const lines = text.slice(0, end).split(LINE_RE)
    let data: string | undefined
    for (const l of lines) {
      let v: string | undefined
      if (l === 'data') v = ''
      else if (l.startsWith('data:')) v = l.charCodeAt(5) === 0x20 ? l.slice(6) : l.slice(5)
      if (v !== undefined) data = data === undefined ? v : data + '\n' + v
    }
    if (data === undefined) return bytes
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return bytes
    }
    if (!filterValue(value, this.#ids, this.#allowed)) return bytes
    const eol = text.includes('\r\n') ? '\r\n' : (text.includes('\r') && !text.includes('\n')) ? '\r' : '\n'
    const kept: string[] = []
    let placed = false
    for (const l of lines) {
      if (l === 'data' || l.startsWith('data:')) {
        if (!placed) kept.push('data: ' + JSON.stringify(value))
        placed = true
      } else {
        kept.push(l)
      }
    }
    return Buffer.from(bom + kept.join(eol) + text.slice(end), 'utf8')
  }
}

/** {@link ToolsListSseFilter} as a Transform stream. */
export class ToolsListSseTransform extends Transform {
  readonly #filter: ToolsListSseFilter

  constructor (ids: ToolsListIds, allowed: (name: string) => boolean, maxEventBytes = MAX_TOOLS_LIST_RESPONSE_BYTES) {
    super()
    this.#filter = new ToolsListSseFilter(ids, allowed, maxEventBytes)
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      cb(null, this.#filter.write(chunk))
    } catch (err) {
      cb(err as Error)
    }
  }

  override _flush (cb: TransformCallback): void {
    cb(null, this.#filter.end())
  }
}
