/**
 * The access logger's cached timestamp: same text as pino's isoTime, one Date per millisecond.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { createLoggers, isoTimeCached } from '../../src/observability/logger.js'

t.test('isoTimeCached has the shape of pino isoTime and follows the clock', async (t) => {
  const a = isoTimeCached()
  t.match(a, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/)
  const parsed = Date.parse(a.slice(9, -1))
  t.ok(Math.abs(parsed - Date.now()) < 50, 'the current time')
  await new Promise((resolve) => setTimeout(resolve, 5))
  const b = isoTimeCached()
  t.ok(Date.parse(b.slice(9, -1)) > parsed, 'a later millisecond gives a later time')
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
