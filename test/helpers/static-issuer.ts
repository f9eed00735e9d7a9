/**
 * A tiny stand-in authorization server for hand-shaped tokens: it serves
 * discovery metadata and a JWKS, and signs whatever header and payload a test
 * asks for. Used for bad-token tables, provider-shaped tokens, key rotation,
 * and discovery failure/retry tests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { base64url, CompactSign, exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK } from 'jose';

/** Members of a public JWK that carry key material only (no kid, alg, use, key_ops). */
const KEY_MATERIAL = ['kty', 'n', 'e', 'crv', 'x', 'y'] as const;

export type StaticAlg = 'RS256' | 'ES256' | 'PS256' | 'EdDSA';

/** How one key is generated and published. */
export interface KeySpec {
  /** Key type and default signing alg (default: the issuer's alg). */
  alg?: StaticAlg;
  /** kid to use; `null` publishes the key (and signs tokens) without a kid. Default: random. */
  kid?: string | null;
  /** Publish `alg` in the JWK (default true). */
  publishAlg?: boolean;
  /** Publish only the key material (RSA: kty, n, e), like Drupal simple_oauth's JWKS; implies no kid, alg or use. */
  bare?: boolean;
}

interface KeyEntry {
  alg: StaticAlg;
  kid: string | null;
  publishAlg: boolean;
  bare: boolean;
  privateJwk: JWK;
  publicJwk: JWK;
}

/** Options for {@link StaticIssuer.sign}. */
export interface SignOptions {
  /** Header alg (default: the key's alg). Must suit the key type (e.g. RS512 with an RSA key). */
  alg?: string;
  /** Header kid; `null` omits it. Default: the signing key's kid (omitted if the key has none). */
  kid?: string | null;
  /** Header typ; `null` omits it. Default `at+jwt` (RFC 9068). */
  typ?: string | null;
  /** Extra or overriding protected header parameters. */
  header?: Record<string, unknown>;
  /** `current` (default): the current JWKS signing key; `other`: a same-type key NOT in the JWKS. */
  key?: 'current' | 'other';
}

/** A running static issuer. Counters and failure switches can be read and changed at any time. */
export interface StaticIssuer {
  /** `url` + issuerPath, no trailing slash unless `trailingSlash` was asked for. */
  issuer: string;
  /** Origin, e.g. `http://127.0.0.1:<port>`. */
  url: string;
  /** `${url}${issuerPath}/jwks` */
  jwksUri: string;
  /** Number of JWKS requests received (including failed/hung ones). */
  jwksFetches: number;
  /** Number of discovery metadata requests received (including failed/hung ones). */
  metadataFetches: number;
  /** Remaining metadata requests to answer with 503. */
  failMetadata: number;
  /** Remaining JWKS requests to answer with 503. */
  failJwks: number;
  /** Leave metadata / JWKS requests unanswered (for timeout tests). */
  hang: { metadata: boolean; jwks: boolean };
  /** Merged over the generated discovery document (e.g. a mismatched `issuer`). */
  metadataOverrides: Record<string, unknown>;
  /**
   * Signs `payload` verbatim (no claims are added; see {@link StaticIssuer.claims}).
   */
  sign(payload: Record<string, unknown>, opts?: SignOptions): Promise<string>;
  /** Typical access-token claims for this issuer, valid for 5 minutes; spread and override. */
  claims(overrides?: Record<string, unknown>): Record<string, unknown>;
  /** Adds a new key, makes it the signing key; old keys stay published unless `dropOld`. */
  rotate(spec?: KeySpec & { dropOld?: boolean }): Promise<void>;
  /** Replaces all keys; the last one becomes the signing key. */
  setKeys(specs: KeySpec[]): Promise<void>;
  /** The JWKS document currently served. */
  jwks(): { keys: JWK[] };
  /** The current signing key's public JWK (with kid and alg, even if the JWKS omits them). */
  publicJwk(): JWK;
  close(): Promise<void>;
}

/** Options for {@link startStaticIssuer}. */
export interface StaticIssuerOptions {
  /** Issuer path, e.g. `/realms/mcp`. */
  issuerPath?: string;
  /** Key type and alg of the initial key (default RS256). */
  alg?: StaticAlg;
  /** Answer the first N metadata requests with 503. */
  failFirst?: number;
  /** Publish the initial key without kid (tokens then carry no kid either). */
  omitKid?: boolean;
  /** Publish the initial key without alg. */
  omitAlg?: boolean;
  /** Publish the initial key as bare key material (kty/n/e only; no kid, so tokens carry none). */
  bareKeys?: boolean;
  /** The issuer string ends with `/` (Auth0, Drupal); endpoints stay under the path without it. */
  trailingSlash?: boolean;
  /** Which discovery documents to serve (default both). */
  wellKnown?: { oauth?: boolean; oidc?: boolean };
  /** Leave metadata / JWKS requests unanswered from the start. */
  hang?: { metadata?: boolean; jwks?: boolean };
}

async function makeKey(spec: Required<Pick<KeySpec, 'alg'>> & KeySpec): Promise<KeyEntry> {
  const genOpts = spec.alg === 'EdDSA' ? { crv: 'Ed25519' } : spec.alg === 'ES256' ? {} : { modulusLength: 2048 };
  const { privateKey, publicKey } = await generateKeyPair(spec.alg, { ...genOpts, extractable: true });
  const kid = spec.bare ? null : spec.kid === undefined ? `${spec.alg.toLowerCase()}-${randomBytes(6).toString('hex')}` : spec.kid;
  return {
    alg: spec.alg,
    kid,
    publishAlg: spec.bare ? false : (spec.publishAlg ?? true),
    bare: spec.bare ?? false,
    privateJwk: await exportJWK(privateKey),
    publicJwk: await exportJWK(publicKey),
  };
}

function published(k: KeyEntry): JWK {
  if (k.bare) {
    const jwk: JWK = {};
    for (const m of KEY_MATERIAL) if (k.publicJwk[m] !== undefined) jwk[m] = k.publicJwk[m];
    return jwk;
  }
  const jwk: JWK = { ...k.publicJwk, use: 'sig' };
  if (k.kid !== null) jwk.kid = k.kid;
  if (k.publishAlg) jwk.alg = k.alg;
  return jwk;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function trimSlashes(p: string | undefined): string {
  if (!p || p === '/') return '';
  return `/${p.replace(/^\/+|\/+$/g, '')}`;
}

/**
 * Starts a static issuer on 127.0.0.1 (ephemeral port). It serves:
 * - `GET /.well-known/oauth-authorization-server{issuerPath}` (RFC 8414, path inserted)
 * - `GET {issuerPath}/.well-known/openid-configuration` (OIDC, path appended)
 * - `GET {issuerPath}/jwks`
 */
export async function startStaticIssuer(opts: StaticIssuerOptions = {}): Promise<StaticIssuer> {
  const path = trimSlashes(opts.issuerPath);
  const defaultAlg: StaticAlg = opts.alg ?? 'RS256';
  let keys: KeyEntry[] = [
    await makeKey({ alg: defaultAlg, kid: opts.omitKid ? null : undefined, publishAlg: !opts.omitAlg, bare: opts.bareKeys ?? false }),
  ];
  // Lazily generated keys that are never published, per alg (SignOptions.key = 'other').
  const otherKeys = new Map<StaticAlg, KeyEntry>();
  const current = (): KeyEntry => {
    const k = keys[keys.length - 1];
    if (!k) throw new Error('static issuer has no keys');
    return k;
  };

  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const base = `${url}${path}`;
  const issuer = opts.trailingSlash ? `${base}/` : base;
  const wellKnown = { oauth: opts.wellKnown?.oauth ?? true, oidc: opts.wellKnown?.oidc ?? true };

  const si: StaticIssuer = {
    issuer,
    url,
    jwksUri: `${base}/jwks`,
    jwksFetches: 0,
    metadataFetches: 0,
    failMetadata: opts.failFirst ?? 0,
    failJwks: 0,
    hang: { metadata: opts.hang?.metadata ?? false, jwks: opts.hang?.jwks ?? false },
    metadataOverrides: {},

    async sign(payload, o = {}): Promise<string> {
      let key = current();
      if (o.key === 'other') {
        let other = otherKeys.get(key.alg);
        if (!other) {
          other = await makeKey({ alg: key.alg });
          otherKeys.set(key.alg, other);
        }
        // Claim the current key's kid by default: the signature, not the kid, must give it away.
        key = { ...other, kid: key.kid };
      }
      const alg = o.alg ?? key.alg;
      const header: Record<string, unknown> = { alg };
      const kid = o.kid === undefined ? key.kid : o.kid;
      if (kid !== null) header.kid = kid;
      const typ = o.typ === undefined ? 'at+jwt' : o.typ;
      if (typ !== null) header.typ = typ;
      Object.assign(header, o.header);
      const privateKey = await importJWK(key.privateJwk, alg);
      return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
        // jose types the header as JWSHeaderParameters; arbitrary extra members are intended here.
        .setProtectedHeader(header as { alg: string })
        .sign(privateKey);
    },

    claims(overrides = {}): Record<string, unknown> {
      const now = Math.floor(Date.now() / 1000);
      return {
        iss: issuer,
        sub: 'user-1',
        aud: 'http://127.0.0.1/mcp',
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        scope: 'mcp:tools',
        client_id: 'static-client',
        ...overrides,
      };
    },

    async rotate(spec = {}): Promise<void> {
      const k = await makeKey({ ...spec, alg: spec.alg ?? current().alg });
      keys = spec.dropOld ? [k] : [...keys, k];
    },

    async setKeys(specs): Promise<void> {
      if (specs.length === 0) throw new Error('setKeys: at least one key is required');
      keys = await Promise.all(specs.map((s) => makeKey({ ...s, alg: s.alg ?? defaultAlg })));
    },

    jwks: () => ({ keys: keys.map(published) }),

    publicJwk(): JWK {
      const k = current();
      return { ...k.publicJwk, use: 'sig', alg: k.alg, ...(k.kid !== null ? { kid: k.kid } : {}) };
    },

    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  function metadata(): Record<string, unknown> {
    return {
      issuer,
      jwks_uri: si.jwksUri,
      authorization_endpoint: `${base}/authorize`,
      token_endpoint: `${base}/token`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'client_credentials', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [...new Set(keys.map((k) => k.alg))],
      scopes_supported: ['openid', 'mcp:tools'],
      ...si.metadataOverrides,
    };
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const p = new URL(req.url ?? '/', url).pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method_not_allowed' });
      return;
    }
    const isMetadata =
      (wellKnown.oauth && p === `/.well-known/oauth-authorization-server${path}`) ||
      (wellKnown.oidc && p === `${path}/.well-known/openid-configuration`);
    if (isMetadata) {
      si.metadataFetches++;
      if (si.hang.metadata) return; // never answered; close() destroys the socket
      if (si.failMetadata > 0) {
        si.failMetadata--;
        sendJson(res, 503, { error: 'temporarily_unavailable' });
        return;
      }
      sendJson(res, 200, metadata());
      return;
    }
    if (p === `${path}/jwks`) {
      si.jwksFetches++;
      if (si.hang.jwks) return;
      if (si.failJwks > 0) {
        si.failJwks--;
        sendJson(res, 503, { error: 'temporarily_unavailable' });
        return;
      }
      sendJson(res, 200, si.jwks());
      return;
    }
    sendJson(res, 404, { error: 'not_found', path: p });
  }

  return si;
}

function b64json(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/**
 * An HS* token keyed with `secret` (UTF-8 text or bytes), for shared-secret
 * issuers. Header: `{ alg, typ }` plus `header`; `typ: null` omits it.
 */
export async function signWithSecret(
  payload: Record<string, unknown>,
  secret: string | Uint8Array,
  opts: { alg?: 'HS256' | 'HS384' | 'HS512'; typ?: string | null; header?: Record<string, unknown> } = {},
): Promise<string> {
  const header: Record<string, unknown> = { alg: opts.alg ?? 'HS256' };
  const typ = opts.typ === undefined ? 'at+jwt' : opts.typ;
  if (typ !== null) header.typ = typ;
  Object.assign(header, opts.header);
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header as { alg: string })
    .sign(key);
}

/** An `alg: none` JWT (empty signature), for negative tests. */
export function unsignedJwt(payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  return `${b64json({ alg: 'none', typ: 'at+jwt', ...header })}.${b64json(payload)}.`;
}

/**
 * The classic algorithm-confusion token: HS256, HMAC-keyed with the issuer's
 * public key (by default its SPKI PEM, as libraries that accept PEM strings
 * would use it; `secret: 'jwk-json'` uses JSON.stringify(publicJwk)). The
 * header carries the public key's kid, so a verifier that looks the key up by
 * kid and trusts the token's alg would accept it.
 */
export async function hs256WithPublicKey(
  payload: Record<string, unknown>,
  publicJwk: JWK,
  opts: { secret?: 'pem' | 'jwk-json' } = {},
): Promise<string> {
  let secretText: string;
  if (opts.secret === 'jwk-json') {
    secretText = JSON.stringify(publicJwk);
  } else {
    const alg = publicJwk.alg ?? (publicJwk.kty === 'RSA' ? 'RS256' : publicJwk.kty === 'OKP' ? 'EdDSA' : 'ES256');
    const key = await importJWK({ ...publicJwk, alg }, alg, { extractable: true });
    if (key instanceof Uint8Array) throw new Error('hs256WithPublicKey: expected an asymmetric public key');
    secretText = await exportSPKI(key);
  }
  const header: { alg: string; typ: string; kid?: string } = { alg: 'HS256', typ: 'at+jwt' };
  if (publicJwk.kid !== undefined) header.kid = publicJwk.kid;
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(new TextEncoder().encode(secretText));
}
