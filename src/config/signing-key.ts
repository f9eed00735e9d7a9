/**
 * Private signing keys as configured (signingKeys[].file): parsing a PEM or
 * JWK key file, checking it fits signingAlgorithm, and its RFC 7638
 * thumbprint as the default kid. Here, in the config layer, because config
 * loading reports a bad key (`--check`); identity/keys.ts builds the
 * gateway's signing keys and JWKS from what this returns.
 *
 * Synchronous on purpose: node:crypto parses keys without promises, so
 * config loading stays synchronous.
 */
import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { MIN_RSA_SIGNING_KEY_BITS } from './defaults.js'

/** EC curve per ES algorithm, as node:crypto names it (RFC 7518 §3.4). */
export const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }
const JWK_CURVES: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }

/** Why `key` cannot sign `alg`, or undefined when it can. */
export function keyMismatch (key: KeyObject, alg: string): string | undefined {
  const type = key.asymmetricKeyType
  const curve = EC_CURVES[alg]
  if (curve !== undefined) {
    if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== curve) return `${alg} needs an EC ${JWK_CURVES[alg]!} key, this is ${describe(key)}`
    return undefined
  }
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    if (type !== 'rsa') return `${alg} needs an RSA key, this is ${describe(key)}`
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
    if (bits < MIN_RSA_SIGNING_KEY_BITS) return `the RSA key has ${bits} bits, at least ${MIN_RSA_SIGNING_KEY_BITS} are needed`
    return undefined
  }
  if (alg === 'EdDSA') return type === 'ed25519' ? undefined : `EdDSA needs an Ed25519 key, this is ${describe(key)}`
  return `unsupported algorithm ${alg}`
}

const CURVE_NAMES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
const TYPE_NAMES: Readonly<Record<string, string>> = { ec: 'an EC', rsa: 'an RSA', 'rsa-pss': 'an RSA-PSS', ed25519: 'an Ed25519', ed448: 'an Ed448', x25519: 'an X25519', x448: 'an X448', dsa: 'a DSA', dh: 'a DH' }

function describe (key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown'
  const curve = key.asymmetricKeyDetails?.namedCurve
  return `${TYPE_NAMES[type] ?? `a ${type}`}${curve !== undefined ? ` ${CURVE_NAMES[curve] ?? curve}` : ''} key`
}

/** A parsed key file, or the reason it cannot be used (without the key material). */
export type ParsedKey = { readonly key: KeyObject, readonly kid: string | undefined } | { readonly problem: string }

/**
 * Parse a private key file's bytes: a JWK (JSON object with `d`) or PEM
 * (PKCS#8, SEC1, PKCS#1; not encrypted). The JWK's own `kid` is returned
 * for use when the config gives none; its `alg` and `use`, when present,
 * must agree with `alg` and signing.
 */
export function parsePrivateKey (bytes: Buffer, alg: string): ParsedKey {
  const text = bytes.toString('utf8').trim()
  let key: KeyObject
  let kid: string | undefined
  if (text.startsWith('{')) {
    let jwk: Record<string, unknown>
    try {
      jwk = JSON.parse(text) as Record<string, unknown>
    } catch {
      return { problem: 'not valid JSON: a JWK file must hold one private JWK object' }
    }
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return { problem: 'not a JWK object: a JWK file must hold one private JWK object (a JWK Set is not accepted)' }
    if (typeof jwk.d !== 'string') return { problem: 'a public JWK (no "d"): the file must hold the private key' }
    if (jwk.alg !== undefined && jwk.alg !== alg) return { problem: `the JWK's alg is ${JSON.stringify(jwk.alg)}: it must match signingAlgorithm ${alg}` }
    if (jwk.use !== undefined && jwk.use !== 'sig') return { problem: 'the JWK\'s use is not "sig": the key must be a signing key' }
    try {
      key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
    } catch (err) {
      return { problem: `not a usable private JWK (${(err as { code?: string }).code ?? 'invalid'}): give an EC, RSA or Ed25519 private JWK` }
    }
    if (typeof jwk.kid === 'string' && jwk.kid !== '') kid = jwk.kid
  } else {
    if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || text.includes('Proc-Type: 4,ENCRYPTED')) {
      return { problem: 'an encrypted private key: the gateway takes unencrypted PEM keys (protect the file with its mode instead)' }
    }
    if (text.includes('-----BEGIN CERTIFICATE-----') || text.includes('-----BEGIN PUBLIC KEY-----')) {
      return { problem: 'a certificate or public key: the file must hold the private key (PEM PRIVATE KEY)' }
    }
    try {
      key = createPrivateKey(text)
    } catch (err) {
      return { problem: `not a private key (${(err as { code?: string }).code ?? 'invalid PEM'}): must be a PEM private key (PKCS#8, SEC1 or PKCS#1) or a private JWK` }
    }
  }
  const mismatch = keyMismatch(key, alg)
  return mismatch !== undefined ? { problem: `the key does not fit signingAlgorithm: ${mismatch}` } : { key, kid }
}

/** The public JWK of a private key: only public members (never `d`, `p`, `q`, …). */
export function publicJwk (key: KeyObject): Record<string, string> {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>
  const out: Record<string, string> = { kty: jwk.kty! }
  for (const m of ['crv', 'x', 'y', 'n', 'e']) if (jwk[m] !== undefined) out[m] = jwk[m]
  return out
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a key: a kid that is stable for the key and needs no configuration. */
export function thumbprint (key: KeyObject): string {
  const jwk = publicJwk(key)
  // §3.2: the required members only, in lexicographic order, no whitespace.
  const required = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x']
  const canonical = '{' + required.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',') + '}'
  return createHash('sha256').update(canonical).digest('base64url')
}

