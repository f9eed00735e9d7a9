/**
 * The client's IP address and the X-Forwarded-For chain sent upstream, from
 * the socket address and the X-Forwarded-For header, under the `trustProxy`
 * setting. Pure: no sockets, no fastify.
 *
 * X-Forwarded-For is a list each proxy appends the address it saw to, so only
 * the entries written by proxies the gateway trusts are believable; anything
 * to their left was written by the client and may be forged. The walk starts
 * at the socket (the nearest hop) and moves left while the current hop is
 * trusted; the first untrusted address is the client (the proxy-addr rule
 * Express and Fastify use).
 */
import { BlockList, isIP } from 'node:net'

/**
 * Normalised `trustProxy`: `false` trusts no proxy (the socket address is the
 * client); `true` trusts every hop (the leftmost address is the client); a
 * number trusts that many hops counted from the gateway; a list trusts hops
 * whose address is in one of the CIDR ranges (or single addresses).
 */
export type TrustProxy = boolean | number | readonly string[]

/** The client address and the forwarding chain from it to the gateway. */
export interface ClientAddress {
  /** The client's IP: the socket address, or the first untrusted X-Forwarded-For entry. */
  readonly ip: string
  /** X-Forwarded-For for the upstream: the client, the trusted proxies between, then the socket address. */
  readonly forwardedFor: string
}

/** Resolve the client of one request from its socket address and X-Forwarded-For value(s). */
export interface ClientAddressResolver {
  (socketAddress: string | undefined, xForwardedFor: string | string[] | undefined): ClientAddress
  /**
   * Only the X-Forwarded-For value to send upstream (the forwarding path:
   * with `trustProxy: false` no header is parsed and nothing is allocated);
   * undefined when the socket has no address any more.
   */
  forwardedFor: (socketAddress: string | undefined, xForwardedFor: string | string[] | undefined) => string | undefined
}

/** Socket address when Node reports none (the socket is already closed). */
const UNKNOWN = 'unknown'

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) is the IPv4 address. */
function unmap (ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip
}

/**
 * One X-Forwarded-For entry as an IP address, or undefined when it is not one.
 * Tolerates a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`) and brackets,
 * which some load balancers write.
 */
export function parseForwardedAddress (entry: string): string | undefined {
  let s = entry.trim()
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close === -1) return undefined
    s = s.slice(1, close)
  } else if (s.indexOf(':') !== -1 && s.indexOf(':') === s.lastIndexOf(':')) {
    // One colon: an IPv4 address with a port.
    s = s.slice(0, s.indexOf(':'))
  }
  const v = isIP(s)
  if (v === 0) return undefined
  return v === 6 ? unmap(s.toLowerCase()) : s
}

/** trustProxy's ranges, already checked at config load (config/values.ts checkTrustedRange). */
function compileRanges (ranges: readonly string[]): BlockList {
  const list = new BlockList()
  for (const r of ranges) {
    const slash = r.indexOf('/')
    const addr = slash === -1 ? r : r.slice(0, slash)
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (slash === -1) list.addAddress(unmap(addr), type)
    else list.addSubnet(addr, Number(r.slice(slash + 1)), type)
  }
  return list
}

/**
 * Compile `trustProxy` once at startup. With `false` (the default) the
 * header is never read: a client cannot choose its own address.
 */
export function compileClientAddress (trust: TrustProxy): ClientAddressResolver {
  if (trust === false) {
    const socketOnly = ((socketAddress: string | undefined): ClientAddress => {
      const ip = socketAddress === undefined ? UNKNOWN : unmap(socketAddress)
      return { ip, forwardedFor: ip }
    }) as unknown as ClientAddressResolver
    socketOnly.forwardedFor = (socketAddress) => socketAddress === undefined ? undefined : unmap(socketAddress)
    return socketOnly
  }
  let trusted: (address: string, hop: number) => boolean
  if (trust === true) trusted = () => true
  else if (typeof trust === 'number') trusted = (_a, hop) => hop < trust
  else {
    const list = compileRanges(trust)
    trusted = (a) => list.check(a, isIP(a) === 6 ? 'ipv6' : 'ipv4')
  }
  const resolve = ((socketAddress: string | undefined, xff: string | string[] | undefined): ClientAddress => {
    const socket = socketAddress === undefined ? UNKNOWN : unmap(socketAddress)
    // The chain, nearest hop first: the socket, then X-Forwarded-For from right to left.
    const chain = [socket]
    if (xff !== undefined && socket !== UNKNOWN) {
      const entries = (Array.isArray(xff) ? xff.join(',') : xff).split(',')
      for (let i = entries.length - 1; i >= 0 && trusted(chain[chain.length - 1]!, chain.length - 1); i--) {
        const next = parseForwardedAddress(entries[i]!)
        // Not an address: nothing to its left can be believed; the last trusted hop stands.
        if (next === undefined) break
        chain.push(next)
      }
    }
    const ip = chain[chain.length - 1]!
    let forwardedFor = ip
    for (let i = chain.length - 2; i >= 0; i--) forwardedFor += ', ' + chain[i]!
    return { ip, forwardedFor }
  }) as unknown as ClientAddressResolver
  resolve.forwardedFor = (socketAddress, xff) => socketAddress === undefined ? undefined : resolve(socketAddress, xff).forwardedFor
  return resolve
}
