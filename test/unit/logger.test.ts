/**
 * The access logger's cached timestamp: same text as pino's isoTime, one Date per millisecond.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { LOG_BUFFER_BYTES } from '../../src/config/defaults.js'
import { createLoggers, isoTimeCached, LineBatch } from '../../src/observability/logger.js'

t.test('isoTimeCached has the shape of pino isoTime and follows the clock', async (t) => {
  const a = isoTimeCached()
  t.match(a, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/)
  const parsed = Date.parse(a.slice(9, -1))
  t.ok(Math.abs(parsed - Date.now()) < 50, 'the current time')
  await new Promise((resolve) => setTimeout(resolve, 5))
  const b = isoTimeCached()
  t.ok(Date.parse(b.slice(9, -1)) > parsed, 'a later millisecond gives a later time')
  // Across many milliseconds and seconds: always exactly Date#toISOString of the time it names.
  const seen = new Set<string>()
  const wrong: string[] = []
  const until = Date.now() + 1200
  while (Date.now() < until) {
    const v = isoTimeCached()
    if (seen.has(v)) continue
    seen.add(v)
    const iso = v.slice(9, -1)
    if (new Date(Date.parse(iso)).toISOString() !== iso) wrong.push(iso)
  }
  t.same(wrong, [], 'every value is exactly the ISO time it names')
  t.ok(seen.size > 500, `many distinct milliseconds checked (${seen.size})`)
  t.ok(new Set([...seen].map((v) => v.slice(9, 28))).size >= 2, 'across a second boundary')
})

t.test('request lines carry an ISO time', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb() } })
  const { access, close } = createLoggers('info', sink)
  access.info({ route: '/mcp' }, 'request')
  close()
  const rec = JSON.parse(lines.join('').trim()) as { time: string, msg: string }
  t.equal(rec.msg, 'request')
  t.ok(Math.abs(Date.parse(rec.time) - Date.now()) < 1000, `time ${rec.time} is now`)
})

t.test('requestLine writes the line pino would write, for any field content', async (t) => {
  const base = { reqId: 'req-1', route: '/mcp', method: 'POST', path: '/mcp', status: 200, subject: 'alice', clientId: 'c1', issuer: 'https://as.example.com', outcome: 'ok', durationMs: 1.23 }
  const rows: Array<{ name: string, line: typeof base | Record<string, unknown>, lossless?: true }> = [
    { name: 'plain ASCII', line: base },
    { name: 'quotes and backslashes', line: { ...base, subject: 'a"b\\c', path: '/mcp/"x"' } },
    { name: 'control characters and a newline', line: { ...base, subject: 'line1\nline2\t\u0000\u001f', clientId: '\r' } },
    { name: 'non-ASCII and an emoji', line: { ...base, subject: 'Zoë 山田 🚀', issuer: 'https://ex.com/ü' } },
    // pino writes it raw (U+FFFD once encoded); JSON.stringify's escape keeps it (checked below).
    { name: 'a lone surrogate', line: { ...base, subject: 'x\ud800y' }, lossless: true },
    { name: 'DEL and U+2028', line: { ...base, subject: 'a\u007fb\u2028c' } },
    { name: 'undefined identity fields are left out', line: { ...base, subject: undefined, clientId: undefined, issuer: undefined } },
    { name: 'null route and status (client left; outside the routes)', line: { ...base, route: null, status: null, outcome: 'client_closed' } },
    { name: 'integer and fractional durations', line: { ...base, durationMs: 0 } },
    { name: 'long fractional duration', line: { ...base, durationMs: 12345.67 } }
  ]
  for (const row of rows) {
    const mine: string[] = []
    const theirs: string[] = []
    const a = createLoggers('info', new Writable({ write (chunk: Buffer, _e, cb) { mine.push(chunk.toString()); cb() } }))
    const b = createLoggers('info', new Writable({ write (chunk: Buffer, _e, cb) { theirs.push(chunk.toString()); cb() } }))
    a.requestLine(row.line as Parameters<typeof a.requestLine>[0])
    b.access.info(row.line, 'request')
    a.close()
    b.close()
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(mine.length, 1, `${row.name}: one write`)
    const text = mine.join('')
    t.ok(text.endsWith('\n') && text.indexOf('\n') === text.length - 1, `${row.name}: exactly one line`)
    const got = JSON.parse(text) as Record<string, unknown>
    const want = JSON.parse(theirs.join('')) as Record<string, unknown>
    delete got.time
    delete want.time
    if (row.lossless === true) {
      t.equal(got.subject, row.line.subject, `${row.name}: kept as sent`)
      delete got.subject
      delete want.subject
    }
    t.same(got, want, `${row.name}: the same record as pino's`)
    t.same(Object.keys(got), Object.keys(want), `${row.name}: the same field order`)
  }
})

t.test('requestLine follows the access logger level, also when it changes (SIGHUP)', async (t) => {
  const lines: string[] = []
  const l = createLoggers('warn', new Writable({ write (chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb() } }))
  const line = { reqId: 'req-1', route: '/mcp', method: 'POST', path: '/mcp', status: 200, subject: undefined, clientId: undefined, issuer: undefined, outcome: 'ok', durationMs: 1 }
  l.requestLine(line)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(lines.length, 0, 'not written at level warn')
  l.access.level = 'info'
  l.requestLine(line)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(lines.length, 1, 'written once the level is info')
  l.access.level = 'silent'
  l.requestLine(line)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(lines.length, 1, 'not written when silent')
  l.close()
})

/**
 * Run a script in a plain child Node (with tsx) and return its exit status and stdout. tap's
 * NODE_OPTIONS (its process-info hooks) are left out: they add exit handlers of their own.
 */
async function runChild (script: string, env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null, stdout: string }> {
  const { spawn } = await import('node:child_process')
  const plain = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS') && !k.startsWith('TAP')))
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000, env: { ...plain, ...env } })
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.on('error', reject).on('close', (status) => { resolve({ status, stdout }) })
  })
}

/** Order of the lines written by the child scripts below: the request number, or the marker's `after`. */
function lineOrder (text: string): Array<{ msg: string, n: number }> {
  return text.split('\n').filter((l) => l !== '').map((l) => {
    const o = JSON.parse(l) as { msg: string, reqId?: string, after?: number }
    return { msg: o.msg, n: o.msg === 'marker' ? o.after! : Number(o.reqId!.slice(4)) }
  })
}

const loggerModule = new URL('../../src/observability/logger.ts', import.meta.url)
const auditModule = new URL('../../src/observability/audit.ts', import.meta.url)

/**
 * Logs `lines` request lines (and a warning after every 100th) through stdout's loggers, and through
 * an audit file too when one is given. `busyPool` first occupies libuv's thread pool (one thread,
 * UV_THREADPOOL_SIZE=1) with a long pbkdf2, so any write or open queued there is still pending at exit.
 */
function loggingScript (lines: number, ending: string, auditFile?: string, busyPool = false): string {
  return `
    const { fileURLToPath } = await import('node:url')
    const { createLoggers } = await import(fileURLToPath(${JSON.stringify(loggerModule.href)}))
    const { openAuditLog } = await import(fileURLToPath(${JSON.stringify(auditModule.href)}))
    const l = createLoggers('info')
    const audit = ${auditFile === undefined ? 'undefined' : `openAuditLog({ file: ${JSON.stringify(auditFile)} }, l)`}
    ${busyPool ? ";(await import('node:crypto')).pbkdf2('x', 'y', 2_000_000, 32, 'sha256', () => {})" : ''}
    for (let i = 0; i < ${lines}; i++) {
      l.requestLine({ reqId: 'req-' + i, route: '/mcp', method: 'POST', path: '/mcp', status: 200, subject: undefined, clientId: undefined, issuer: undefined, outcome: 'ok', durationMs: 1 })
      audit?.logger.info({ reqId: 'req-' + i }, 'request')
      if (i % 100 === 99) l.logger.warn({ after: i }, 'marker')
    }
    ${ending}
  `
}

t.test('stdout lines are batched in order, and none is lost when the process exits without close()', async (t) => {
  // Two loggers' lines interleaved (warn through `logger`, request lines through `requestLine`);
  // then either process.exit() (the exit hook drains the batch) or the event loop simply ends.
  for (const ending of ['process.exit(0)', 'undefined']) {
    const r = await runChild(loggingScript(500, ending))
    t.equal(r.status, 0, `${ending}: exit 0`)
    const lines = lineOrder(r.stdout)
    t.equal(lines.filter((l) => l.msg === 'request').length, 500, `${ending}: every request line was written`)
    t.equal(lines.filter((l) => l.msg === 'marker').length, 5, `${ending}: every warning was written`)
    const order = lines.map((l) => l.n)
    t.same(order, [...order].sort((a, b) => a - b), `${ending}: in the order they were logged`)
  }
})

// Regression (CI at 5fb3ddb): stdout and audit files went through asynchronous sonic-booms. When
// process.exit() came while a batch was being written on libuv's thread pool, the exit flush wrote
// the later lines synchronously first (330…, then 0…329: 9 of 100 runs here with 500 lines), or the
// batch was lost; an audit file whose asynchronous open had not completed lost every line (and the
// exit handler threw "sonic boom is not ready yet"). A busy thread pool makes that certain: with
// the asynchronous writers the busy case failed on stdout and on the audit file, every time.
t.test('regression: process.exit() while the thread pool is busy loses no line and keeps the order (stdout and an audit file)', async (t) => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'gw-log-order-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // One batch is LOG_BUFFER_BYTES of ~196-byte lines (~335): a full batch and a few more lines, then exit at once.
  const lines = Math.ceil(LOG_BUFFER_BYTES / 196) + 5
  const expected = Array.from({ length: lines }, (_, n) => n)
  for (const busyPool of [true, false]) {
    const file = join(dir, `audit-${String(busyPool)}.log`)
    const r = await runChild(loggingScript(lines, 'process.exit(0)', file, busyPool), { UV_THREADPOOL_SIZE: '1' })
    const name = busyPool ? 'thread pool busy' : 'thread pool idle'
    t.equal(r.status, 0, `${name}: exit 0`)
    const stdout = lineOrder(r.stdout).filter((l) => l.msg === 'request').map((l) => l.n)
    t.same(stdout, expected, `${name}: every stdout request line, in order`)
    t.equal(lineOrder(r.stdout).filter((l) => l.msg === 'marker').length, Math.floor(lines / 100), `${name}: every warning`)
    t.same(lineOrder(readFileSync(file, 'utf8')).map((l) => l.n), expected, `${name}: every audit line, in order`)
  }
})

t.test('LineBatch hands on every line byte for byte, in order, in batches of at least LOG_BUFFER_BYTES', async (t) => {
  const out: string[] = []
  const b = new LineBatch({ write: (s: string) => { out.push(s) } })
  // Lines of every UTF-8 width (1–4 bytes), a lone surrogate (written as U+FFFD, as Buffer does),
  // and lines longer than the buffer (they bypass it, after what is batched).
  const long = 'L'.repeat(3 * LOG_BUFFER_BYTES) + '\n'
  const longWide = '€'.repeat(LOG_BUFFER_BYTES) + '\n'
  const cases: Array<[string, string[]]> = [
    ['ascii', Array.from({ length: 2000 }, (_, i) => `{"n":${i},"msg":"request"}\n`)],
    ['two-byte', Array.from({ length: 2000 }, (_, i) => `{"n":${i},"subject":"Zoë Ångström"}\n`)],
    ['three-byte', Array.from({ length: 2000 }, (_, i) => `{"n":${i},"subject":"雪€"}\n`)],
    ['four-byte', Array.from({ length: 2000 }, (_, i) => `{"n":${i},"subject":"🦊𝄞"}\n`)],
    ['long lines among short ones', ['a\n', long, 'b\n', longWide, 'c\n']],
    ['lone surrogate', ['x\ud800y\n']]
  ]
  for (const [name, lines] of cases) {
    out.length = 0
    for (const l of lines) b.write(l)
    b.drain()
    const expected = name === 'lone surrogate' ? ['x\ufffdy\n'] : lines
    t.equal(out.join(''), expected.join(''), `${name}: the same text, in order`)
    const sizes = out.map((s) => Buffer.byteLength(s))
    // Every batch but the last reached LOG_BUFFER_BYTES, unless a long line forced it out early.
    const short = sizes.slice(0, -1).filter((n, i) => n < LOG_BUFFER_BYTES && out[i + 1] !== long && out[i + 1] !== longWide)
    t.same(short, [], `${name}: no batch was written before it was full`)
    t.ok(out.length <= Math.ceil(sizes.reduce((a, n) => a + n, 0) / LOG_BUFFER_BYTES) + 2, `${name}: ${out.length} writes for ${lines.length} lines`)
  }
  out.length = 0
  b.drain()
  t.same(out, [], 'an empty batch writes nothing')
})

t.test('an audit file that cannot be reopened (its directory is gone) is logged, not thrown, and lines still go out', async (t) => {
  const { mkdirSync, mkdtempSync, readFileSync, rmSync, renameSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { openAuditLog } = await import('../../src/observability/audit.js')
  const base = mkdtempSync(join(tmpdir(), 'gw-audit-reopen-'))
  t.teardown(() => { rmSync(base, { recursive: true, force: true }) })
  const dir = join(base, 'logs')
  mkdirSync(dir)
  const file = join(dir, 'audit.log')
  const errors: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { errors.push(chunk.toString()); cb() } })
  const loggers = createLoggers('info', sink)
  const audit = openAuditLog({ file }, loggers)
  t.teardown(() => { audit.close() })
  audit.logger.info({ n: 1 }, 'before')
  // The directory is moved away: reopening the path fails with ENOENT.
  const moved = join(base, 'moved')
  renameSync(dir, moved)
  t.doesNotThrow(() => { audit.reopen() }, 'reopen() does not throw')
  await new Promise((resolve) => setImmediate(resolve))
  t.match(errors.join(''), /"code":"ENOENT".*"msg":"audit log write failed"/, 'the failure is logged with its code')
  audit.logger.info({ n: 2 }, 'after')
  audit.flush()
  const lines = readFileSync(join(moved, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { n: number })
  t.same(lines.map((l) => l.n), [1, 2], 'both lines reached the file open before')
})

t.test('an audit file on a full disk: the failure is logged, lines are held (up to LOG_MAX_HELD_BYTES) and written once the file works again, the rest counted', async (t) => {
  const { mkdtempSync, readFileSync, rmSync, symlinkSync, renameSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { LOG_MAX_HELD_BYTES } = await import('../../src/config/defaults.js')
  const { openAuditLog } = await import('../../src/observability/audit.js')
  const dir = mkdtempSync(join(tmpdir(), 'gw-audit-full-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // The configured path is a symlink to /dev/full (a real device: every write fails with ENOSPC);
  // later it is pointed at a real file and reopened, as after freeing the disk and a SIGHUP.
  const link = join(dir, 'audit.log')
  symlinkSync('/dev/full', link)
  const logs: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { logs.push(...chunk.toString().split('\n').filter((l) => l !== '')); cb() } })
  const loggers = createLoggers('info', sink)
  const audit = openAuditLog({ file: link }, loggers)
  t.teardown(() => { audit.close() })

  const pad = 'x'.repeat(1000)
  const n = Math.ceil((LOG_MAX_HELD_BYTES + 4 * 1048576) / 1000)
  t.doesNotThrow(() => {
    for (let i = 0; i < n; i++) audit.logger.info({ i, pad }, 'op')
    audit.flush()
    audit.flush()
  }, 'writing past the bound throws nothing')
  const failures = logs.filter((l) => l.includes('"msg":"audit log write failed"'))
  t.equal(failures.length, 1, 'the failure is logged once (at most once a minute)')
  t.match(failures[0], /"code":"ENOSPC"/, 'with its code')

  const real = join(dir, 'real.log')
  renameSync(join(dir, 'audit.log'), join(dir, 'old-link'))
  symlinkSync(real, link)
  audit.reopen()
  audit.logger.info({ i: -1 }, 'after')
  audit.flush()
  const resumed = logs.filter((l) => l.includes('"msg":"audit log writes resumed"'))
  t.equal(resumed.length, 1, 'the recovery is logged')
  const droppedBytes = (JSON.parse(resumed[0]!) as { droppedBytes: number }).droppedBytes
  const text = readFileSync(real, 'utf8').split('\n').filter((l) => l !== '')
  const lines = text.map((l) => (JSON.parse(l) as { i: number }).i)
  const held = lines.slice(0, -1)
  t.same(held, held.map((_, k) => k), 'the held lines reach the file, in order from the first')
  const heldBytes = text.slice(0, -1).reduce((sum, l) => sum + Buffer.byteLength(l) + 1, 0)
  t.ok(heldBytes <= LOG_MAX_HELD_BYTES && heldBytes >= LOG_MAX_HELD_BYTES - 2 * LOG_BUFFER_BYTES,
    `LOG_MAX_HELD_BYTES of them were held, within two batches (${heldBytes} bytes, ${held.length} lines)`)
  t.equal(lines[lines.length - 1], -1, 'a line logged after the recovery follows them')
  t.ok(droppedBytes >= (n - held.length) * 1000, `the lines past the bound are counted as dropped (${droppedBytes} bytes)`)
})
