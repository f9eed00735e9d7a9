/**
 * Signing keys of the identity assertion: generating an ephemeral key at
 * start, and the public JWKS the gateway serves at /.well-known/jwks.json
 * (RFC 7517). Configured key files are parsed at config load
 * (config/signing-key.ts), so `--check` reports a bad key.
 *
 * Synchronous on purpose: node:crypto generates keys without promises, so
 * gateway building stays synchronous.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { MIN_RSA_SIGNING_KEY_BITS } from '../config/defaults.js'
import { EC_CURVES, publicJwk, thumbprint } from '../config/signing-key.js'
import type { GatewayConfig, SigningKeyConfig } from '../config/types.js'

/** A fresh private key for `alg`, generated in memory; never written anywhere. */
export function generateSigningKey (alg: string): SigningKeyConfig {
  let privateKey: KeyObject
  const curve = EC_CURVES[alg]
  if (curve !== undefined) privateKey = generateKeyPairSync('ec', { namedCurve: curve }).privateKey
  else if (alg === 'EdDSA') privateKey = generateKeyPairSync('ed25519').privateKey
  else privateKey = generateKeyPairSync('rsa', { modulusLength: MIN_RSA_SIGNING_KEY_BITS }).privateKey
  return Object.freeze({ kid: thumbprint(privateKey), privateKey })
}

/** The gateway's signing keys at run time: the first signs, all are published. */
export interface SigningKeys {
  readonly algorithm: string
  /** The key that signs. */
  readonly current: SigningKeyConfig
  /** `{"keys":[…]}`, serialised once: public members plus kid, alg, use. */
  readonly jwksJson: string
  /** True when the key was generated at start (replicas then disagree). */
  readonly generated: boolean
}

/** Build the run-time key set from a key list (the first signs). */
export function signingKeysFrom (algorithm: string, keys: readonly SigningKeyConfig[], generated: boolean): SigningKeys {
  if (keys.length === 0) throw new Error('signingKeysFrom: no keys')
  const jwks = { keys: keys.map((k) => ({ ...publicJwk(k.privateKey), kid: k.kid, alg: algorithm, use: 'sig' })) }
  return Object.freeze({ algorithm, current: keys[0]!, jwksJson: JSON.stringify(jwks), generated })
}

/**
 * The key set of a gateway: the configured keys; else, when a route signs
 * assertions, one generated now; else undefined (no JWKS is served).
 */
export function createSigningKeys (config: GatewayConfig): SigningKeys | undefined {
  const { algorithm, keys } = config.signing
  if (keys.length > 0) return signingKeysFrom(algorithm, keys, false)
  if (!config.routes.some((r) => r.identityAssertion !== undefined)) return undefined
  return signingKeysFrom(algorithm, [generateSigningKey(algorithm)], true)
}
