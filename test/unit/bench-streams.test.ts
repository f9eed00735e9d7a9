/**
 * How many idle streams the bench measures when the asked N does not fit the
 * fd limit (bench/lib/streaming.ts feasibleStreams).
 */
import t from 'tap'
import { feasibleStreams } from '../../bench/lib/streaming.js'

t.test('feasibleStreams: two descriptors per stream in the gateway, its own count plus 16 kept free, steps of 25', async (t) => {
  // [limit, gateway's own fds (undefined: not read yet), upstream fds, largest N, fallback N]
  const cases: Array<[number, number | undefined, number, number, number]> = [
    // This VM: hard limit 20,000, a fresh gateway holds 21 (2 * 9,981 + 21 + 16 = 19,999).
    [20_000, 21, 30, 9_981, 9_975],
    // Before any N ran: 256 assumed for the gateway's own descriptors.
    [20_000, undefined, 30, 9_872, 9_850],
    // A raised limit: 10,000 fits, so it is measured as asked.
    [65_536, 21, 30, 32_749, 32_725],
    // The upstream is the tighter one.
    [4_096, 21, 2_100, 1_980, 1_975],
    // Nothing fits.
    [20, 21, 30, 0, 0]
  ]
  for (const [limit, gw, up, max, fallback] of cases) {
    const r = feasibleStreams(limit, gw, up)
    t.equal(r.feasibleMax, max, `limit ${limit}, gateway ${String(gw)}, upstream ${up}: largest N`)
    t.equal(r.fallback, fallback, `limit ${limit}, gateway ${String(gw)}, upstream ${up}: fallback N`)
    t.equal(r.gwReserved, gw === undefined ? 256 : gw + 16, 'descriptors reserved besides the streams')
    t.ok(r.feasibleMax === 0 || 2 * r.feasibleMax + r.gwReserved <= limit, 'the gateway stays under the limit')
  }
})
