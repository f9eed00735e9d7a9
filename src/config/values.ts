/**
 * Checks of single configured values that the modules compiling them share:
 * an allowed origin (allowedOrigins) and a trusted proxy range (trustProxy).
 * Here, in the config layer, so that validation never imports the layers above
 * it (policy/origin.ts, proxy/client-ip.ts use these, not the other way round).
 */
import { isIP } from 'node:net'

/** Configured in `allowedOrigins` to allow every origin; explicit only, with a startup warning. */
export const ANY_ORIGIN = '*'

/**
 * One configured origin in its serialised form (RFC 6454 §6.2), the form
 * browsers send: `scheme://host[:port]`, scheme and host lowercased, default
 * port dropped. A single trailing `/` is tolerated. Returns `{ problem }`
 * (`what: rule`) for anything else.
 */
export function normaliseOrigin (value: string): { origin: string } | { problem: string } {
  if (value === ANY_ORIGIN) return { origin: ANY_ORIGIN }
  if (value === 'null') return { problem: 'the opaque origin "null": sandboxed pages and file: URLs share it, so it cannot be allowed; list real origins' }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(\/?)$/.exec(value)
  if (m === null) return { problem: 'not an origin: an origin is scheme://host[:port] with no path, query or fragment, e.g. https://app.example.com' }
  const scheme = m[1]!.toLowerCase()
  if (m[2]!.includes('@')) return { problem: 'contains credentials: an origin is scheme://host[:port] only' }
  if (scheme === 'http' || scheme === 'https') {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      return { problem: 'not an origin: an origin is scheme://host[:port] with no path, query or fragment, e.g. https://app.example.com' }
    }
    if (url.hostname === '') return { problem: 'no host: an origin is scheme://host[:port]' }
    return { origin: url.origin }
  }
  // Other schemes (browser extensions, app webviews): compared as written, lowercased.
  if (m[2] === '') return { problem: 'no host: an origin is scheme://host[:port]' }
  return { origin: `${scheme}://${m[2]!.toLowerCase()}` }
}

/**
 * A CIDR range or a single address, as configured; returns a problem message
 * (`what: rule`) when it is not one.
 */
export function checkTrustedRange (value: string): string | undefined {
  const slash = value.indexOf('/')
  const addr = slash === -1 ? value : value.slice(0, slash)
  const v = isIP(addr)
  if (v === 0) return 'not an IP address or CIDR range: use e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8'
  if (slash === -1) return undefined
  const bits = value.slice(slash + 1)
  const max = v === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `invalid prefix length: must be 0–${max} for an IPv${v} range`
  return undefined
}
