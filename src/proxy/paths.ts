/**
 * Request-path safety. A path that any hop could normalise to somewhere else
 * (`..`, `.`, encoded slashes or backslashes, NUL) is refused before anything
 * is proxied, because the upstream may resolve it outside the route.
 */

/** Why a path was refused; undefined when it is safe. `bad_encoding` is a 400, the rest are 404s. */
export type PathProblem = 'traversal' | 'bad_encoding' | undefined

function decodeOnce (s: string): string | null {
  try {
    return decodeURIComponent(s)
  } catch {
    return null
  }
}

/** Check the path part of a request URL (no query). */
export function checkPath (path: string): PathProblem {
  // Only origin-form is proxied (RFC 9112 §3.2.1). The router matches an absolute-form target
  // (`GET http://host/mcp`) by its path, but the URL mapped upstream would keep scheme and host.
  if (path.charCodeAt(0) !== 47) return 'traversal'
  // Fast path: nothing encoded and no dot-segment or backslash anywhere.
  if (!path.includes('%') && !path.includes('/.') && !path.includes('\\')) return undefined
  if (path.includes('\\')) return 'traversal'
  for (const raw of path.split('/')) {
    if (raw === '') continue
    let seg = raw
    // Decode up to twice: double-encoded dots (%252e) are a classic bypass.
    for (let i = 0; i < 2 && seg.includes('%'); i++) {
      const d = decodeOnce(seg)
      if (d === null) return i === 0 ? 'bad_encoding' : 'traversal'
      seg = d
    }
    // Servlet containers drop path parameters before resolving dot-segments: `..;x` is `..` there.
    const semi = seg.indexOf(';')
    const bare = semi === -1 ? seg : seg.slice(0, semi)
    if (bare === '.' || bare === '..') return 'traversal'
    if (seg.includes('/') || seg.includes('\\') || seg.includes('\0')) return 'traversal'
  }
  return undefined
}

/** Split a raw request URL into path and query (without `?`). */
export function splitUrl (url: string): { path: string, query: string } {
  const q = url.indexOf('?')
  return q === -1 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) }
}

/** True when the query string percent-decodes; the proxy library decodes the whole target URL and would fail later. */
export function queryDecodable (query: string): boolean {
  if (!query.includes('%')) return true
  try {
    decodeURIComponent(query)
    return true
  } catch {
    return false
  }
}
