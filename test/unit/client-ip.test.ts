/**
 * trustProxy → the client IP (for per-IP rate limits) and the X-Forwarded-For
 * chain sent upstream. Each row: the setting, the socket address, the
 * X-Forwarded-For the request arrived with, and what the gateway must believe.
 */
import t from 'tap'

import { compileClientAddress, parseForwardedAddress, type TrustProxy } from '../../src/proxy/client-ip.js'
import { checkTrustedRange } from '../../src/config/values.js'

interface Row {
  name: string
  trust: TrustProxy
  socket: string | undefined
  xff?: string | string[]
  ip: string
  forwardedFor: string
}

const rows: Row[] = [
  // false (the default): the header is never read, whatever it says.
  { name: 'false: a forged X-Forwarded-For is ignored', trust: false, socket: '203.0.113.9', xff: '6.6.6.6', ip: '203.0.113.9', forwardedFor: '203.0.113.9' },
  { name: 'false: an IPv4 client on a dual-stack socket is its IPv4 address', trust: false, socket: '::ffff:203.0.113.9', ip: '203.0.113.9', forwardedFor: '203.0.113.9' },
  { name: 'false: IPv6 socket kept', trust: false, socket: '2001:db8::7', ip: '2001:db8::7', forwardedFor: '2001:db8::7' },
  { name: 'false: no socket address (closed socket)', trust: false, socket: undefined, ip: 'unknown', forwardedFor: 'unknown' },
  // true: every hop is believed; the leftmost entry is the client.
  { name: 'true: the leftmost entry is the client, the chain is kept', trust: true, socket: '10.0.0.1', xff: '6.6.6.6, 1.2.3.4', ip: '6.6.6.6', forwardedFor: '6.6.6.6, 1.2.3.4, 10.0.0.1' },
  { name: 'true: no header, the socket is the client', trust: true, socket: '10.0.0.1', ip: '10.0.0.1', forwardedFor: '10.0.0.1' },
  { name: 'true: a non-address entry stops the walk at the last address', trust: true, socket: '10.0.0.1', xff: 'garbage, 1.2.3.4', ip: '1.2.3.4', forwardedFor: '1.2.3.4, 10.0.0.1' },
  { name: 'true: "unknown" entries are not addresses', trust: true, socket: '10.0.0.1', xff: 'unknown', ip: '10.0.0.1', forwardedFor: '10.0.0.1' },
  // A hop count: that many proxies in front of the gateway.
  { name: '1 hop: the entry the load balancer wrote is the client; entries left of it are dropped', trust: 1, socket: '10.0.0.1', xff: '6.6.6.6, 1.2.3.4', ip: '1.2.3.4', forwardedFor: '1.2.3.4, 10.0.0.1' },
  { name: '2 hops', trust: 2, socket: '10.0.0.1', xff: '6.6.6.6, 1.2.3.4, 10.0.0.2', ip: '1.2.3.4', forwardedFor: '1.2.3.4, 10.0.0.2, 10.0.0.1' },
  { name: '3 hops but only 2 entries: the leftmost', trust: 3, socket: '10.0.0.1', xff: '6.6.6.6, 1.2.3.4', ip: '6.6.6.6', forwardedFor: '6.6.6.6, 1.2.3.4, 10.0.0.1' },
  { name: '1 hop, no header: the socket', trust: 1, socket: '10.0.0.1', ip: '10.0.0.1', forwardedFor: '10.0.0.1' },
  { name: '1 hop, repeated header lines are one list', trust: 1, socket: '10.0.0.1', xff: ['6.6.6.6', '1.2.3.4'], ip: '1.2.3.4', forwardedFor: '1.2.3.4, 10.0.0.1' },
  // CIDR ranges: hops inside them are proxies.
  { name: 'ranges: walk through trusted proxies to the first untrusted address', trust: ['10.0.0.0/8'], socket: '10.0.0.1', xff: '6.6.6.6, 198.51.100.7, 10.2.2.2', ip: '198.51.100.7', forwardedFor: '198.51.100.7, 10.2.2.2, 10.0.0.1' },
  { name: 'ranges: a client that reaches the gateway directly cannot choose its IP', trust: ['10.0.0.0/8'], socket: '203.0.113.9', xff: '10.9.9.9, 1.1.1.1', ip: '203.0.113.9', forwardedFor: '203.0.113.9' },
  { name: 'ranges: a forged entry inside the trusted range is passed over only up to the real client', trust: ['10.0.0.0/8'], socket: '10.0.0.1', xff: '10.6.6.6, 198.51.100.7', ip: '198.51.100.7', forwardedFor: '198.51.100.7, 10.0.0.1' },
  { name: 'ranges: a single address', trust: ['192.0.2.10'], socket: '192.0.2.10', xff: '198.51.100.7', ip: '198.51.100.7', forwardedFor: '198.51.100.7, 192.0.2.10' },
  { name: 'ranges: the loopback proxy on a dual-stack socket', trust: ['127.0.0.0/8'], socket: '::ffff:127.0.0.1', xff: '198.51.100.7', ip: '198.51.100.7', forwardedFor: '198.51.100.7, 127.0.0.1' },
  { name: 'ranges: IPv6', trust: ['fd00::/8'], socket: 'fd00::1', xff: '2001:db8::5', ip: '2001:db8::5', forwardedFor: '2001:db8::5, fd00::1' },
  { name: 'ranges: entries with ports and brackets', trust: ['10.0.0.0/8'], socket: '10.0.0.1', xff: '[2001:DB8::5]:443, 10.0.0.3:8080', ip: '2001:db8::5', forwardedFor: '2001:db8::5, 10.0.0.3, 10.0.0.1' },
  { name: 'ranges: all entries trusted, the leftmost stands', trust: ['10.0.0.0/8'], socket: '10.0.0.1', xff: '10.0.0.5', ip: '10.0.0.5', forwardedFor: '10.0.0.5, 10.0.0.1' }
]

for (const row of rows) {
  t.test(row.name, async (t) => {
    const resolve = compileClientAddress(row.trust)
    const got = resolve(row.socket, row.xff)
    t.equal(got.ip, row.ip, 'client IP')
    t.equal(got.forwardedFor, row.forwardedFor, 'X-Forwarded-For sent upstream')
  })
}

t.test('parseForwardedAddress: addresses, ports and brackets; anything else is not an address', async (t) => {
  const table: Array<[string, string | undefined]> = [
    ['192.0.2.1', '192.0.2.1'],
    [' 192.0.2.1 ', '192.0.2.1'],
    ['192.0.2.1:4711', '192.0.2.1'],
    ['2001:db8::1', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:db8::1]:4711', '2001:db8::1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['unknown', undefined],
    ['', undefined],
    ['[2001:db8::1', undefined],
    ['example.com', undefined],
    ['300.1.1.1', undefined],
    ['_hidden', undefined]
  ]
  for (const [input, want] of table) t.equal(parseForwardedAddress(input), want, JSON.stringify(input))
})

t.test('checkTrustedRange: CIDR ranges and addresses are accepted, anything else is named', async (t) => {
  const table: Array<[string, RegExp | undefined]> = [
    ['10.0.0.0/8', undefined],
    ['192.0.2.7', undefined],
    ['0.0.0.0/0', undefined],
    ['fd00::/8', undefined],
    ['::1', undefined],
    ['10.0.0.0/33', /prefix length: must be 0–32/],
    ['fd00::/129', /prefix length: must be 0–128/],
    ['10.0.0.0/x', /prefix length/],
    ['10.0.0.0/', /prefix length/],
    ['loopback', /not an IP address or CIDR range/],
    ['10.0.0/8', /not an IP address or CIDR range/]
  ]
  for (const [input, want] of table) {
    const got = checkTrustedRange(input)
    if (want === undefined) t.equal(got, undefined, `${input} accepted`)
    else t.match(got, want, `${input} refused`)
  }
})

t.test('forwardedFor: the value alone; undefined without a socket address', async (t) => {
  for (const trust of [false, true, 1, ['10.0.0.0/8']] as TrustProxy[]) {
    const resolve = compileClientAddress(trust)
    t.equal(resolve.forwardedFor('10.0.0.1', '198.51.100.7'), resolve('10.0.0.1', '198.51.100.7').forwardedFor, `${JSON.stringify(trust)}: same chain as the full resolver`)
    t.equal(resolve.forwardedFor(undefined, '198.51.100.7'), undefined, `${JSON.stringify(trust)}: no socket, no header`)
  }
})
