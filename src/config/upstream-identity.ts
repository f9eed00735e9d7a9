/**
 * Normalisation of the identity-assertion and upstream-credential settings
 * (routes[].identityAssertion, routes[].upstreamAuth, signingKeys,
 * signingAlgorithm), called by load.ts. Kept apart so load.ts stays the
 * pipeline; the same `path: what: rule` messages and warnings apply.
 */
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import * as D from './defaults.js'
import { parsePrivateKey, thumbprint } from './signing-key.js'
import type { RawConfig, RawRoute, RawSecretRef } from './schema.js'
import type { IdentityAssertionConfig, RouteConfig, SigningKeyConfig, UpstreamAuthConfig } from './types.js'

export interface IdentityContext {
  readonly baseDir: string
  readonly warnings: string[]
  readonly problems: string[]
  /** load.ts's secret resolver (`{ fromEnv }` / `{ fromFile }`); reports its own problems. */
  readonly resolveSecret: (ref: RawSecretRef, where: string) => string
}

/** A header value the gateway may send: visible ASCII, spaces and tabs (RFC 9110 §5.5), never CR or LF. */
const HEADER_VALUE_RE = /^[\x20-\x7e\t]+$/

export function normaliseIdentityAssertion (raw: RawRoute['identityAssertion'], upstreamOrigin: string): IdentityAssertionConfig | undefined {
  if (raw === undefined) return undefined
  return Object.freeze({
    audience: raw.audience ?? upstreamOrigin,
    ttlSeconds: raw.ttlSeconds ?? D.DEFAULT_ASSERTION_TTL_SECONDS,
    header: (raw.header ?? D.DEFAULT_ASSERTION_HEADER).toLowerCase(),
    reuse: raw.reuse ?? false
  })
}

export function normaliseUpstreamAuth (raw: RawRoute['upstreamAuth'], where: string, ctx: IdentityContext): UpstreamAuthConfig {
  if (raw === undefined || raw.type === 'none') return Object.freeze({ type: 'none' })
  const header = (raw.name ?? D.DEFAULT_UPSTREAM_AUTH_HEADER).toLowerCase()
  if (raw.type === 'header') {
    const value = ctx.resolveSecret(raw.value!, `${where}.value`)
    if (value !== '' && !HEADER_VALUE_RE.test(value)) ctx.problems.push(`${where}.value: not a valid header value: it must be visible ASCII, spaces or tabs, on one line`)
    return Object.freeze({ type: 'header', header, value })
  }
  if (raw.tokenEndpoint!.startsWith('http:')) ctx.warnings.push(`${where}.tokenEndpoint uses plain http on loopback: acceptable for development only`)
  return Object.freeze({
    type: raw.type,
    header,
    tokenEndpoint: raw.tokenEndpoint!,
    clientId: raw.clientId!,
    clientSecret: ctx.resolveSecret(raw.clientSecret!, `${where}.clientSecret`),
    authMethod: raw.authMethod ?? D.DEFAULT_UPSTREAM_AUTH_METHOD,
    scope: raw.scope === undefined ? undefined : typeof raw.scope === 'string' ? raw.scope : [...new Set(raw.scope)].join(' '),
    resource: raw.resource,
    audience: raw.audience,
    timeoutMs: (raw.timeoutSeconds ?? D.DEFAULT_UPSTREAM_AUTH_TIMEOUT_SECONDS) * 1000
  })
}

/** Problems with the names of the headers the gateway sets on route `i` (all case-insensitive). */
export function gatewayHeaderClashes (r: RouteConfig, identity: readonly string[], claims: readonly string[], i: number): string[] {
  const out: string[] = []
  const taken = new Set([...identity, ...claims])
  const assertion = r.identityAssertion?.header
  const credential = r.upstreamAuth.type === 'none' ? undefined : r.upstreamAuth.header
  if (assertion !== undefined && taken.has(assertion)) out.push(`routes[${i}].identityAssertion.header: the name of an identity or claim header: each header the gateway sets needs its own name`)
  if (credential !== undefined && taken.has(credential)) out.push(`routes[${i}].upstreamAuth.name: the name of an identity or claim header: each header the gateway sets needs its own name`)
  if (assertion !== undefined && assertion === credential) out.push(`routes[${i}].upstreamAuth.name: the name of the assertion header: the assertion and the upstream credential need distinct headers`)
  return out
}

/**
 * Read and check the signing keys. Without keys, a route that signs
 * assertions makes the gateway generate one at start: warned about here.
 */
export function normaliseSigning (raw: RawConfig, routes: readonly RouteConfig[], ctx: IdentityContext): { readonly algorithm: string, readonly keys: readonly SigningKeyConfig[] } {
  const algorithm = raw.signingAlgorithm ?? D.DEFAULT_SIGNING_ALGORITHM
  const keys: SigningKeyConfig[] = []
  const kids = new Map<string, number>()
  ;(raw.signingKeys ?? []).forEach((entry, i) => {
    const where = `signingKeys[${i}].file`
    const file = isAbsolute(entry.file) ? entry.file : resolve(ctx.baseDir, entry.file)
    let bytes: Buffer
    try {
      bytes = readFileSync(file)
    } catch (err) {
      ctx.problems.push(`${where}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): the file must exist and be readable`)
      return
    }
    try {
      // A private key readable by group/others can be copied by every local account.
      if ((statSync(file).mode & 0o077) !== 0) ctx.warnings.push(`${where}: ${file} is readable by group or others: restrict it to mode 0600`)
    } catch { /* already read: a stat failure changes nothing */ }
    const parsed = parsePrivateKey(bytes, algorithm)
    if ('problem' in parsed) {
      ctx.problems.push(`${where}: ${parsed.problem}`)
      return
    }
    const kid = entry.kid ?? parsed.kid ?? thumbprint(parsed.key)
    const prev = kids.get(kid)
    if (prev !== undefined) ctx.problems.push(`signingKeys[${i}].kid: duplicate of signingKeys[${prev}]'s kid: each key needs its own kid`)
    else kids.set(kid, i)
    keys.push(Object.freeze({ kid, privateKey: parsed.key }))
  })
  const signing = routes.filter((r) => r.identityAssertion !== undefined).map((r) => r.path)
  if (signing.length > 0 && raw.signingKeys === undefined) {
    ctx.warnings.push(`signingKeys is not set: routes ${signing.join(', ')} sign identity assertions with a ${algorithm} key generated at start: replicas will disagree (each signs with its own key and publishes only that one) and every restart changes it; set signingKeys when running several replicas`)
  }
  return Object.freeze({ algorithm, keys: Object.freeze(keys) })
}
